// Deletion safety and staging mode against a real Samba AD DC and a real cloud directory over
// HTTP: deleting more than sync.deletionThreshold stops the run and deletes nothing until
// `--allow-deletes`; a real LDAP outage part-way through a full import, or an empty search
// result, deletes nothing; and after churn, a staging run's `nimbus sync pending` is exactly
// what the next un-staged run changes in the cloud. This suite runs its own Samba (not
// useSamba) so it can stop and restart it mid-test.
import { rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { applyChurn, type ChurnResult } from '../../scripts/generator/churn.ts';
import type { Manifest } from '../../scripts/generator/manifest.ts';
import { copyFixture, sambaFixture, startSamba, type RunningSamba } from '../../scripts/samba/samba.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { openSyncAgent } from '../../src/sync/agent.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import type { ImportItem, SourceConnector } from '../../src/sync/connectors/connector.ts';
import type { PendingExport } from '../../src/sync/engine/pending.ts';
import type { RunReport } from '../../src/sync/engine/run.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { runNimbus } from '../helpers/nimbus-cli.ts';
import { DEFAULT_TEST_USERS } from '../helpers/samba.ts';
import { tempDir } from '../sync/helpers.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 600_000 });

const THRESHOLD = 20;
let samba: RunningSamba;
let sambaDir: string;
let manifest: Manifest;
let cloud: TestCloud;
let t: TestTenant;
let dir: string;
let file: string;
let config: SyncConfig;

/** Runs the real CLI (test/helpers/nimbus-cli.ts). */
const nimbus = (...args: string[]) => runNimbus(args);

async function sync(...flags: string[]): Promise<{ code: number | null; report: RunReport; err: string }> {
  const r = await nimbus('sync', '--config', file, '--json', ...flags);
  return { code: r.code, report: JSON.parse(r.stdout) as RunReport, err: r.stderr };
}

/** nimbus.yaml for the test DC; `source` overrides fields of the AD source. */
function writeAdConfig(source: Record<string, unknown> = {}, sync: Record<string, unknown> = {}): void {
  const doc = {
    source: { type: 'ad', url: samba.url, bindDn: samba.bindDN, passwordFile: './ad.pw', baseDn: samba.baseDN, ...source },
    target: { type: 'nimbus', url: cloud.url, tenant: t.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret' },
    sync: { deletionThreshold: THRESHOLD, dataDir: './agent', ...sync },
  };
  file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify(doc));
  config = loadSyncConfig({ file, env: {} });
}
let creds: { clientId: string; clientSecret: string };

const seq = async () => (await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow()).change_seq;
const usersOf = () => cloud.svc.db.selectFrom('users').selectAll().where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1);
const liveCount = async () => (await usersOf().where('deleted_at', 'is', null).execute()).length;

/** Source anchors of every object the cloud changed after `since` (attributes, deletes, memberships). */
async function changedSince(since: number): Promise<string[]> {
  const db = cloud.svc.db;
  const T = t.tenant.id;
  const users = await db.selectFrom('users').select('immutable_id').where('tenant_id', '=', T).where('seq', '>', since).execute();
  const groups = await db.selectFrom('groups').select('immutable_id').where('tenant_id', '=', T).where('seq', '>', since).execute();
  const members = await db.selectFrom('membership_changes').innerJoin('groups', (j) => j.onRef('groups.id', '=', 'membership_changes.group_id').onRef('groups.tenant_id', '=', 'membership_changes.tenant_id')).select('groups.immutable_id').where('membership_changes.tenant_id', '=', T).where('membership_changes.seq', '>', since).execute();
  return [...new Set([...users, ...groups, ...members].map((o) => o.immutable_id!))].sort();
}

/** objectGUID (base64, the source anchor) of every user under the generated root OU, by lower-cased DN. */
async function anchorsByDn(): Promise<Map<string, string>> {
  const c = new Client({ url: samba.url, timeout: 30_000 });
  await c.bind(samba.bindDN, samba.password);
  try {
    const { searchEntries } = await c.search(manifest.rootOU, { scope: 'sub', filter: '(&(objectClass=user)(!(objectClass=computer)))', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'], paged: { pageSize: 1000 } });
    return new Map(searchEntries.map((e) => [e.dn.toLowerCase(), (e.objectGUID as Buffer).toString('base64')]));
  } finally {
    await c.unbind();
  }
}

const churnTarget = () => ({ url: samba.url, bindDN: samba.bindDN, password: samba.password, rootOU: manifest.rootOU, flavour: 'ad' as const, domainDnsName: manifest.domain.dnsName });

beforeAll(async () => {
  const fixture = await sambaFixture({ users: DEFAULT_TEST_USERS, seed: 1 });
  manifest = fixture.manifest;
  sambaDir = await copyFixture(fixture.dir);
  samba = await startSamba(sambaDir);
  cloud = await startCloud();
  t = await cloud.createTenant('contoso');
  await cloud.svc.domains.add(cliActor(t.tenant.id), manifest.upnSuffixes.routable);
  await cloud.svc.domains.verify(cliActor(t.tenant.id), manifest.upnSuffixes.routable, { force: true });
  await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  dir = tempDir('nimbus-sync-safety-');
  creds = await t.credentials('sync');
  writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'ad.pw'), `${samba.password}\n`, { mode: 0o600 });
  writeAdConfig();
});
afterAll(async () => {
  await cloud?.close();
  await samba?.stop();
  if (sambaDir) await rm(sambaDir, { recursive: true, force: true });
}, 60_000);

