// The benchmarks measure Nimbus as `nimbus` runs it: compiled to JavaScript (bin/nimbus.js runs
// dist/ once `npm install` has built it), not through the TypeScript loader, which costs each
// thread tens of MB and slower starts. A benchmark started from its .ts file builds src/, test/
// and bench/ into .tmp/bench-build (scripts/build.mjs --all) and runs its compiled self there
// with the same arguments; `--source` measures the sources through tsx instead. (bench/sync-ad.ts
// runs from the sources: the Samba fixture scripts locate their files and cache by their own path.)
import { execFileSync, spawnSync } from 'node:child_process';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..');
const BUILD = join(ROOT, '.tmp', 'bench-build');

/** Where results are appended: the source tree's bench/results, also from the compiled copy. */
export const RESULTS_DIR = process.env.NIMBUS_BENCH_RESULTS ?? join(import.meta.dirname, 'results');

/**
 * From a benchmark's .ts file (unless --source is given): builds, runs the compiled copy with
 * the same arguments and exits with its status. Returns when this already is the compiled copy
 * or --source was asked for.
 */
export function runCompiled(moduleUrl: string): void {
  const self = fileURLToPath(moduleUrl);
  if (!self.endsWith('.ts') || process.argv.includes('--source')) return;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--all', BUILD], { stdio: 'inherit' });
  const compiled = join(BUILD, relative(ROOT, self)).replace(/\.ts$/, '.js');
  const r = spawnSync(process.execPath, [compiled, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, NIMBUS_BENCH_RESULTS: join(ROOT, 'bench', 'results') } });
  process.exit(r.status ?? 1);
}
