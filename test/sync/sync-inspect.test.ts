// Run history, its retention, `nimbus sync errors` and `nimbus sync explain`, from a generated
// AD LDIF export synced over HTTP into a real cloud directory (real SQLite connector space).
// The CLI is spawned for the exit codes and the --json shapes; the rest calls the same code.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest, ManifestEntry } from '../../scripts/generator/manifest.ts';
import { explainId } from '../../src/cli/sync-inspect.ts';
import { pruneSyncRuns } from '../../src/cloud/sync/sync-run-retention.ts';
import { openSyncAgent } from '../../src/sync/agent.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import { findObjects, guidTextToAnchor, listRuns, objectErrors, type ErrorEntry } from '../../src/sync/engine/explain.ts';
import { openConnectorSpace, readConnectorSpace } from '../../src/sync/engine/space.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { generatedLdif, syncTenant, tempDir, writeConfig } from './helpers.ts';
import { runNimbus } from '../helpers/nimbus-cli.ts';

let cloud: TestCloud;
let t: TestTenant;
let dir: string;
let file: string;
let config: SyncConfig;
let manifest: Manifest;
/** The user whose mapped usageLocation is invalid: a per-object sync error. */
let broken: ManifestEntry;

const nimbus = (args: string[]) => runNimbus(args);

async function runOnce(c: SyncConfig = config) {
  const agent = await openSyncAgent(c);
  try {
    return await agent.run();
  } finally {
    await agent.close();
  }
}

const plain = (e: ManifestEntry) => Object.entries(manifest.edgeCases).filter(([, l]) => l.some((x) => x.key === e.key)).every(([k]) => ['upn-routable-suffix', 'upn-domain-suffix', 'manager'].includes(k));

beforeAll(async () => {
  cloud = await startCloud();
  t = await syncTenant(cloud, 'contoso');
  dir = tempDir('nimbus-inspect-');
  const g = await generatedLdif(dir, 200);
  manifest = g.manifest;
  const candidates = manifest.edgeCases['upn-routable-suffix'].filter(plain);
  broken = candidates[2]!;
  // A cloud-only user to soft-match, as an administrator would have created before sync.
  const rw = await t.token('readwrite');
  const soft = candidates[0]!;
  expect((await cloud.graph(rw, 'users', { method: 'POST', body: newUser(t.tenant, 'softy', { userPrincipalName: soft.userPrincipalName }) })).status).toBe(201);
  ({ file, config } = await writeConfig(dir, cloud, t, {
    ldif: g.path,
    source: { exclude: [`OU=Service Accounts,${manifest.rootOU}`] },
    // usageLocation takes 2 letters: one user gets 3, a per-object error naming the attribute.
    mapping: { user: { usageLocation: `sAMAccountName = '${broken.sAMAccountName}' ? 'XYZ' : 'DE'` } },
  }));
});
afterAll(async () => cloud?.close());

