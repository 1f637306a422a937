// Benchmark: change-to-cloud latency of the agent (`nimbus agent`'s scheduler) against a real
// Samba AD DC and a cloud directory over HTTP: an attribute is changed in AD (LDAP modify),
// and the clock runs until the cloud directory holds the new value. Compared: AD change
// notification (what the agent does by default), the RootDSE highestCommittedUSN probe at
// several sync.changePoll periods (its fallback), and a
// plain short-interval DirSync poll (a delta cycle every 500 ms, no probe). Also the idle cost
// of each: this process's CPU (agent + cloud) and the run reports it writes, over 10 s with
// no change. Prints figures and appends them to bench/results/agent-latency.jsonl; never
// asserts on time. Run it through the Samba lock:
//   flock /tmp/nimbus-samba.lock node --import tsx bench/agent-latency.ts [--users N] [--changes N]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Attribute, Change, Client } from 'ldapts';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { systemClock } from '../src/shared/clock.ts';
import { cliActor } from '../src/cloud/services/context.ts';
import { loadSyncConfig } from '../src/sync/config.ts';
import { AgentMetrics } from '../src/sync/scheduler/metrics.ts';
import { startScheduler, type CycleResult } from '../src/sync/scheduler/scheduler.ts';
import { startCloud } from '../test/helpers/cloud.ts';
import { startSambaDirectory } from '../test/helpers/samba.ts';
import { pct, recordResults } from './results.ts';

const { values } = parseArgs({ options: { users: { type: 'string', default: '2000' }, changes: { type: 'string', default: '20' } } });
const users = Number(values.users);
const changes = Number(values.changes);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dc = await startSambaDirectory({ users });
const cloud = await startCloud({ clock: systemClock });
const work = mkdtempSync(path.join(os.tmpdir(), 'nimbus-bench-agent-'));
const ldap = new Client({ url: dc.url });
try {
  const t = await cloud.createTenant('latency');
  await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  const creds = await t.credentials('sync');
  writeFileSync(path.join(work, 'app.secret'), creds.clientSecret, { mode: 0o600 });
  writeFileSync(path.join(work, 'ad.pw'), dc.password, { mode: 0o600 });
  const file = path.join(work, 'nimbus.yaml');
  const writeConfig = (sync: Record<string, unknown>) =>
    writeFileSync(
      file,
      stringify({
        source: { type: 'ad', url: dc.url, bindDn: dc.bindDN, passwordFile: './ad.pw', baseDn: dc.baseDN },
        target: { type: 'nimbus', url: cloud.url, tenant: 'latency', clientId: creds.clientId, clientSecretFile: './app.secret' },
        sync: { deletionThreshold: 100_000, dataDir: './agent', metrics: 'off', cloudPoll: '2s', ...sync },
      }),
    );
  await ldap.bind(dc.bindDN, dc.password);

  const modes = [
    { name: 'change-notification', sync: { interval: '1h', changePoll: '1s', changeNotification: true } },
    { name: 'usn-probe-250ms', sync: { interval: '1h', changePoll: '250ms', changeNotification: false } },
    { name: 'usn-probe-500ms', sync: { interval: '1h', changePoll: '500ms', changeNotification: false } },
    { name: 'usn-probe-1s', sync: { interval: '1h', changePoll: '1s', changeNotification: false } },
    { name: 'dirsync-poll-500ms', sync: { interval: '500ms', changePoll: '0s', changeNotification: false } },
  ];
  const figures: Record<string, unknown> = { users, changes };
  for (const mode of modes) {
    writeConfig(mode.sync);
    const config = loadSyncConfig({ file, env: {} });
    const cycles: CycleResult[] = [];
    const scheduler = startScheduler({ config, reload: () => loadSyncConfig({ file, env: {} }), logger: pino({ level: 'silent' }), metrics: new AgentMetrics({}), onCycle: (c) => cycles.push(c) });
    while (cycles.length === 0) await sleep(20);
    if (cycles[0]!.report?.status !== 'success') throw new Error(`first cycle: ${cycles[0]!.report?.status} ${cycles[0]!.report?.message ?? cycles[0]!.error?.message}`);
    const synced = await cloud.svc.db.selectFrom('users').select(['id', 'on_prem_distinguished_name']).where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1).where('deleted_at', 'is', null).limit(200).execute();

    // Idle cost: no change for 10 s.
    await sleep(1000);
    const runsBefore = (await cloud.svc.sync.runs(t.tenant.id, 200)).runs.length;
    const cyclesBefore = cycles.length;
    const cpu0 = process.cpuUsage();
    await sleep(10_000);
    const cpu = process.cpuUsage(cpu0);
    const idle = { cpuMsPer10s: Math.round((cpu.user + cpu.system) / 1000), cyclesPer10s: cycles.length - cyclesBefore, runReportsPer10s: (await cloud.svc.sync.runs(t.tenant.id, 200)).runs.length - runsBefore };

    const latencies: number[] = [];
    for (let i = 0; i < changes; i++) {
      const u = synced[(i * 7) % synced.length]!;
      const title = `${mode.name} ${i} ${Date.now()}`;
      // A random phase against the probe period, so the figures cover every phase.
      await sleep(Math.random() * 1000);
      await ldap.modify(u.on_prem_distinguished_name!, [new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [title] }) })]);
      const t0 = performance.now();
      for (;;) {
        const row = await cloud.svc.db.selectFrom('users').select('job_title').where('id', '=', u.id).executeTakeFirstOrThrow();
        if (row.job_title === title) break;
        if (performance.now() - t0 > 30_000) throw new Error(`${mode.name}: change ${i} did not reach the cloud in 30 s`);
        await sleep(5);
      }
      latencies.push(performance.now() - t0);
    }
    scheduler.stop('bench');
    await scheduler.done;
    const r = { p50Ms: Math.round(pct(latencies, 50)), p95Ms: Math.round(pct(latencies, 95)), maxMs: Math.round(Math.max(...latencies)), idle };
    figures[mode.name] = r;
    process.stdout.write(`${mode.name}: p50 ${r.p50Ms} ms, p95 ${r.p95Ms} ms, max ${r.maxMs} ms; idle 10 s: ${idle.cpuMsPer10s} ms CPU, ${idle.cyclesPer10s} cycles, ${idle.runReportsPer10s} run reports\n`);
  }
  recordResults('agent-latency', figures);
} finally {
  await ldap.unbind().catch(() => undefined);
  await cloud.close();
  await dc.stop();
  rmSync(work, { recursive: true, force: true });
}
