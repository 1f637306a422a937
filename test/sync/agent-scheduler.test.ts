// The agent's scheduler (`nimbus agent`) against a real cloud directory over HTTP, with an LDIF
// source: a change in the source triggers a cycle without waiting for the interval, "sync now"
// and "allow deletes" requests made in the cloud are picked up, a config change (scope) runs a
// full cycle by itself while a broken config is logged and ignored, the export lease keeps a
// second agent waiting (and a dead agent's lease expires), SIGTERM stops `nimbus agent` after
// the current batch with a consistent state, and the metrics.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { ManualClock } from '../../src/shared/clock.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { createSyncControlService } from '../../src/cloud/sync/sync-control.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import { openConnectorSpace } from '../../src/sync/engine/space.ts';
import { backoffDelay } from '../../src/sync/scheduler/backoff.ts';
import { AgentMetrics, serveMetrics } from '../../src/sync/scheduler/metrics.ts';
import { startScheduler, type CycleResult, type Scheduler } from '../../src/sync/scheduler/scheduler.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { syncTenant, tempDir } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/nimbus.js', import.meta.url));
const BASE = 'DC=corp,DC=example,DC=com';

/** An AD-flavoured LDIF of users `name` in `ou`, with stable objectGUIDs from their index. */
function ldifOf(users: { n: number; ou: string }[]): string {
  return users
    .map(({ n, ou }) => {
      const guid = Buffer.alloc(16, 0);
      guid.writeUInt32BE(0xa9e17000 + n, 0);
      return [
        `dn: CN=user${n},OU=${ou},${BASE}`,
        'objectClass: top',
        'objectClass: person',
        'objectClass: organizationalPerson',
        'objectClass: user',
        `cn: user${n}`,
        `sAMAccountName: user${n}`,
        `userPrincipalName: user${n}@contoso.com`,
        `displayName: User ${n}`,
        `objectGUID:: ${guid.toString('base64')}`,
        '',
        '',
      ].join('\n');
    })
    .join('');
}
const range = (from: number, to: number, ou: string) => Array.from({ length: to - from }, (_, i) => ({ n: from + i, ou }));

