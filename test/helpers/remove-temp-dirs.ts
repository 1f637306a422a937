// Setup file (vitest.config.ts): removes the folders tempDir made, after the test file's own
// afterAll hooks (Vitest runs after-hooks in reverse order, and this one is registered first),
// so its agents and clouds are closed by then.
import { rmSync } from 'node:fs';
import { afterAll } from 'vitest';
import { madeTempDirs } from './temp-dirs.ts';

afterAll(() => {
  for (const dir of madeTempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
