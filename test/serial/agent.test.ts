// `nimbus agent` against a real Samba AD DC and a real cloud directory over HTTP, as separate
// processes: a change made in AD reaches the cloud by itself well within one interval (1 h),
// /metrics reports the runs, a scope change in the config file runs a full cycle by itself,
// and two agents never export at once (the second refuses with --no-wait or waits; a dead
// agent's lease expires and the standby takes over); SIGTERM stops cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { ManualClock } from '../../src/shared/clock.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { createSyncControlService } from '../../src/cloud/sync/sync-control.ts';
import { loadSyncConfig } from '../../src/sync/config.ts';
import { createChangeProbe } from '../../src/sync/scheduler/change-probe.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { useSamba } from '../helpers/samba.ts';
import { tempDir } from '../sync/helpers.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 600_000 });

const BIN = fileURLToPath(new URL('../../bin/nimbus.js', import.meta.url));
const ad = useSamba();
const clock = new ManualClock(new Date());
let cloud: TestCloud;
let t: TestTenant;
const agents: Agent[] = [];

interface Agent {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnAgent(file: string, args: string[] = []): Agent {
  const child = spawn(process.execPath, [BIN, 'agent', '--config', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  let partial = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (l.startsWith('{')) logs.push(JSON.parse(l) as Record<string, unknown>);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const a = { child, logs, stderr: () => err, exited };
  agents.push(a);
  return a;
}

/** Polls `cond` until true; a guard against hanging, not an assertion on time. */
async function waitFor<T>(what: string, cond: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const logged = (a: Agent, msg: string, fields: Record<string, unknown> = {}) => a.logs.find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));

let configDoc: Record<string, Record<string, unknown>>;
function writeAgentConfig(dir: string, source: Record<string, unknown> = {}): string {
  const file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify({ ...configDoc, source: { ...configDoc.source, ...source } }));
  return file;
}

const usersOf = () => cloud.svc.db.selectFrom('users').selectAll().where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1);

beforeAll(async () => {
  cloud = await startCloud({ clock });
  t = await cloud.createTenant('agentad');
  await cloud.svc.domains.add(cliActor(t.tenant.id), ad().manifest.upnSuffixes.routable);
  await cloud.svc.domains.verify(cliActor(t.tenant.id), ad().manifest.upnSuffixes.routable, { force: true });
  await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  const creds = await t.credentials('sync');
  configDoc = {
    source: { type: 'ad', url: ad().url, bindDn: ad().bindDN, passwordFile: './ad.pw', baseDn: ad().baseDN },
    target: { type: 'nimbus', url: cloud.url, tenant: t.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret' },
    sync: { interval: '1h', changePoll: '300ms', cloudPoll: '300ms', deletionThreshold: 100_000, dataDir: './agent', metrics: '127.0.0.1:0' },
  };
});

afterAll(async () => {
  for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
  await cloud?.close();
});

function writeSecrets(dir: string) {
  return (async () => {
    const creds = await t.credentials('sync');
    writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'ad.pw'), `${ad().password}\n`, { mode: 0o600 });
  })();
}

describe('the change probe against Samba AD', () => {
  it('hears of a write through change notification at once, and polls the USN when notification is off', async () => {
    const dir = tempDir('nimbus-probe-ad-');
    await writeSecrets(dir);
    const file = writeAgentConfig(dir);
    const probe = createChangeProbe(loadSyncConfig({ file, env: {} }));
    const usn = createChangeProbe(loadSyncConfig({ file, env: { NIMBUS_SYNC_CHANGE_NOTIFICATION: 'false' } }));
    const c = new Client({ url: ad().url });
    await c.bind(ad().bindDN, ad().password);
    try {
      let heard = 0;
      probe.onChange?.(() => heard++);
      const before = await probe.token();
      expect(probe.kind).toBe('ad-notification');
      const usnBefore = await usn.token();
      expect(usn.kind).toBe('ad-usn');
      const dn = (await c.search(ad().baseDN, { scope: 'sub', filter: '(&(objectClass=user)(title=*))', attributes: ['dn'], sizeLimit: 1 })).searchEntries[0]!.dn;
      await c.modify(dn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [`Probe ${Date.now()}`] }) })]);
      // The DC's own report, not a poll: the listener runs without token() being asked.
      await waitFor('the change notification', () => heard > 0, 10_000);
      expect(await probe.token()).not.toBe(before);
      expect(await usn.token()).not.toBe(usnBefore);
    } finally {
      await c.unbind();
      await probe.close();
      await usn.close();
    }
  });
});

