#!/usr/bin/env node
// Entry point of the `nimbus` CLI. Runs the compiled build (dist/, which `npm install` makes
// through the `prepare` script, or `npm run build`) when it is up to date with the sources, else
// the TypeScript sources through tsx: an edit in src/ is never run stale. Compiled, a command
// starts in half the time and the server and agent use less memory. NIMBUS_ENTRY=src or
// NIMBUS_ENTRY=dist picks one.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time of the files dist/ is built from (tests are not part of it). */
function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (!e.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** When the build started (its stamp's time), or undefined when there is no complete build. */
function builtAt() {
  try {
    return statSync(`${root}/dist/.built`).mtimeMs;
  } catch {
    return undefined;
  }
}

// A file saved during the build counts as newer than it: the stamp carries the build's start.
const built = builtAt();
const entry = process.env.NIMBUS_ENTRY || (built !== undefined && built >= newestSource(`${root}/src`) ? 'dist' : 'src');
if (entry === 'dist') {
  if (built === undefined) {
    process.stderr.write('NIMBUS_ENTRY=dist, but there is no complete build in dist/: run `npm run build`, or unset NIMBUS_ENTRY.\n');
    process.exit(2);
  }
  await import('../dist/cli/main.js');
} else if (entry === 'src') {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
} else {
  process.stderr.write(`NIMBUS_ENTRY is '${entry}': use src (the TypeScript sources) or dist (the compiled build), or leave it unset.\n`);
  process.exit(2);
}
