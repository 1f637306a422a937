// Test runner configuration: one runner (Vitest) for the whole project.
// Two projects: "unit" runs files in parallel; "serial" holds suites that share a
// real server on a fixed port (Samba AD on 389) and runs its files one at a time,
// after the parallel group.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 180_000,
    // Removes the temporary folders each test file made (test/helpers/temp-dirs.ts).
    setupFiles: ['test/helpers/remove-temp-dirs.ts'],
    projects: [
      {
        // extends: the root options (timeouts) apply to each project too.
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['test/serial/**', 'node_modules/**'],
          pool: 'forks',
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'serial',
          include: ['test/serial/**/*.test.ts'],
          pool: 'forks',
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
