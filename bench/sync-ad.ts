// Benchmark: sync from a real Samba AD DC (the generator's seeded fixture) into a cloud
// directory (in-process exporter, the agent on a worker thread; SQLite store): a full sync, a
// delta after 1% churn and a no-change delta, each beside a plain paged `ldapsearch` of the
// same entries from the same server (the floor: what reading them costs at all). Prints figures and appends them to
// bench/results/sync-ad.jsonl; never asserts on time.
// The delta after churn runs --deltas times (each after its own 1% churn): the median is the
// figure, every round is listed (this machine's speed drifts by a quarter between minutes).
// Usage: node --import tsx bench/sync-ad.ts [--users N] [--seed S] [--deltas N]
// (Runs from the sources: the Samba fixture scripts find their files and cache next to them.
// Its figures are times, which compiling does not change; memory is sync-ldif.ts's measure.)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'ldapts';
import { stringify } from 'yaml';
import { applyChurn } from '../scripts/generator/churn.ts';
import { startCloud } from '../test/helpers/cloud.ts';
import { startSambaDirectory } from '../test/helpers/samba.ts';
import { syncTenant } from '../test/sync/helpers.ts';
import { openSyncAgentThread } from '../src/sync/agent-thread.ts';
import { loadSyncConfig } from '../src/sync/config.ts';
import { AD_OBJECT_FILTER, DEFAULT_AD_ATTRIBUTES } from '../src/sync/connectors/ad/ad-connector-config.ts';
import { createInProcessExporter } from '../src/sync/engine/exporter-inprocess.ts';
import type { Phase, RunReport } from '../src/sync/engine/run.ts';
import { recordResults } from './results.ts';
import { tuneHeap } from '../src/shared/heap.ts';

// The heap setting the nimbus command applies (src/cli/main.ts), so peak RSS is the product's.
tuneHeap();

const { values } = parseArgs({ options: { users: { type: 'string', default: '2000' }, seed: { type: 'string', default: '1' }, deltas: { type: 'string', default: '3' } } });
const users = Number(values.users);
const rounds = Math.max(1, Number(values.deltas));

