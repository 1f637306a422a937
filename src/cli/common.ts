// What every CLI command shares: the --data folder, opening services, printing text or
// --json, hidden prompts, and turning errors into a message plus a meaningful exit code.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { directoryConfigFromEnv } from '../cloud/config.ts';
import { openServices, type Services } from '../cloud/services/index.ts';
import { resolveDataDir } from '../cloud/store/store.ts';
import { NimbusError } from '../shared/errors.ts';
import { SyncError } from '../sync/errors.ts';

/** Exit codes: 0 done, 1 the operation failed or was refused, 2 usage/config/could not run. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export class UsageError extends Error {}

export interface GlobalOpts {
  data?: string;
  json?: boolean;
}

export function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals<GlobalOpts>();
}

export async function withServices<T>(cmd: Command, fn: (svc: Services) => Promise<T>): Promise<T> {
  const svc = await openServices(resolveDataDir(globals(cmd).data), { config: directoryConfigFromEnv() });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
  }
}

/** Prints `json` with --json, else the human lines. */
export function output(cmd: Command, json: unknown, human: string | string[]): void {
  if (globals(cmd).json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(`${Array.isArray(human) ? human.join('\n') : human}\n`);
}

const cell = (v: unknown): string => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

export function readSecretFile(path: string, what: string): string {
  try {
    const s = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    if (!s) throw new UsageError(`The ${what} file ${path} is empty.`);
    return s;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`Cannot read the ${what} file ${path}: ${(err as Error).message}.`);
  }
}

/** Asks a question on the terminal; refuses when there is no terminal to ask on. */
export async function ask(question: string, opts: { hidden?: boolean } = {}): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError(`${question.trim()} needs an answer, but standard input is not a terminal.`);
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  if (opts.hidden) {
    // Echo nothing while a password is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.includes(question)) process.stdout.write(s);
    };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    if (opts.hidden) process.stdout.write('\n');
    rl.close();
  }
}

/** Runs a command action, printing errors as one clear line and setting the exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const cmd = args[args.length - 1] as Command;
      const json = typeof cmd?.optsWithGlobals === 'function' && globals(cmd).json;
      if (err instanceof NimbusError) {
        if (json) process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message } }, null, 2)}\n`);
        process.stderr.write(`error: ${err.message}\n`);
        process.exitCode = err.kind === 'unavailable' ? EXIT.usage : EXIT.failed;
      } else if (err instanceof UsageError || err instanceof SyncError) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exitCode = EXIT.usage;
      } else {
        process.stderr.write(`error: ${(err as Error).stack ?? String(err)}\n`);
        process.exitCode = EXIT.failed;
      }
    }
  };
}