describe('run history', () => {
  it('records every run (kind, start, end, counts, status, errors); `sync runs` lists them newest first', async () => {
    const first = await runOnce();
    expect(first.status).toBe('completed-with-errors');
    const second = await runOnce();
    const db = readConnectorSpace(config.sync.dataDir)!;
    try {
      const runs = listRuns(db, 10);
      expect(runs.map((r) => r.id)).toEqual([second.runId, first.runId]);
      expect(runs[1]).toMatchObject({ kind: 'full-import', status: 'completed-with-errors', startedAt: first.startedAt, endedAt: first.endedAt });
      expect(runs[1]!.counts).toMatchObject({ adds: first.counts.adds, errors: 1 });
      expect(runs[1]!.counts.adds).toBeGreaterThan(100);
      expect(runs[1]!.errors).toEqual([expect.objectContaining({ phase: 'sync', message: expect.stringContaining('usageLocation') })]);
      expect(runs[0]!.counts).toMatchObject({ adds: 0, updates: 0 });
    } finally {
      db.close();
    }
    const cli = await nimbus(['sync', 'runs', '--config', file, '--limit', '1', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as { id: number }[]).map((r) => r.id)).toEqual([second.runId]);
    const human = await nimbus(['sync', 'runs', '--config', file]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/run\s+kind\s+started/);
    expect(human.stdout).toContain('completed-with-errors');
  });

  it('prunes runs older than sync.runRetention after each run, keeping the latest', async () => {
    const day = 86_400_000;
    const space = await openConnectorSpace(config.sync.dataDir);
    const insert = space.sqlite.prepare("INSERT INTO runs (kind, started_at, ended_at, status, counts) VALUES ('delta', ?, ?, 'success', '{}')");
    const at = (ago: number) => new Date(Date.now() - ago).toISOString();
    const old = Number(insert.run(at(3 * day), at(3 * day)).lastInsertRowid);
    const recent = Number(insert.run(at(day / 2), at(day / 2)).lastInsertRowid);
    await space.close();
    const c = loadSyncConfig({ file, env: { NIMBUS_SYNC_RUN_RETENTION: '2d' } });
    expect(c.sync.runRetention).toBe(2 * day);
    const r = await runOnce(c);
    const ids = listRunIds();
    expect(ids).not.toContain(old);
    expect(ids).toContain(recent);
    expect(ids[0]).toBe(r.runId);
    // Everything older than the cutoff goes, except the latest run.
    const s = await openConnectorSpace(config.sync.dataDir);
    try {
      expect(s.pruneRuns(new Date(Date.now() + day))).toBe(ids.length - 1);
      expect(s.runs().map((x) => x.id)).toEqual([r.runId]);
    } finally {
      await s.close();
    }
  });

  it('the cloud directory prunes reported runs older than 7 days, across tenants', async () => {
    const count = async () => Number((await cloud.svc.db.selectFrom('sync_runs').select(({ fn }) => fn.countAll<number>().as('n')).where('tenant_id', '=', t.tenant.id).executeTakeFirstOrThrow()).n);
    const reported = await count();
    expect(reported).toBeGreaterThanOrEqual(3);
    expect(await pruneSyncRuns(cloud.svc.db, new Date())).toBe(0);
    expect(await count()).toBe(reported);
    expect(await pruneSyncRuns(cloud.svc.db, new Date(Date.now() + 8 * 86_400_000))).toBe(reported);
    expect(await count()).toBe(0);
  });

  it('rejects a retention that is not a duration', () => {
    expect(() => loadSyncConfig({ file, env: { NIMBUS_SYNC_RUN_RETENTION: 'a week' } })).toThrow(/sync.runRetention: 'a week' is not a duration/);
  });
});

function listRunIds(): number[] {
  const db = readConnectorSpace(config.sync.dataDir)!;
  try {
    return listRuns(db, 100).map((r) => r.id);
  } finally {
    db.close();
  }
}