describe('staging mode against Samba AD', () => {
  it('a first full sync lands the directory', async () => {
    const { code, report } = await sync();
    expect(code).toBe(0);
    expect(report.status).toBe('success');
    expect(report.counts.adds).toBeGreaterThan(DEFAULT_TEST_USERS);
  });

  it('after churn, a --staging run exports nothing; `nimbus sync pending` is exactly what the un-staged run then changes', async () => {
    const anchors = await anchorsByDn();
    const churn: ChurnResult = await applyChurn(churnTarget(), { creates: 5, deletes: 5, modifies: 10, renames: 3, moves: 3 }, 21);
    expect(churn.errors).toEqual([]);
    const before = await seq();
    const staged = await sync('--staging');
    expect(staged.code).toBe(0);
    expect(staged.report.status).toBe('staged');
    expect(await seq()).toBe(before);

    const r = await nimbus('sync', 'pending', '--config', file, '--json');
    expect(r.code, r.stderr).toBe(0);
    const pending = JSON.parse(r.stdout) as { counts: { adds: number; updates: number; deletes: number }; objects: PendingExport[] };
    const by = new Map(pending.objects.map((o) => [o.anchor, o]));
    expect(pending.counts).toMatchObject({ adds: 5, deletes: 5 });
    expect(staged.report.counts).toMatchObject({ pendingAdds: 5, pendingUpdates: pending.counts.updates, pendingDeletes: 5 });
    for (const dn of churn.deleted) expect(by.get(anchors.get(dn.toLowerCase())!)).toMatchObject({ action: 'delete', reason: 'deleted-in-source' });
    for (const c of churn.created) expect(pending.objects.some((o) => o.action === 'add' && o.dn.toLowerCase() === c.dn.toLowerCase())).toBe(true);
    for (const m of churn.modified) {
      const p = by.get(anchors.get(m.dn.toLowerCase())!);
      if (!p) continue; // modified, then deleted or renamed by the same churn
      expect(p.action).toBe('update');
      if (m.attributes.title) expect(p.changes).toContainEqual(expect.objectContaining({ attribute: 'jobTitle', after: m.attributes.title }));
    }
    for (const { from, to } of [...churn.renamed, ...churn.moved]) {
      const p = by.get(anchors.get(from.toLowerCase())!)!;
      expect(p.action).toBe('update');
      const dnChange = p.changes.find((c) => c.attribute === 'onPremisesDistinguishedName')!;
      expect([String(dnChange.before).toLowerCase(), String(dnChange.after).toLowerCase()]).toEqual([from.toLowerCase(), to.toLowerCase()]);
    }

    const un = await sync();
    expect(un.code).toBe(0);
    expect(un.report.status).toBe('success');
    expect(un.report.counts).toMatchObject({ adds: pending.counts.adds, updates: pending.counts.updates, deletes: pending.counts.deletes, errors: 0 });
    expect(await changedSince(before)).toEqual(pending.objects.map((o) => o.anchor).sort());
    // Attribute by attribute, the cloud now holds what `pending` said "after".
    for (const p of pending.objects.filter((o) => o.action === 'update' && o.type === 'user')) {
      const u = await usersOf().where('immutable_id', '=', p.anchor).executeTakeFirstOrThrow();
      for (const c of p.changes) {
        if (c.attribute === 'jobTitle') expect(u.job_title).toBe(c.after);
        if (c.attribute === 'onPremisesDistinguishedName') expect(u.on_prem_distinguished_name).toBe(c.after);
      }
    }
  });
});

