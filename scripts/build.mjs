#!/usr/bin/env node
// Compiles the TypeScript to JavaScript, so that `nimbus` runs without a TypeScript loader: it
// starts in half the time, and each thread that runs TypeScript through tsx (the CLI's, the
// embedded agent's) carries tens of MB more. Plain JavaScript, so that it needs no loader; it
// uses the TypeScript compiler the project checks types with.
//
//   node scripts/build.mjs            src/ -> dist/ (what bin/nimbus.js runs)
//   node scripts/build.mjs --prepare  the same, from `npm install` (the `prepare` script): a
//                                     build that cannot be made (no TypeScript in a production
//                                     install, a type error in a working copy) warns and leaves
//                                     no dist/, and bin/nimbus.js runs the sources through tsx
//   node scripts/build.mjs --all DIR  src/, test/, bench/, scripts/ -> DIR (the benchmarks run this)
//
// Besides the compiler's output: the portal's static files, and a stamp (.built) that
// bin/nimbus.js compares with the sources' modification times.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const all = process.argv[2] === '--all';
const prepare = process.argv[2] === '--prepare';
const out = resolve(root, all ? (process.argv[3] ?? '') : 'dist');
if (all && !process.argv[3]) {
  process.stderr.write('usage: node scripts/build.mjs [--all OUT_DIR]\n');
  process.exit(2);
}
const started = Date.now();
const fail = (why) => {
  rmSync(out, { recursive: true, force: true });
  process.stderr.write(`build: ${why}; nothing was built.${prepare ? ' nimbus runs from the TypeScript sources instead (slower to start, more memory); run `npm run build` once this is fixed.' : ''}\n`);
  process.exit(prepare ? 0 : 1);
};
rmSync(out, { recursive: true, force: true });
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  fail('the TypeScript compiler is not installed (a production install leaves out devDependencies)');
}
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, all ? 'tsconfig.json' : 'tsconfig.build.json'), '--noEmit', 'false', '--outDir', out, '--sourceMap', 'false'], { stdio: 'inherit' });
} catch {
  fail('the TypeScript compiler reported errors (above; `npm run typecheck` lists them too)');
}
const srcOut = all ? join(out, 'src') : out;
mkdirSync(join(srcOut, 'portal'), { recursive: true });
cpSync(join(root, 'src/portal/assets'), join(srcOut, 'portal/assets'), { recursive: true });
// Last: a build cut short leaves no stamp, so bin/nimbus.js keeps to the sources. The stamp
// carries the time the build started: a source saved while it ran is newer than the build.
const stamp = join(srcOut, '.built');
writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
utimesSync(stamp, started / 1000, started / 1000);
process.stdout.write(`build: ${all ? 'src, test, bench, scripts' : 'src'} -> ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
