// The agent on a worker thread (openSyncAgentThread, what `nimbus start` runs) against a real
// cloud directory on this thread: same end state as the same-thread agent, progress relayed,
// errors keep their type both ways, abort and close, the AD password reaches the worker.
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSyncAgent } from '../../src/sync/agent.ts';
import { openSyncAgentThread } from '../../src/sync/agent-thread.ts';
import type { SyncConfig } from '../../src/sync/config.ts';
import type { Exporter } from '../../src/sync/engine/exporter.ts';
import { createInProcessExporter } from '../../src/sync/engine/exporter-inprocess.ts';
import type { Progress } from '../../src/sync/engine/run.ts';
import { SyncError } from '../../src/sync/errors.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { generatedLdif, syncedState, syncTenant, tempDir, writeConfig } from './helpers.ts';

// A domain is verified in one tenant only, so each scenario gets its own cloud directory.
const clouds: TestCloud[] = [];
let ldif: string;

async function fresh(name: string, opts: { activate?: boolean } = {}): Promise<{ cloud: TestCloud; t: TestTenant }> {
  const cloud = await startCloud();
  clouds.push(cloud);
  return { cloud, t: await syncTenant(cloud, name, opts) };
}

async function configFor(cloud: TestCloud, t: TestTenant, batchSize = 500): Promise<{ dir: string; config: SyncConfig }> {
  const dir = tempDir();
  return { dir, config: (await writeConfig(dir, cloud, t, { ldif, target: { batchSize } })).config };
}

beforeAll(async () => {
  ({ path: ldif } = await generatedLdif(tempDir(), 80, 7));
});
afterAll(async () => {
  for (const c of clouds) await c.close();
});

