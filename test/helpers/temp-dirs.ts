// Temporary folders for tests, removed when the test file is done (test/helpers/remove-temp-dirs.ts,
// a setup file): a full run made ~55 of them (~120 MB) and left them in the system's temp folder.
// Plain Node, no Vitest here: benchmarks import the sync helpers that use it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The folders made by tempDir in this test file, not removed yet. */
export const madeTempDirs: string[] = [];

export function tempDir(prefix = 'nimbus-sync-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeTempDirs.push(dir);
  return dir;
}
