// Runs the real `nimbus` command line in a child process, as a script or CI would: stdin a
// closed pipe (never a terminal), and no NIMBUS_* variables inherited from the test runner.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const NIMBUS_BIN = fileURLToPath(new URL('../../bin/nimbus.js', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without NIMBUS_* settings, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NIMBUS_')) env[k] = v;
  return { ...env, ...extra };
}

/** Starts `nimbus args...` (cwd: the repository). */
export function startNimbus(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [NIMBUS_BIN, ...args], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: 'pipe' });
  child.stdin.end();
  return child;
}

/** Runs `nimbus args...` to its end and collects what it printed. */
export function runNimbus(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = startNimbus(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