/** Polls `cond` until true; a guard against hanging, not an assertion on time. */
async function waitFor<T>(what: string, cond: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Harness {
  cloud: TestCloud;
  t: TestTenant;
  dir: string;
  ldif: string;
  file: string;
  doc: Record<string, Record<string, unknown>>;
  config: SyncConfig;
}

async function harness(cloud: TestCloud, name: string, users: { n: number; ou: string }[], sync: Record<string, unknown> = {}): Promise<Harness> {
  // One cloud, many tenants: only the first may verify contoso.com; the others get the fallback UPN.
  const t = name === 'agenttriggers' ? await syncTenant(cloud, name) : await cloud.createTenant(name);
  if (name !== 'agenttriggers') await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  const dir = tempDir('nimbus-agent-');
  const ldif = join(dir, 'export.ldif');
  writeFileSync(ldif, ldifOf(users));
  const creds = await t.credentials('sync');
  writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
  const doc = {
    source: { type: 'ldif', path: './export.ldif', baseDn: BASE },
    target: { type: 'nimbus', url: cloud.url, tenant: t.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret' },
    sync: { interval: '1h', changePoll: '100ms', cloudPoll: '100ms', deletionThreshold: 3, dataDir: './agent', metrics: 'off', ...sync },
  };
  const file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify(doc));
  return { cloud, t, dir, ldif, file, doc, config: loadSyncConfig({ file, env: {} }) };
}

interface Running {
  scheduler: Scheduler;
  cycles: CycleResult[];
  logs: Record<string, unknown>[];
  metrics: AgentMetrics;
}

function run(h: Harness, opts: { holder?: string; waitForLease?: boolean; leaseTtlMs?: number; config?: SyncConfig } = {}): Running {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const cycles: CycleResult[] = [];
  const metrics = new AgentMetrics({ source: 'ldif' });
  const config = opts.config ?? h.config;
  const scheduler = startScheduler({
    config,
    reload: () => loadSyncConfig({ file: h.file, env: {} }),
    logger: pino({ level: 'debug' }, sink),
    metrics,
    onCycle: (c) => cycles.push(c),
    backoff: { baseMs: 200, maxMs: 1000 },
    ...(opts.holder ? { holder: opts.holder } : {}),
    ...(opts.waitForLease !== undefined ? { waitForLease: opts.waitForLease } : {}),
    ...(opts.leaseTtlMs ? { leaseTtlMs: opts.leaseTtlMs } : {}),
  });
  return { scheduler, cycles, logs, metrics };
}

const syncedUsers = (h: Harness) =>
  h.cloud.svc.db.selectFrom('users').select(['immutable_id', 'display_name', 'deleted_at']).where('tenant_id', '=', h.t.tenant.id).where('on_prem_sync_enabled', '=', 1).execute();
const liveCount = async (h: Harness) => (await syncedUsers(h)).filter((u) => !u.deleted_at).length;
const control = (h: Harness) => createSyncControlService(h.cloud.svc.deps);

let cloud: TestCloud;
const clock = new ManualClock(new Date());
beforeAll(async () => {
  cloud = await startCloud({ clock });
});
afterAll(async () => {
  await cloud?.close();
});

describe('nimbus agent: triggers and requests', () => {
  let h: Harness;
  let a: Running;
  beforeAll(async () => {
    h = await harness(cloud, 'agenttriggers', [...range(0, 10, 'Sales'), ...range(10, 15, 'IT')]);
    a = run(h);
    await waitFor('the first cycle', () => a.cycles.length >= 1);
  });
  afterAll(async () => {
    a.scheduler.stop('test end');
    await a.scheduler.done;
  });

  it('runs a first cycle at start, then a change in the source runs a cycle without waiting for the interval (1 h)', async () => {
    expect(a.cycles[0]).toMatchObject({ trigger: 'start', kind: 'full-import', report: { status: 'success' } });
    expect(await liveCount(h)).toBe(15);
    writeFileSync(h.ldif, ldifOf([...range(0, 10, 'Sales'), ...range(10, 15, 'IT'), { n: 15, ou: 'Marketing' }]));
    const c = await waitFor('a change-triggered cycle', () => a.cycles.find((x) => x.trigger === 'change'));
    expect(c.report?.status).toBe('success');
    expect(c.report?.counts.adds).toBe(1);
    expect(await liveCount(h)).toBe(16);
  });

  it('picks up a "sync now" request from the cloud directory and completes it with the run it made', async () => {
    const before = a.cycles.length;
    const { request, created } = await control(h).createRequest(cliActor(h.t.tenant.id), { kind: 'sync-now' });
    expect(created).toBe(true);
    // A second click while the first waits is the same request.
    expect((await control(h).createRequest(cliActor(h.t.tenant.id), { kind: 'sync-now' })).request.id).toBe(request.id);
    const done = await waitFor('the request to be done', async () => (await control(h).requests(cliActor(h.t.tenant.id), { status: 'done' })).find((r) => r.id === request.id));
    expect(done).toMatchObject({ kind: 'sync-now', result: 'success', claimedBy: a.scheduler.holder });
    // The cloud hears "done" just before the scheduler hands the cycle to onCycle: wait for it.
    const c = await waitFor('the cycle that claimed the request', () => a.cycles.slice(before).find((x) => x.requests.some((r) => r.id === request.id)));
    expect(c.trigger).toBe('request');
    expect(c.requests.map((r) => r.id)).toEqual([request.id]);
    expect(c.allowDeletes).toBe(false);
  });

  it('a run stopped by the deletion threshold deletes after an "allow deletes" request, for that one run only', async () => {
    // 5 IT users gone > deletionThreshold 3.
    writeFileSync(h.ldif, ldifOf([...range(0, 10, 'Sales'), { n: 15, ou: 'Marketing' }]));
    const stopped = await waitFor('the threshold stop', () => a.cycles.find((x) => x.report?.status === 'stopped-deletion-threshold-exceeded'));
    expect(stopped.report?.pendingDeletes).toHaveLength(5);
    expect(await liveCount(h)).toBe(16);
    expect(a.logs.some((l) => String(l.msg).includes('nimbus dirsync allow-deletes'))).toBe(true);

    const { request } = await control(h).createRequest(cliActor(h.t.tenant.id), { kind: 'allow-deletes' });
    const c = await waitFor('the allowed run', () => a.cycles.find((x) => x.allowDeletes));
    expect(c.requests.map((r) => r.id)).toEqual([request.id]);
    expect(c.report?.status).toBe('success');
    expect(c.report?.counts.deletes).toBe(5);
    expect(await liveCount(h)).toBe(11);
    const done = (await control(h).requests(cliActor(h.t.tenant.id), { top: 5 })).find((r) => r.id === request.id);
    expect(done).toMatchObject({ status: 'done', result: 'success' });
    // Only that run: 4 more deletes stop again.
    writeFileSync(h.ldif, ldifOf([...range(0, 6, 'Sales'), { n: 15, ou: 'Marketing' }]));
    const again = await waitFor('the next threshold stop', () => a.cycles.find((x) => x !== stopped && x.report?.status === 'stopped-deletion-threshold-exceeded'));
    expect(again.allowDeletes).toBe(false);
    expect(await liveCount(h)).toBe(11);
    writeFileSync(h.ldif, ldifOf([...range(0, 10, 'Sales'), { n: 15, ou: 'Marketing' }]));
    await waitFor('the source back as before', () => a.cycles.at(-1)?.report?.status === 'success' && a.cycles.at(-1)!.report!.counts.deletes === 0 ? true : undefined);
  });

  it('a broken config file is logged and ignored; a scope change in the file runs a full cycle by itself', async () => {
    writeFileSync(h.file, 'source: { type: ldif, path: [unclosed\n');
    await waitFor('the invalid-config log line', () => a.logs.find((l) => String(l.msg).includes('does not load; keeping the last good configuration')));
    expect(a.scheduler.status()).toMatchObject({ leaseHeld: true });
    const before = a.cycles.length;
    // Exclude Marketing: its one user leaves the scope.
    writeFileSync(h.file, stringify({ ...h.doc, source: { ...h.doc.source, exclude: [`OU=Marketing,${BASE}`] } }));
    const c = await waitFor('the config-triggered cycle', () => a.cycles.slice(before).find((x) => x.trigger === 'config'));
    expect(c).toMatchObject({ full: true, kind: 'full', report: { status: 'success' } });
    expect(c.report?.counts.deletes).toBe(1);
    expect(await liveCount(h)).toBe(10);
    // Later cycles are not full again: the change was handled once.
    writeFileSync(h.ldif, ldifOf([...range(0, 10, 'Sales'), { n: 15, ou: 'Marketing' }, { n: 16, ou: 'Sales' }]));
    const next = await waitFor('the next change cycle', () => a.cycles.slice(before).find((x) => x.trigger === 'change'));
    expect(next.full).toBe(false);
    expect(await liveCount(h)).toBe(11);
  });

  it('counts runs, objects and the lease in its metrics, and serves them at /metrics', async () => {
    const text = a.metrics.render();
    expect(text).toMatch(/^nimbus_sync_runs_total\{kind="full-import",status="success"\} \d+$/m);
    expect(text).toMatch(/^nimbus_sync_runs_total\{kind="full-import",status="stopped-deletion-threshold-exceeded"\} [1-9]\d*$/m);
    expect(text).toMatch(/^nimbus_sync_objects_total\{action="add"\} 17$/m);
    expect(text).toMatch(/^nimbus_sync_objects_total\{action="delete"\} 6$/m);
    expect(text).toMatch(/^nimbus_sync_cycles_total\{trigger="request"\} 2$/m);
    expect(text).toMatch(/^nimbus_sync_requests_total\{kind="allow-deletes"\} 1$/m);
    expect(text).toMatch(/^nimbus_sync_lease_held 1$/m);
    expect(text).toMatch(/^nimbus_sync_last_success_timestamp_seconds \d+(\.\d+)?$/m);
    expect(text).toMatch(/^nimbus_sync_run_duration_seconds_count\{kind="full"\} 1$/m);
    const srv = await serveMetrics('127.0.0.1:0', a.metrics, () => a.scheduler.status());
    try {
      const res = await fetch(`${srv.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      expect(await res.text()).toContain('# TYPE nimbus_sync_run_duration_seconds histogram');
      expect(await (await fetch(`${srv.url}/healthz`)).json()).toMatchObject({ leaseHeld: true, running: false });
      const port = new URL(srv.url).port;
      await expect(serveMetrics(`127.0.0.1:${port}`, a.metrics, () => ({}))).rejects.toThrow(/already in use.*NIMBUS_SYNC_METRICS/);
    } finally {
      await srv.close();
    }
  });
});

describe('nimbus agent: the export lease', () => {
  it('a second agent waits (or, with --no-wait, refuses) while the first holds the lease, and takes over when it is released', async () => {
    const h = await harness(cloud, 'agentlease', range(0, 5, 'Sales'));
    const first = run(h, { holder: 'agent-one' });
    await waitFor('the first agent cycle', () => first.cycles.length >= 1);

    const refused = run(h, { holder: 'agent-two', waitForLease: false });
    await expect(refused.scheduler.done).rejects.toThrow(/Another agent \(agent-one, app 'test-sync'\) holds the export lease of tenant 'agentlease' until .*without --no-wait/);
    expect(refused.cycles).toHaveLength(0);

    const second = run(h, { holder: 'agent-two', leaseTtlMs: 3000, config: { ...h.config, sync: { ...h.config.sync, dataDir: join(h.dir, 'agent2') } } });
    await waitFor('the standby to log who holds the lease', () => second.logs.find((l) => l.heldBy === 'agent-one'));
    expect(second.scheduler.status()).toMatchObject({ leaseHeld: false });
    expect(second.cycles).toHaveLength(0);

    first.scheduler.stop('test');
    await first.scheduler.done;
    expect(first.logs.some((l) => l.msg === 'export lease released')).toBe(true);
    const c = await waitFor('the standby to take over', () => second.cycles[0]);
    expect(c.report?.status).toBe('success');
    expect((await control(h).lease(h.t.tenant.id))?.holder).toBe('agent-two');
    second.scheduler.stop('test');
    await second.scheduler.done;
    expect(await control(h).lease(h.t.tenant.id)).toBeNull();
  });

  it('a staging agent is a warm standby: it runs its cycles beside the exporting agent, takes no lease and claims no request', async () => {
    const h = await harness(cloud, 'agentwarm', range(0, 4, 'Sales'));
    const active = run(h, { holder: 'active' });
    await waitFor('the active agent cycle', () => active.cycles.length >= 1);
    const standbyConfig = { ...h.config, sync: { ...h.config.sync, staging: true, dataDir: join(h.dir, 'standby') } };
    const standby = run(h, { holder: 'standby', config: standbyConfig });
    const staged = await waitFor('the standby cycle', () => standby.cycles[0]);
    expect(staged.report?.status).toBe('staged');
    expect((await control(h).lease(h.t.tenant.id))?.holder).toBe('active');
    // A "sync now" is the exporting agent's: the standby leaves it alone.
    const { request } = await control(h).createRequest(cliActor(h.t.tenant.id), { kind: 'sync-now' });
    // The scheduler reports the request done to the cloud, then ends the cycle (onCycle): wait for both.
    await waitFor('the active agent to complete the request', async () => (await control(h).requests(cliActor(h.t.tenant.id), { status: 'done' })).find((r) => r.id === request.id));
    await waitFor('the active agent cycle that ran it', () => active.cycles.find((c) => c.requests.some((r) => r.id === request.id)));
    expect(standby.cycles.flatMap((c) => c.requests)).toEqual([]);
    for (const a of [active, standby]) {
      a.scheduler.stop('test');
      await a.scheduler.done;
    }
  });

  it("a dead agent's lease expires: the standby takes over once the cloud's clock passes the expiry", async () => {
    const h = await harness(cloud, 'agentdead', range(0, 3, 'Sales'));
    const sync = await h.t.token('sync');
    // A holder that never renews or releases: an agent killed with SIGKILL.
    const took = await h.cloud.graph(sync, '/sync/v1/lease', { method: 'POST', body: { holder: 'dead-agent', ttlSeconds: 30 } });
    expect(took.body).toMatchObject({ acquired: true, holder: 'dead-agent' });
    const refused = await h.cloud.graph(sync, '/sync/v1/lease', { method: 'POST', body: { holder: 'other', ttlSeconds: 30 } });
    expect(refused.body).toMatchObject({ acquired: false, holder: 'dead-agent' });
    const standby = run(h, { holder: 'standby', leaseTtlMs: 3000 });
    await waitFor('the standby to see the dead lease', () => standby.logs.find((l) => l.heldBy === 'dead-agent'));
    expect(standby.cycles).toHaveLength(0);
    clock.advance(31_000);
    const c = await waitFor('the standby to take over', () => standby.cycles[0]);
    expect(c.report?.status).toBe('success');
    expect(await liveCount(h)).toBe(3);
    standby.scheduler.stop('test');
    await standby.scheduler.done;
  });

  it('lease and request endpoints check roles and states', async () => {
    const h = await harness(cloud, 'agentroles', []);
    const rw = await h.t.token('readwrite');
    const sync = await h.t.token('sync');
    expect((await h.cloud.graph(rw, '/sync/v1/lease', { method: 'POST', body: { holder: 'x', ttlSeconds: 30 } })).status).toBe(403);
    expect((await h.cloud.graph(sync, '/sync/v1/requests', { method: 'POST', body: { kind: 'sync-now' } })).status).toBe(403);
    const made = await h.cloud.graph(rw, '/sync/v1/requests', { method: 'POST', body: { kind: 'allow-deletes' } });
    expect(made.status).toBe(201);
    expect((await h.cloud.graph(rw, '/sync/v1/requests', { method: 'POST', body: { kind: 'delete-everything' } })).status).toBe(400);
    // Claiming needs the lease.
    const claim = await h.cloud.graph(sync, `/sync/v1/requests/${made.body.id}`, { method: 'PATCH', body: { holder: 'nobody', status: 'claimed' } });
    expect(claim.status).toBe(409);
    expect(claim.body.error.message).toMatch(/does not hold the export lease/);
    await h.cloud.graph(sync, '/sync/v1/lease', { method: 'POST', body: { holder: 'me', ttlSeconds: 30 } });
    expect((await h.cloud.graph(sync, `/sync/v1/requests/${made.body.id}`, { method: 'PATCH', body: { holder: 'me', status: 'done' } })).status).toBe(409);
    expect((await h.cloud.graph(sync, `/sync/v1/requests/${made.body.id}`, { method: 'PATCH', body: { holder: 'me', status: 'claimed' } })).body.status).toBe('claimed');
    const pending = await h.cloud.graph(sync, '/sync/v1/requests?status=pending');
    expect(pending.body.value).toEqual([]);
    expect((await h.cloud.graph(sync, '/sync/v1/lease?holder=me', { method: 'DELETE' })).status).toBe(204);
    expect((await h.cloud.graph(rw, '/sync/v1/lease')).body.value).toBeNull();
  });
});

describe('nimbus agent (the command)', () => {
  it('SIGTERM stops after the current export batch: the connector space matches the cloud, the lease is released, a restart finishes', async () => {
    const h = await harness(cloud, 'agentterm', range(0, 400, 'Sales'), { deletionThreshold: 500 });
    const doc = parseYaml(readFileSync(h.file, 'utf8')) as Record<string, Record<string, unknown>>;
    writeFileSync(h.file, stringify({ ...doc, target: { ...doc.target, batchSize: 5 } }));
    const child = spawn(process.execPath, [BIN, 'agent', '--config', h.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('some batches exported', async () => (await liveCount(h)) >= 60);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const logs = err.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.some((l) => l.msg === 'stopping after the current export batch')).toBe(true);
    expect(logs.some((l) => l.msg === 'export lease released')).toBe(true);
    expect(logs.at(-1)?.msg).toBe('agent stopped');
    // No secret in the logs.
    expect(err).not.toContain(readFileSync(join(h.dir, 'app.secret'), 'utf8').trim());
    expect(await control(h).lease(h.t.tenant.id)).toBeNull();

    const inCloud = await liveCount(h);
    expect(inCloud).toBeLessThan(400);
    const space = await openConnectorSpace(join(h.dir, 'agent'));
    const exported = (space.sqlite.prepare('SELECT count(*) AS n FROM objects WHERE exported_hash IS NOT NULL').get() as { n: number }).n;
    await space.close();
    // Every object the cloud confirmed is recorded, nothing more: the batch in flight finished.
    expect(exported).toBe(inCloud);

    const again = run(h);
    const c = await waitFor('the restart cycle', () => again.cycles[0]);
    again.scheduler.stop('test');
    await again.scheduler.done;
    expect(c.report?.status).toBe('success');
    expect(c.report?.counts.adds).toBe(400 - inCloud);
    const all = await syncedUsers(h);
    expect(all).toHaveLength(400);
    expect(new Set(all.map((u) => u.immutable_id)).size).toBe(400);
  });
});

describe('backoff', () => {
  it('doubles from the base up to the cap, with at most 20% jitter off', () => {
    const fixed = { baseMs: 1000, maxMs: 8000, random: () => 0 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffDelay(n, fixed))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(backoffDelay(1, { baseMs: 1000, random: () => 0.999 })).toBeGreaterThanOrEqual(800);
    expect(backoffDelay(2, { baseMs: 1000, random: () => 0.5 })).toBe(1800);
  });
});
