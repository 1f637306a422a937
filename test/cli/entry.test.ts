// bin/nimbus.js picks the compiled build when it is current and the TypeScript sources otherwise:
// checked on a small tree of its own (a stand-in for src/ and dist/), so the real build is not
// touched. And the real build: what scripts/build.mjs makes runs without the TypeScript sources.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, NIMBUS_BIN, REPO_ROOT } from '../helpers/nimbus-cli.ts';

describe('bin/nimbus.js: compiled build or sources', () => {
  let tree: string;
  const run = (env: Record<string, string> = {}) => spawnSync(process.execPath, [join(tree, 'bin', 'nimbus.js')], { env: cleanEnv(env), encoding: 'utf8' });
  const at = (file: string, seconds: number) => utimesSync(join(tree, file), seconds, seconds);

  beforeAll(() => {
    tree = mkdtempSync(join(tmpdir(), 'nimbus-entry-'));
    for (const d of ['bin', 'src/cli', 'src/sync', 'dist/cli']) mkdirSync(join(tree, d), { recursive: true });
    copyFileSync(NIMBUS_BIN, join(tree, 'bin', 'nimbus.js'));
    writeFileSync(join(tree, 'package.json'), '{ "type": "module" }\n');
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(tree, 'node_modules'));
    writeFileSync(join(tree, 'src/cli/main.ts'), "const from: string = 'sources';\nprocess.stdout.write(from);\nexport {};\n");
    writeFileSync(join(tree, 'src/sync/run.ts'), 'export {};\n');
    writeFileSync(join(tree, 'src/sync/run.test.ts'), 'export {};\n');
    writeFileSync(join(tree, 'dist/cli/main.js'), "process.stdout.write('build');\n");
    writeFileSync(join(tree, 'dist/.built'), 'stamp\n');
  });
  afterAll(() => rmSync(tree, { recursive: true, force: true }));

  it('runs the build while no source file is newer than its stamp', () => {
    for (const f of ['src/cli/main.ts', 'src/sync/run.ts']) at(f, 1_000_000);
    at('dist/.built', 1_000_000);
    expect(run().stdout).toBe('build');
  });

  it('runs the sources once any of them is newer, however deep (a test file does not count)', () => {
    at('src/sync/run.test.ts', 3_000_000);
    expect(run().stdout).toBe('build');
    at('src/sync/run.ts', 2_000_000);
    expect(run().stdout).toBe('sources');
    at('dist/.built', 2_000_000);
    expect(run().stdout).toBe('build');
  });

  it('runs the sources when there is no build, and NIMBUS_ENTRY chooses either', () => {
    expect(run({ NIMBUS_ENTRY: 'src' }).stdout).toBe('sources');
    rmSync(join(tree, 'dist/.built'));
    expect(run().stdout).toBe('sources');
    const forced = run({ NIMBUS_ENTRY: 'dist' });
    expect(forced.status).toBe(2);
    expect(forced.stderr).toMatch(/no complete build in dist\/: run `npm run build`/);
    const bad = run({ NIMBUS_ENTRY: 'compiled' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/NIMBUS_ENTRY is 'compiled': use src .* or dist/);
  });
});

describe('scripts/build.mjs', () => {
  it('builds JavaScript that runs alone: the thread agent boots its worker from .js, the portal finds its static files', { timeout: 120_000 }, () => {
    // Inside the repository, so that the build's imports find node_modules.
    mkdirSync(join(REPO_ROOT, '.tmp'), { recursive: true });
    const out = mkdtempSync(join(REPO_ROOT, '.tmp', 'test-build-'));
    try {
      const b = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/build.mjs'), '--all', out], { encoding: 'utf8' });
      expect(b.status, b.stderr).toBe(0);
      // The compiled thread agent, opened on a config that needs nothing (an LDIF source, a
      // target never called): the worker must boot from .js alone. No tsx is registered in
      // this child, so a worker that tried to import .ts would fail.
      const program = `
        import { openSyncAgentThread } from ${JSON.stringify(new URL(`file://${out}/src/sync/agent-thread.js`).href)};
        import { loadSyncConfig } from ${JSON.stringify(new URL(`file://${out}/src/sync/config.js`).href)};
        // (Reads the portal's CSS and script when loaded.)
        import ${JSON.stringify(new URL(`file://${out}/src/portal/routes.js`).href)};
        import { mkdtempSync, writeFileSync } from 'node:fs';
        import { join } from 'node:path';
        const dir = mkdtempSync(join(${JSON.stringify(tmpdir())}, 'nimbus-built-agent-'));
        writeFileSync(join(dir, 'a.ldif'), 'version: 1\\n');
        writeFileSync(join(dir, 'app.secret'), 'x');
        writeFileSync(join(dir, 'nimbus.yaml'), 'source: { type: ldif, path: ./a.ldif }\\ntarget: { type: nimbus, url: http://127.0.0.1:9, tenant: t, clientId: c, clientSecretFile: ./app.secret }\\nsync: { dataDir: ./agent }\\n');
        const config = loadSyncConfig({ file: join(dir, 'nimbus.yaml'), env: {} });
        const agent = await openSyncAgentThread(config, { exporter: { identity: 'none', check: async () => {}, export: async () => [], reportRun: async () => {}, lookup: async () => null, close: async () => {} } });
        await agent.close();
        process.stdout.write('worker ok');`;
      const file = join(out, 'probe.mjs');
      writeFileSync(file, program);
      const r = spawnSync(process.execPath, [file], { encoding: 'utf8', cwd: out });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('worker ok');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