describe('the sync agent on a worker thread', () => {
  let reference: Awaited<ReturnType<typeof syncedState>>;

  it('a full sync reaches the same end state as the same-thread agent, with progress through import, sync and export', async () => {
    const a = await fresh('samethread');
    const same = await openSyncAgent((await configFor(a.cloud, a.t)).config, { exporter: await createInProcessExporter(a.cloud.svc, 'samethread') });
    expect((await same.run()).status).toBe('success');
    await same.close();
    reference = await syncedState(a.cloud, a.t);
    expect(reference.users.length).toBeGreaterThan(80);

    const b = await fresh('onthread');
    const exporter = await createInProcessExporter(b.cloud.svc, 'onthread');
    const agent = await openSyncAgentThread((await configFor(b.cloud, b.t, 20)).config, { exporter });
    const progress: Progress[] = [];
    const r = await agent.run({ onProgress: (p) => progress.push(p) });
    await agent.close();
    expect(r.status).toBe('success');
    expect(r.kind).toBe('full-import');
    expect(r.counts.adds).toBe(reference.users.length + reference.groups.length);
    expect(await syncedState(b.cloud, b.t)).toEqual(reference);
    const phases = [...new Set(progress.map((p) => p.phase))];
    expect(phases).toEqual(expect.arrayContaining(['import', 'sync', 'export']));
    expect(phases.indexOf('import')).toBeLessThan(phases.indexOf('export'));
    expect(progress.every((p) => typeof p.done === 'number' && typeof p.rate === 'number')).toBe(true);
    const c = r.counts;
    expect(progress.filter((p) => p.phase === 'export').at(-1)!.done).toBe(c.adds + c.updates + c.deletes + c.unchanged);
  });

  it("an exporter's SyncError ends the run as on the same thread: failed, DirectorySyncNotActivated", async () => {
    const { cloud, t } = await fresh('notactive', { activate: false });
    const exporter = await createInProcessExporter(cloud.svc, 'notactive');
    const same = await openSyncAgent((await configFor(cloud, t)).config, { exporter });
    const expected = await same.run();
    await same.close();
    const agent = await openSyncAgentThread((await configFor(cloud, t)).config, { exporter });
    const r = await agent.run();
    await agent.close();
    expect(r.status).toBe('failed');
    expect(r.code).toBe('DirectorySyncNotActivated');
    expect(r.message).toBe(expected.message);
    expect(expected.code).toBe('DirectorySyncNotActivated');
  });

  it('errors keep their type across the thread: a plain exporter error rejects the run with its message, a config SyncError rejects the open', async () => {
    const { cloud, t } = await fresh('errors');
    const real = await createInProcessExporter(cloud.svc, 'errors');
    const broken: Exporter = {
      ...real,
      export: async () => {
        throw new TypeError('the cloud fell over');
      },
    };
    const agent = await openSyncAgentThread((await configFor(cloud, t)).config, { exporter: broken });
    const err = await agent.run().catch((e: unknown) => e);
    await agent.close();
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(SyncError);
    expect((err as Error).message).toBe('the cloud fell over');
    expect((err as Error).name).toBe('TypeError');

    // source.type ad without a password: openSyncAgent refuses it in the worker.
    const { config } = await configFor(cloud, t);
    const ad: SyncConfig = { ...config, source: { ...config.source, type: 'ad', url: 'ldap://127.0.0.1:1', bindDn: 'svc@corp.example.com' }, secrets: { ...config.secrets, sourcePassword: undefined } };
    const refused = await openSyncAgentThread(ad, { exporter: real }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SyncError);
    expect((refused as SyncError).code).toBe('ConfigInvalid');
    expect((refused as SyncError).message).toContain('source.passwordFile: is required');
  });

  it('the test hooks of the same-thread agent are refused', async () => {
    const { cloud, t } = await fresh('hooks');
    const exporter = await createInProcessExporter(cloud.svc, 'hooks');
    const { config } = await configFor(cloud, t);
    await expect(openSyncAgentThread(config, { exporter, wrapConnector: (c: unknown) => c } as never)).rejects.toThrow('wrapConnector is a test hook');
    const agent = await openSyncAgentThread(config, { exporter });
    await expect(agent.run({ onBatchApplied: () => undefined })).rejects.toThrow('onBatchApplied is a test hook');
    await agent.close();
  });

  it('an abort through the signal stops the run (Aborted); a rerun finishes with the same end state', async () => {
    const { cloud, t } = await fresh('aborted');
    const real = await createInProcessExporter(cloud.svc, 'aborted');
    const stop = new AbortController();
    let batches = 0;
    // Aborts while the cloud holds batch 3: the abort message reaches the worker before this answer does.
    const exporter: Exporter = {
      ...real,
      export: async (items) => {
        const results = await real.export(items);
        if (++batches === 3) stop.abort();
        return results;
      },
    };
    const { config } = await configFor(cloud, t, 10);
    const agent = await openSyncAgentThread(config, { exporter });
    const r = await agent.run({ signal: stop.signal });
    expect(r.status).toBe('failed');
    expect(r.code).toBe('Aborted');
    expect(batches).toBeLessThanOrEqual(4);
    const partial = await syncedState(cloud, t);
    expect(partial.users.length).toBeLessThan(reference.users.length);

    // Aborted before it starts: it stops at once too.
    const early = new AbortController();
    early.abort();
    expect((await agent.run({ signal: early.signal })).code).toBe('Aborted');

    const again = await agent.run();
    await agent.close();
    expect(again.status).toBe('success');
    expect(await syncedState(cloud, t)).toEqual(reference);
  });

  it('close() during a run waits for the run, then ends the worker and releases the connector space', async () => {
    const { cloud, t } = await fresh('closing');
    const exporter = await createInProcessExporter(cloud.svc, 'closing');
    const { config } = await configFor(cloud, t, 10);
    const agent = await openSyncAgentThread(config, { exporter });
    const lock = join(config.sync.dataDir, 'sync.lock');
    expect(existsSync(lock)).toBe(true);
    const run = agent.run();
    const closed = agent.close();
    expect((await run).status).toBe('success');
    await closed;
    expect(existsSync(lock)).toBe(false);
    await expect(agent.run()).rejects.toThrow('closed');
    await agent.close();
    // The real exporter belongs to the caller: it still works.
    await exporter.check();
  });

  it("the AD bind password reaches the worker (Secret rebuilt there) and goes to the directory it binds to", async () => {
    const { cloud, t } = await fresh('adsecret');
    const exporter = await createInProcessExporter(cloud.svc, 'adsecret');
    // A listener that takes the LDAP bind request and hangs up: the simple bind carries the password as is (RFC 4511 §4.2).
    const seen: Buffer[] = [];
    const server = createServer((s) => s.once('data', (d: Buffer) => (seen.push(d), s.destroy())));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const dir = tempDir();
      writeFileSync(join(dir, 'ad.pw'), 'Thr3ad-Secret!\n', { mode: 0o600 });
      const { config } = await writeConfig(dir, cloud, t, {
        ldif,
        source: { type: 'ad', url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`, bindDn: 'svc-nimbus@corp.example.com', passwordFile: './ad.pw', path: undefined },
      });
      expect(config.secrets.sourcePassword?.reveal()).toBe('Thr3ad-Secret!');
      const agent = await openSyncAgentThread(config, { exporter });
      const r = await agent.run();
      await agent.close();
      expect(r.status).toBe('failed');
      expect(r.code).toBe('SourceUnreadable');
      expect(Buffer.concat(seen).toString('latin1')).toContain('Thr3ad-Secret!');
      expect(JSON.stringify(r)).not.toContain('Thr3ad-Secret!');
    } finally {
      server.close();
    }
  });
});
