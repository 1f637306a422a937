// Benchmark: delta rounds against a cloud directory holding N synced users, with the store's
// idle checkpoint (the default) and with SQLite's automatic checkpoint only (every ~200 MB of
// WAL, inside whichever commit crosses it). Each round applies one batch of changed users
// through the sync service, as an agent's delta does, then the store sits idle. Prints the
// rounds' apply times (median, p90, slowest) and appends them to
// bench/results/cloud-checkpoint.jsonl; never asserts on time.
// Usage: node --import tsx bench/cloud-checkpoint.ts [--users 20000] [--changed 1000] [--rounds 30] [--idle 1500]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Actor } from '../src/cloud/services/context.ts';
import { createServices } from '../src/cloud/services/index.ts';
import { openStore } from '../src/cloud/store/store.ts';
import type { SyncItem } from '../src/cloud/sync/sync-wire.ts';
import { readyForSync } from '../test/sync/helpers.ts';
import { runCompiled } from './compiled.ts';
import { pct, recordResults } from './results.ts';

runCompiled(import.meta.url);

const { values } = parseArgs({
  options: { users: { type: 'string', default: '20000' }, changed: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '30' }, idle: { type: 'string', default: '1500' }, source: { type: 'boolean' } },
});
const N = Number(values.users);
const R = Number(values.changed);
const ROUNDS = Number(values.rounds);
const IDLE = Number(values.idle);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const depts = ['Sales', 'Legal', 'Finance', 'Engineering', 'Support', 'Marketing'];
function userAttrs(i: number, round = 0): Record<string, unknown> {
  const name = `User${String(i).padStart(6, '0')}`;
  return {
    userPrincipalName: `${name.toLowerCase()}@contoso.com`,
    displayName: round ? `${name} Person r${round}` : `${name} Person`,
    givenName: name,
    surname: 'Person',
    mail: `${name.toLowerCase()}@contoso.com`,
    proxyAddresses: [`SMTP:${name.toLowerCase()}@contoso.com`, `smtp:${name.toLowerCase()}@corp.example.com`],
    accountEnabled: true,
    jobTitle: 'Associate',
    department: depts[(i + round) % depts.length],
    employeeId: String(100000 + i),
    onPremisesDistinguishedName: `CN=${name} Person,OU=Users,DC=corp,DC=example,DC=com`,
    onPremisesSamAccountName: name.toLowerCase(),
    onPremisesDomainName: 'corp.example.com',
  };
}
const anchorOf = (i: number) => Buffer.from(`bench-anchor-${i}`).toString('base64');
const upsert = (i: number, round = 0): SyncItem => ({ op: 'upsert', type: 'user', sourceAnchor: anchorOf(i), attributes: userAttrs(i, round) });

async function rounds(idleCheckpointMs: number | undefined) {
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-bench-ckpt-'));
  const svc = createServices({ db: await openStore({ dataDir, ...(idleCheckpointMs === undefined ? {} : { idleCheckpointMs }) }) });
  const walMB = () => {
    try {
      return Math.round(statSync(join(dataDir, 'nimbus.db-wal')).size / 1e6);
    } catch {
      return 0;
    }
  };
  try {
    const tenant = await svc.tenants.create('bench');
    await readyForSync(svc, tenant.id);
    const actor: Actor = { tenantId: tenant.id, kind: 'app', id: 'bench', name: 'bench', role: 'sync' };
    for (let i = 0; i < N; i += 5000) await svc.sync.apply(actor, Array.from({ length: Math.min(5000, N - i) }, (_, k) => upsert(i + k)));
    await sleep(IDLE);
    let seed = 1;
    const rand = (k: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % k;
    const times: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const items = Array.from({ length: R }, () => upsert(rand(N), round));
      const t = performance.now();
      await svc.sync.apply(actor, items);
      times.push(performance.now() - t);
      process.stdout.write(`  round ${round}: ${times.at(-1)!.toFixed(0)} ms, WAL ${walMB()} MB\n`);
      await sleep(IDLE);
    }
    const median = Math.round(pct(times, 50));
    return { medianMs: median, p90Ms: Math.round(pct(times, 90)), maxMs: Math.round(pct(times, 100)), roundsOver2xMedian: times.filter((t) => t > 2 * median).length };
  } finally {
    await svc.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const figures: Record<string, unknown> = { users: N, changedPerRound: R, rounds: ROUNDS, idleMs: IDLE };
console.log(`${N} users, ${ROUNDS} rounds of ${R} changed users, ${IDLE} ms idle between rounds`);
for (const [name, ms] of [['idleCheckpoint', undefined], ['automaticOnly', 0]] as const) {
  console.log(name);
  figures[name] = await rounds(ms);
}
recordResults('cloud-checkpoint', figures);
