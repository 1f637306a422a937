// The agent over HTTP and in-process reaches the same cloud state, and a run killed mid-export
// (by a hook between the cloud's confirmation and the local commit, and by SIGKILL of a real
// `nimbus sync` process) is finished by a rerun with the same end state and no duplicates.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSyncAgent } from '../../src/sync/agent.ts';
import type { SyncConfig } from '../../src/sync/config.ts';
import { createInProcessExporter } from '../../src/sync/engine/exporter-inprocess.ts';
import { openConnectorSpace } from '../../src/sync/engine/space.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { generatedLdif, syncedState, syncTenant, tempDir, writeConfig } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/nimbus.js', import.meta.url));
// A domain is verified in one tenant only, so each scenario gets its own cloud directory.
let cloud: TestCloud;
const clouds: TestCloud[] = [];
let ldif: string;

async function fresh(name: string, opts: { activate?: boolean } = {}): Promise<TestTenant> {
  cloud = await startCloud();
  clouds.push(cloud);
  return syncTenant(cloud, name, opts);
}

beforeAll(async () => {
  ({ path: ldif } = await generatedLdif(tempDir(), 80, 7));
});
afterAll(async () => {
  for (const c of clouds) await c.close();
});

/** The tenant's synced objects (see syncedState). */
const state = (t: TestTenant) => syncedState(cloud, t);

async function configFor(t: TestTenant, batchSize = 500): Promise<{ file: string; config: SyncConfig }> {
  return writeConfig(tempDir(), cloud, t, { ldif, target: { batchSize } });
}