describe('sync errors', () => {
  let errors: ErrorEntry[];

  it('lists every object with an error: object, attribute, value, the other object, since when', async () => {
    const db = readConnectorSpace(config.sync.dataDir)!;
    try {
      errors = [...objectErrors(db)];
    } finally {
      db.close();
    }
    const e = errors.find((x) => x.anchor === broken.immutableId)!;
    expect(e).toMatchObject({ kind: 'error', dn: broken.dn, attribute: 'usageLocation' });
    expect(e.since).toBeTruthy();
    // The model's duplicate-UPN pair: the second to arrive holds a provisioning error naming the first.
    const pair = manifest.edgeCases['upn-duplicate'];
    const conflicts = errors.filter((x) => x.kind === 'provisioning' && pair.some((p) => p.immutableId === x.anchor) && /userPrincipalName/i.test(x.attribute ?? ''));
    expect(conflicts.length).toBeGreaterThan(0);
    for (const c of conflicts) {
      const mine = pair.find((p) => p.immutableId === c.anchor)!;
      const partner = pair.find((p) => p.key !== mine.key && p.userPrincipalName?.toLowerCase() === mine.userPrincipalName?.toLowerCase())!;
      expect(c.value?.toLowerCase()).toBe(mine.userPrincipalName!.toLowerCase());
      expect(c.conflictingObject).toMatchObject({ dn: partner.dn, anchor: partner.immutableId });
      expect(c.conflictingObject!.id).toBeTruthy();
      expect(c.since).toBeTruthy();
    }
  });

  it('`sync errors --json` streams the same rows; the text form names the object and the conflict', async () => {
    const cli = await nimbus(['sync', 'errors', '--config', file, '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual(JSON.parse(JSON.stringify(errors)));
    const human = await nimbus(['sync', 'errors', '--config', file]);
    expect(human.code, human.stderr).toBe(0);
    if (process.env.SHOW_EXPLAIN) console.log(human.stdout);
    expect(human.stdout).toContain(broken.dn);
    expect(human.stdout).toMatch(/provisioning UserPrincipalName '.+'; conflicts with .+; since /);
  });
});

describe('sync explain (LDIF source)', () => {
  it('finds an object by sAMAccountName, DN, UPN, anchor or objectGUID', () => {
    const db = readConnectorSpace(config.sync.dataDir)!;
    try {
      const e = broken;
      expect(findObjects(db, e.sAMAccountName.toUpperCase()).map((c) => [c.anchor, c.matchedOn])).toEqual([[e.immutableId, 'sAMAccountName']]);
      expect(findObjects(db, e.dn.toLowerCase())).toMatchObject([{ anchor: e.immutableId, matchedOn: 'DN' }]);
      expect(findObjects(db, e.userPrincipalName!)).toMatchObject([{ anchor: e.immutableId }]);
      expect(findObjects(db, e.immutableId)).toMatchObject([{ anchor: e.immutableId, matchedOn: 'source anchor' }]);
      expect(guidTextToAnchor(e.objectGUID)).toBe(e.immutableId);
      expect(findObjects(db, e.objectGUID)).toMatchObject([{ anchor: e.immutableId }]);
    } finally {
      db.close();
    }
  });

  it('shows a failed object: flows with values, the error, no cloud object', async () => {
    const r = await explainId(config, broken.sAMAccountName);
    expect(r.scope.inScope).toBe(true);
    expect(r.flows.find((f) => f.attribute === 'usageLocation')).toMatchObject({ from: expect.stringContaining('mapping.user.usageLocation'), value: 'XYZ', problem: expect.any(String) });
    expect(r.flows.find((f) => f.attribute === 'onPremisesSamAccountName')).toMatchObject({ from: 'sAMAccountName', value: broken.sAMAccountName });
    expect(r.export.error?.message).toContain('usageLocation');
    expect(r.export.state).toBe('not-exported');
    expect(r.cloud.object).toBeNull();
  });

  it('an unknown id exits 2 with what to try; an ambiguous one lists the candidates', async () => {
    const unknown = await nimbus(['sync', 'explain', 'no-such-user-anywhere', '--config', file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/No object 'no-such-user-anywhere' in the connector space .*give the DN/s);
    // The model's LDIF carries a duplicate-UPN pair: the UPN names both users.
    const pair = manifest.edgeCases['upn-duplicate'];
    const upn = pair[0]!.userPrincipalName!;
    const amb = await nimbus(['sync', 'explain', upn, '--config', file, '--json']);
    expect(amb.code).toBe(2);
    const body = JSON.parse(amb.stdout) as { error: { code: string; candidates: { anchor: string }[] } };
    expect(body.error.code).toBe('AmbiguousObject');
    const same = pair.filter((p) => p.userPrincipalName?.toLowerCase() === upn.toLowerCase()).map((p) => p.immutableId);
    expect(body.error.candidates.map((c) => c.anchor).sort()).toEqual(expect.arrayContaining(same.sort()));
    const none = await nimbus(['sync', 'explain', 'x', '--config', join(dir, 'missing.yaml')]);
    expect(none.code).toBe(2);
  });

  it('with no connector space yet, exits 2 and says to run nimbus sync first', async () => {
    const d2 = tempDir('nimbus-inspect-empty-');
    const doc = parseYaml(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8'))) as Record<string, Record<string, unknown>>;
    doc.sync!.dataDir = join(d2, 'agent');
    doc.target!.clientSecretFile = join(dir, 'app.secret');
    const f2 = join(d2, 'nimbus.yaml');
    writeFileSync(f2, stringify(doc));
    const r = await nimbus(['sync', 'runs', '--config', f2]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/No connector space in .*Run `nimbus sync`/);
  });

  it('when the cloud is unreachable, still prints everything local and says why the cloud part is missing', async () => {
    const soft = manifest.edgeCases['upn-routable-suffix'].filter(plain)[0]!;
    const offline = { ...config, target: { ...config.target, url: 'http://127.0.0.1:9' } };
    const r = await explainId(offline, soft.dn);
    expect(r.match.decision).toBe('soft-upn');
    expect(r.export.cloudId).toBeTruthy();
    expect(r.flows.find((f) => f.attribute === 'userPrincipalName')?.value).toBe(soft.userPrincipalName);
    expect(r.cloud).toMatchObject({ fetched: false, object: null, note: expect.stringMatching(/could not be fetched: Cannot reach the cloud directory at http:\/\/127.0.0.1:9/) });
    const online = await explainId(config, soft.dn);
    expect(online.cloud.object).toMatchObject({ id: r.export.cloudId, onPremisesImmutableId: soft.immutableId, userPrincipalName: soft.userPrincipalName });
    const human = await nimbus(['sync', 'explain', soft.sAMAccountName, '--config', file]);
    expect(human.code, human.stderr).toBe(0);
    if (process.env.SHOW_EXPLAIN) console.log(human.stdout);
    expect(human.stdout).toContain(`user ${soft.dn}`);
    expect(human.stdout).toMatch(/Match in the cloud: soft match on userPrincipalName/);
    expect(human.stdout).toMatch(new RegExp(`onPremisesImmutableId: ${soft.immutableId.replace(/[+/=]/g, '\\$&')}`));
  });
});