describe('nimbus agent against Samba AD', () => {
  let dirA: string;
  let fileA: string;
  let a: Agent;
  let target: { id: string; dn: string };

  it('syncs at start, then picks up a change made in AD by itself, long before the interval (1 h)', async () => {
    dirA = tempDir('nimbus-agent-ad-');
    await writeSecrets(dirA);
    fileA = writeAgentConfig(dirA);
    a = spawnAgent(fileA);
    const first = await waitFor('the first cycle', () => logged(a, 'cycle ended', { trigger: 'start' }), 300_000);
    expect(first).toMatchObject({ kind: 'full-import', status: 'success' });
    const u = await usersOf().where('on_prem_distinguished_name', 'like', 'CN=%OU=%').where('deleted_at', 'is', null).orderBy('on_prem_distinguished_name').executeTakeFirstOrThrow();
    target = { id: u.id, dn: u.on_prem_distinguished_name! };
    const title = `Agent Latency ${Date.now()}`;
    const c = new Client({ url: ad().url });
    await c.bind(ad().bindDN, ad().password);
    try {
      await c.modify(target.dn, [new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [title] }) })]);
    } finally {
      await c.unbind();
    }
    await waitFor('the title in the cloud', async () => (await usersOf().where('id', '=', target.id).executeTakeFirst())?.job_title === title);
    // The export commits before the agent logs the end of its cycle (it reports the run first).
    const delta = await waitFor('the change cycle in the log', () => logged(a, 'cycle ended', { trigger: 'change' }));
    expect(delta).toMatchObject({ kind: 'delta', status: 'success' });
    expect(delta.updates).toBeGreaterThanOrEqual(1);
  });

  it('serves Prometheus metrics: runs by kind and status, objects per action, the lease, the last success', async () => {
    const url = (logged(a, 'serving Prometheus metrics')?.url as string | undefined) ?? '';
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const text = await (await fetch(url)).text();
    const synced = (await usersOf().execute()).length + (await cloud.svc.db.selectFrom('groups').select('id').where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1).execute()).length;
    expect(text).toMatch(/^nimbus_sync_runs_total\{kind="full-import",status="success"\} 1$/m);
    expect(text).toMatch(/^nimbus_sync_runs_total\{kind="delta",status="success"\} [1-9]\d*$/m);
    expect(text).toContain(`nimbus_sync_objects_total{action="add"} ${synced}`);
    expect(text).toMatch(/^nimbus_sync_objects_total\{action="update"\} [1-9]\d*$/m);
    expect(text).toMatch(/^nimbus_sync_cycles_total\{trigger="change"\} [1-9]\d*$/m);
    expect(text).toMatch(/^nimbus_sync_lease_held 1$/m);
    expect(text).toMatch(/^nimbus_sync_last_success_timestamp_seconds \d{10}/m);
    expect(text).toMatch(/^nimbus_sync_run_duration_seconds_bucket\{kind="delta",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^nimbus_agent_info\{.*source="ad".*\} 1$/m);
  });

  it('a scope change in the config file runs a full cycle by itself', async () => {
    const ou = target.dn.slice(target.dn.indexOf(',') + 1);
    const inOu = (await usersOf().where('deleted_at', 'is', null).execute()).filter((u) => u.on_prem_distinguished_name?.toLowerCase().endsWith(`,${ou.toLowerCase()}`)).length;
    expect(inOu).toBeGreaterThan(0);
    writeAgentConfig(dirA, { exclude: [ou] });
    const full = await waitFor('the config-triggered cycle', () => logged(a, 'cycle ended', { trigger: 'config' }), 300_000);
    expect(full).toMatchObject({ kind: 'full', status: 'success' });
    expect(full.deletes).toBeGreaterThanOrEqual(inOu);
    expect((await usersOf().where('id', '=', target.id).executeTakeFirstOrThrow()).deleted_at).not.toBeNull();
  });

  it('two agents never export at once: a second refuses with --no-wait or waits; a killed agent\'s lease expires and the standby takes over', async () => {
    const dirB = tempDir('nimbus-agent-ad-b-');
    await writeSecrets(dirB);
    const fileB = writeAgentConfig(dirB, { exclude: [target.dn.slice(target.dn.indexOf(',') + 1)] });
    const holderA = logged(a, 'agent started')!.holder as string;

    const refused = spawnAgent(fileB, ['--no-wait']);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(`error: Another agent (${holderA}, app 'test-sync') holds the export lease of tenant 'agentad'`);
    expect(refused.logs.some((l) => l.msg === 'cycle started')).toBe(false);

    const b = spawnAgent(fileB);
    await waitFor('the standby to report who holds the lease', () => b.logs.find((l) => l.heldBy === holderA));
    // Kill the first agent without a chance to release its lease.
    a.child.kill('SIGKILL');
    await a.exited;
    const lease = await createSyncControlService(cloud.svc.deps).lease(t.tenant.id);
    expect(lease?.holder).toBe(holderA);
    expect(b.logs.some((l) => l.msg === 'cycle started')).toBe(false);
    // The cloud's clock passes the dead lease's expiry (30 s): the standby takes it.
    clock.advance(31_000);
    await waitFor('the standby to take the lease', () => logged(b, 'export lease acquired'), 30_000);
    const c = await waitFor('the standby cycle', () => logged(b, 'cycle ended', { trigger: 'start' }), 300_000);
    expect(c).toMatchObject({ kind: 'full-import', status: 'success', adds: 0, deletes: 0 });
    const holderB = logged(b, 'agent started')!.holder as string;
    expect((await createSyncControlService(cloud.svc.deps).lease(t.tenant.id))?.holder).toBe(holderB);

    // SIGTERM: a clean stop releases the lease at once.
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    expect(logged(b, 'export lease released')).toBeDefined();
    expect(await createSyncControlService(cloud.svc.deps).lease(t.tenant.id)).toBeNull();
  });
});