describe('deletion threshold against Samba AD', () => {
  let deleted: string[];

  it(`deleting more than ${THRESHOLD} users stops the run (exit 3) and deletes nothing in the cloud, run after run`, async () => {
    const anchors = await anchorsByDn();
    const churn = await applyChurn(churnTarget(), { deletes: THRESHOLD + 5 }, 22);
    expect(churn.errors).toEqual([]);
    deleted = churn.deleted.map((dn) => anchors.get(dn.toLowerCase())!).sort();
    const live = await liveCount();
    const before = await seq();
    const { code, report } = await sync();
    expect(code).toBe(3);
    expect(report.status).toBe('stopped-deletion-threshold-exceeded');
    expect(report.message).toContain(`This run would delete ${THRESHOLD + 5} objects in the cloud, more than sync.deletionThreshold (${THRESHOLD})`);
    expect(report.pendingDeletes!.map((d) => d.anchor).sort()).toEqual(deleted);
    expect(report.pendingDeletes!.every((d) => d.reason === 'deleted-in-source' && d.type === 'user')).toBe(true);
    expect(await seq()).toBe(before);
    expect(await liveCount()).toBe(live);
    // The portal sees the list to approve.
    const run = (await cloud.svc.sync.runs(t.tenant.id)).runs[0]!;
    expect(run.status).toBe('stopped-deletion-threshold-exceeded');
    expect(run.pendingDeletes!.total).toBe(THRESHOLD + 5);
    expect(run.pendingDeletes!.items.map((d) => d.anchor).sort()).toEqual(deleted);
    // Until approved, every cycle stops again.
    const again = await sync();
    expect(again.code).toBe(3);
    expect(await seq()).toBe(before);
  });

  it('`nimbus sync --allow-deletes` deletes them and the report lists them', async () => {
    const live = await liveCount();
    const { code, report } = await sync('--allow-deletes');
    expect(code).toBe(0);
    expect(report.status).toBe('success');
    expect(report.counts.deletes).toBe(THRESHOLD + 5);
    expect(report.deleted!.map((d) => d.anchor).sort()).toEqual(deleted);
    expect(await liveCount()).toBe(live - THRESHOLD - 5);
    for (const a of deleted) expect((await usersOf().where('immutable_id', '=', a).executeTakeFirstOrThrow()).deleted_at).not.toBeNull();
    expect((await cloud.svc.sync.runs(t.tenant.id)).runs[0]!.deleted).toMatchObject({ total: THRESHOLD + 5 });
  });
});

describe('a failing or empty source never counts as "everything was deleted"', () => {
  it('a real LDAP outage part-way through a full import fails the run and deletes nothing; `nimbus sync` during the outage exits 2', async () => {
    const live = await liveCount();
    const before = await seq();
    let stopped = false;
    // Stop Samba after 300 entries; the import then reads on from a dead server.
    const outage = (inner: SourceConnector): SourceConnector => ({
      ...inner,
      kind: inner.kind,
      identity: inner.identity,
      fullImport: async function* (signal?: AbortSignal): AsyncGenerator<ImportItem> {
        let i = 0;
        for await (const x of inner.fullImport(signal)) {
          yield x;
          if (++i === 300) {
            await samba.stop();
            stopped = true;
          }
        }
      },
      fullImportWatermark: () => inner.fullImportWatermark?.(),
      deltaImport: (w, s) => inner.deltaImport!(w, s),
      readEntry: (dn) => inner.readEntry!(dn),
      close: () => inner.close(),
    });
    const agent = await openSyncAgent(config, { wrapConnector: outage });
    let report: RunReport | undefined;
    let thrown: unknown;
    try {
      report = await agent.run({ full: true });
    } catch (err) {
      thrown = err;
    }
    const pendingDeletes = (agent.space.sqlite.prepare('SELECT count(*) AS n FROM objects WHERE exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0)').get() as { n: number }).n;
    await agent.close();
    try {
      expect(stopped).toBe(true);
      expect(thrown).toBeUndefined();
      expect(report).toMatchObject({ status: 'failed', code: 'SourceUnreadable' });
      expect(report!.message).toContain('Nothing was deleted');
      expect(pendingDeletes).toBe(0);
      expect(await seq()).toBe(before);
      expect(await liveCount()).toBe(live);

      const down = await nimbus('sync', '--config', file);
      expect(down.code).toBe(2);
      expect(down.stderr).toContain(samba.url);
      expect(await seq()).toBe(before);
    } finally {
      if (stopped) samba = await startSamba(sambaDir);
    }
    const { code, report: after } = await sync('--full');
    expect(code).toBe(0);
    expect(after.counts).toMatchObject({ adds: 0, deletes: 0, errors: 0 });
    expect(await liveCount()).toBe(live);
  });

  it('a search that returns no objects (base DN of an empty OU) fails with SourceEmpty (exit 2) and deletes nothing', async () => {
    const ou = `OU=Nimbus Empty,${samba.baseDN}`;
    const c = new Client({ url: samba.url, timeout: 30_000 });
    await c.bind(samba.bindDN, samba.password);
    await c.add(ou, { objectClass: ['top', 'organizationalUnit'], ou: 'Nimbus Empty' });
    await c.unbind();
    const live = await liveCount();
    const before = await seq();
    writeAdConfig({ baseDn: ou }, { deletionThreshold: 1_000_000 });
    const { code, report } = await sync();
    expect(code).toBe(2);
    expect(report).toMatchObject({ status: 'failed', code: 'SourceEmpty' });
    expect(report.message).toContain('The source returned no in-scope objects');
    expect(await seq()).toBe(before);
    expect(await liveCount()).toBe(live);
    writeAdConfig();
  });
});