const dc = await startSambaDirectory({ users, seed: Number(values.seed) });
const cloud = await startCloud();
const work = mkdtempSync(path.join(os.tmpdir(), 'nimbus-bench-ad-'));
try {
  const t = await syncTenant(cloud, 'bench');
  const creds = await t.credentials('sync');
  writeFileSync(path.join(work, 'app.secret'), creds.clientSecret, { mode: 0o600 });
  writeFileSync(path.join(work, 'ad.pw'), dc.password, { mode: 0o600 });
  const file = path.join(work, 'nimbus.yaml');
  writeFileSync(
    file,
    stringify({
      source: { type: 'ad', url: dc.url, bindDn: dc.bindDN, passwordFile: './ad.pw', baseDn: dc.baseDN },
      target: { type: 'nimbus', url: cloud.url, tenant: 'bench', clientId: creds.clientId, clientSecretFile: './app.secret' },
      sync: { deletionThreshold: 100_000, dataDir: './agent' },
    }),
  );
  const config = loadSyncConfig({ file, env: {} });

  const highestUsn = async (): Promise<number> => {
    const c = new Client({ url: dc.url });
    await c.bind(dc.bindDN, dc.password);
    const r = await c.search('', { scope: 'base', attributes: ['highestCommittedUSN'] });
    await c.unbind();
    return Number(r.searchEntries[0]!.highestCommittedUSN);
  };
  /** The floor: ldapsearch, paged 1000, the connector's filter and attributes, output discarded. */
  const floor = (filter: string): { seconds: number; entries: number } => {
    const start = performance.now();
    const out = execFileSync('ldapsearch', ['-x', '-LLL', '-H', dc.url, '-D', dc.bindDN, '-y', path.join(work, 'ad.pw'), '-b', dc.baseDN, '-E', 'pr=1000/noprompt', filter, ...DEFAULT_AD_ATTRIBUTES], { maxBuffer: 1 << 30 });
    const seconds = (performance.now() - start) / 1000;
    return { seconds, entries: (out.toString('latin1').match(/^dn:/gm) ?? []).length };
  };
  // The agent on its own thread, the cloud directory on this one, as `nimbus start` runs them;
  // opened once and kept, as `nimbus start` and `nimbus agent` keep it between cycles (opening
  // starts the thread and loads the engine there: reported on its own).
  const opening = performance.now();
  const agent = await openSyncAgentThread(config, { exporter: await createInProcessExporter(cloud.svc, 'bench') });
  const openSeconds = Number(((performance.now() - opening) / 1000).toFixed(3));
  type Sync = { seconds: number; kind: string; report: RunReport; phases: Partial<Record<Phase, number>> };
  const sync = async (): Promise<Sync> => {
    const start = performance.now();
    // Seconds per phase: from one phase's first progress call to the next phase's.
    const phases: Sync['phases'] = {};
    let current: Phase | undefined;
    let at = start;
    const onProgress = (p: { phase: Phase }) => {
      if (p.phase === current) return;
      const now = performance.now();
      if (current) phases[current] = Number(((now - at) / 1000).toFixed(3));
      current = p.phase;
      at = now;
    };
    const report = await agent.run({ onProgress });
    if (current) phases[current] = Number(((performance.now() - at) / 1000).toFixed(3));
    return { seconds: (performance.now() - start) / 1000, kind: report.kind, report, phases };
  };
  const figures = (s: Sync, f: { seconds: number; entries: number }) => ({
    kind: s.kind,
    status: s.report.status,
    seconds: Number(s.seconds.toFixed(3)),
    phases: s.phases,
    read: s.report.counts.read,
    objectsPerSecond: Math.round(s.report.counts.read / s.seconds),
    counts: { adds: s.report.counts.adds, updates: s.report.counts.updates, deletes: s.report.counts.deletes, errors: s.report.counts.errors },
    floorSeconds: Number(f.seconds.toFixed(3)),
    floorEntries: f.entries,
    ratioToFloor: Number((s.seconds / Math.max(0.001, f.seconds)).toFixed(2)),
  });

  const fullFloor = floor(AD_OBJECT_FILTER);
  const full = await sync();
  // 1% of the users: creates, deletes, modifies, a rename and a move; then the delta.
  const pct = (p: number) => Math.max(1, Math.round((users * p) / 100));
  const deltas: { sync: Sync; floor: { seconds: number; entries: number }; churn: Awaited<ReturnType<typeof applyChurn>> }[] = [];
  for (let round = 0; round < rounds; round++) {
    const usnBeforeChurn = await highestUsn();
    const churn = await applyChurn({ url: dc.url, bindDN: dc.bindDN, password: dc.password, rootOU: dc.manifest.rootOU, flavour: 'ad', domainDnsName: dc.domainDnsName }, { creates: pct(0.25), deletes: pct(0.25), modifies: pct(0.4), renames: pct(0.05), moves: pct(0.05) }, 5 + round);
    // The delta floor: the changed entries, read by uSNChanged (tombstones aside).
    const floorNow = floor(`(&${AD_OBJECT_FILTER}(uSNChanged>=${usnBeforeChurn + 1}))`);
    deltas.push({ sync: await sync(), floor: floorNow, churn });
  }
  const median = [...deltas].sort((a, b) => a.sync.seconds - b.sync.seconds)[Math.floor((deltas.length - 1) / 2)]!;
  const { churn } = median;
  const usnNow = await highestUsn();
  const quietFloor = floor(`(&${AD_OBJECT_FILTER}(uSNChanged>=${usnNow + 1}))`);
  const quiet = await sync();
  await agent.close();

  recordResults('sync-ad', {
    users,
    directoryEntries: fullFloor.entries,
    churn: { created: churn.created.length, deleted: churn.deleted.length, modified: churn.modified.length, renamed: churn.renamed.length, moved: churn.moved.length, errors: churn.errors.length },
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    openSeconds,
    full: figures(full, fullFloor),
    deltaAfterChurn: { ...figures(median.sync, median.floor), rounds: deltas.map((d) => ({ seconds: Number(d.sync.seconds.toFixed(3)), floorSeconds: Number(d.floor.seconds.toFixed(3)), phases: d.sync.phases })) },
    noChangeDelta: figures(quiet, quietFloor),
    note: 'in-process exporter, the agent on a worker thread opened once (openSeconds) for all the runs; the cloud directory shares this process (peak RSS includes it); Samba runs beside it',
  });
} finally {
  await cloud.close();
  await dc.stop();
  rmSync(work, { recursive: true, force: true });
}