describe('exporters and crash safety', () => {
  let reference: Awaited<ReturnType<typeof state>>;

  it('the HTTP exporter and the in-process exporter give the same end state', async () => {
    const a = await fresh('inproc');
    const agentA = await openSyncAgent((await configFor(a)).config, { exporter: await createInProcessExporter(cloud.svc, 'inproc') });
    expect((await agentA.run()).status).toBe('success');
    await agentA.close();
    reference = await state(a);
    const b = await fresh('overhttp');
    const agentB = await openSyncAgent((await configFor(b)).config);
    const r = await agentB.run();
    await agentB.close();
    expect(r.status).toBe('success');
    expect(reference.users.length).toBeGreaterThan(80);
    expect(await state(b)).toEqual(reference);
  });

  it('sends each object once while batches are still at the cloud (slow answers, small batches)', async () => {
    const t = await fresh('slowcloud');
    const { config } = await configFor(t, 7);
    const inner = await createInProcessExporter(cloud.svc, 'slowcloud');
    const sent = new Map<string, number>();
    let at = 0;
    let most = 0;
    // Every answer takes a while: the sync step and the reading of the next batches go on meanwhile.
    const exporter = {
      ...inner,
      async export(items: Parameters<typeof inner.export>[0]) {
        for (const i of items) sent.set(i.sourceAnchor, (sent.get(i.sourceAnchor) ?? 0) + 1);
        most = Math.max(most, ++at);
        await new Promise((r) => setTimeout(r, 40));
        return inner.export(items).finally(() => at--);
      },
    };
    const agent = await openSyncAgent(config, { exporter });
    const r = await agent.run();
    await agent.close();
    expect(r.status).toBe('success');
    expect(r.counts.unchanged).toBe(0);
    expect([...sent.values()].filter((n) => n > 1)).toEqual([]);
    expect(sent.size).toBe(r.counts.inScope);
    // In-process, two batches at the cloud at once (it applies them in the order sent).
    expect(inner.inFlight).toBe(2);
    expect(most).toBe(2);
    expect(await state(t)).toEqual(reference);
  });

  it('sends one batch at a time to an exporter that cannot keep two in order (HTTP), with the same end state', async () => {
    const t = await fresh('oneatatime');
    const { config } = await configFor(t, 7);
    const inner = await createInProcessExporter(cloud.svc, 'oneatatime');
    let at = 0;
    let most = 0;
    const exporter = {
      ...inner,
      inFlight: 1,
      async export(items: Parameters<typeof inner.export>[0]) {
        most = Math.max(most, ++at);
        await new Promise((r) => setTimeout(r, 10));
        return inner.export(items).finally(() => at--);
      },
    };
    const agent = await openSyncAgent(config, { exporter });
    expect((await agent.run()).status).toBe('success');
    await agent.close();
    expect(most).toBe(1);
    expect(await state(t)).toEqual(reference);
  });

  it('a run stopped after 3 batches (cloud applied, not yet recorded) is finished by a rerun, without duplicates', async () => {
    const t = await fresh('crashhook');
    const { config } = await configFor(t, 10);
    const agent = await openSyncAgent(config, { exporter: await createInProcessExporter(cloud.svc, 'crashhook') });
    await expect(
      agent.run({
        onBatchApplied: (n) => {
          if (n === 3) throw new Error('simulated crash');
        },
      }),
    ).rejects.toThrow('simulated crash');
    await agent.close();
    // Batches 1-3 reached the cloud, and the batch in flight beside batch 3 (two at a time).
    const partial = await state(t);
    expect(partial.users.length).toBeGreaterThanOrEqual(30);
    expect(partial.users.length).toBeLessThanOrEqual(40);
    expect(partial.users.length).toBeLessThan(reference.users.length);
    const again = await openSyncAgent(config, { exporter: await createInProcessExporter(cloud.svc, 'crashhook') });
    const r = await again.run();
    await again.close();
    expect(r.status).toBe('success');
    // The objects of batch 3 (and the one beside it) were applied but not recorded: resent, and the cloud says unchanged.
    expect(r.counts.unchanged).toBeGreaterThanOrEqual(10);
    expect(await state(t)).toEqual(reference);
  });

  it('SIGKILL of `nimbus sync` mid-export, then a rerun: same end state, no duplicates, exit codes 0', async () => {
    const t = await fresh('crashkill');
    const { file } = await configFor(t, 5);
    const run = () => spawn(process.execPath, [BIN, 'sync', '--config', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const child = run();
    const count = async () => Number((await cloud.svc.db.selectFrom('users').select(({ fn }) => fn.countAll<number>().as('n')).where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1).executeTakeFirstOrThrow()).n);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 400 && (await count()) < 10; i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    await exited;
    const mid = await count();
    expect(mid).toBeGreaterThanOrEqual(10);
    expect(mid).toBeLessThan(reference.users.length);
    const second = run();
    let out = '';
    second.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => second.on('exit', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out).status).toBe('success');
    expect(await state(t)).toEqual(reference);
  });

  it('a first import builds its DN indexes at its end; killed after its first commit, the rerun builds them before it imports', async () => {
    const t = await fresh('deferred');
    const dir = tempDir();
    // 5000 users: the import commits its first 1000 entries (then every 20000) long before it ends.
    await generatedLdif(dir, 5000, 3);
    const { file, config } = await writeConfig(dir, cloud, t, { ldif: join(dir, 'export.ldif') });
    const DEFERRED = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ('objects_dn_key', 'objects_dirty') ORDER BY name";
    const blank = await openConnectorSpace(tempDir());
    const migrated = blank.sqlite.prepare(DEFERRED).all();
    await blank.close();
    expect(migrated).toHaveLength(2);
    const inSpace = () => {
      try {
        const db = new SQLite(join(dir, 'agent', 'connector-space.db'), { readonly: true, fileMustExist: true });
        try {
          return { indexes: db.prepare(DEFERRED).all(), objects: (db.prepare('SELECT count(*) AS n FROM objects').get() as { n: number }).n };
        } finally {
          db.close();
        }
      } catch {
        return { indexes: migrated, objects: 0 }; // not created or migrated yet
      }
    };
    const child = spawn(process.execPath, [BIN, 'sync', '--config', file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<unknown>((resolve) => child.on('exit', resolve));
    for (let i = 0; i < 1000 && inSpace().objects === 0; i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    await exited;
    // Killed mid-import: some objects kept, the indexes not built yet, nothing exported.
    const killed = inSpace();
    expect(killed.indexes).toEqual([]);
    expect(killed.objects).toBeGreaterThan(0);
    expect(killed.objects).toBeLessThan(2000);
    expect((await state(t)).users).toEqual([]);
    const agent = await openSyncAgent(config, { exporter: await createInProcessExporter(cloud.svc, 'deferred') });
    const r = await agent.run();
    await agent.close();
    expect(r.status).toBe('success');
    expect(r.counts.errors).toBe(0);
    expect(inSpace().indexes).toEqual(migrated);
    // Everything once: every object the rerun exported is one new cloud object.
    const end = await state(t);
    expect(end.users.length + end.groups.length).toBe(r.counts.adds);
    expect(end.users.length).toBeGreaterThan(5000);
  });

  it('exit code 2 with a clear message when directory sync is not activated', async () => {
    const t = await fresh('notactive', { activate: false });
    const { file } = await configFor(t);
    const child = spawn(process.execPath, [BIN, 'sync', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(err).toContain('nimbus dirsync enable --tenant notactive');
  });
});
