// Appends benchmark figures to bench/results/<name>.json with the machine they ran on.
import { appendFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { RESULTS_DIR } from './compiled.ts';

export function recordResults(name: string, figures: Record<string, unknown>): void {
  const dir = RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const entry = {
    at: new Date().toISOString(),
    node: process.version,
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    ...figures,
  };
  // JSON lines: one run per line, so history accumulates and stays greppable.
  appendFileSync(join(dir, `${name}.jsonl`), `${JSON.stringify(entry)}\n`);
  process.stdout.write(`${JSON.stringify(entry, null, 2)}\n`);
}

/** The p-th percentile (nearest rank) of `xs`; p = 100 is the largest. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
