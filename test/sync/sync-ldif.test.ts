// End to end: the generator's AD-flavoured LDIF synced into a real cloud directory through
// the agent (real SQLite connector space, in-process exporter): scope, edge cases, matching,
// groups, no-change runs, changes, and the deletion threshold.
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adLdif } from '../../scripts/generator/ldif.ts';
import { guidToBytes } from '../../scripts/lib/ldap.ts';
import { dnOf, type DirectoryModel, type DirUser } from '../../scripts/generator/model.ts';
import type { Manifest, ManifestEntry } from '../../scripts/generator/manifest.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { MAX_SYNC_BATCH } from '../../src/cloud/sync/sync-wire.ts';
import { GLOBAL_ADMIN } from '../../src/cloud/services/directory.ts';
import { openSyncAgent, type SyncAgent } from '../../src/sync/agent.ts';
import type { SyncConfig } from '../../src/sync/config.ts';
import { createInProcessExporter } from '../../src/sync/engine/exporter-inprocess.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { hasTable, readFileAlone } from '../helpers/db-file.ts';
import { generatedLdif, syncTenant, tempDir, writeConfig, writeLdif } from './helpers.ts';

const BASE = 'DC=corp,DC=example,DC=com';
const USERS = 1600; // > 1500 so "All Employees" needs ranged retrieval in AD
let cloud: TestCloud;
let t: TestTenant;
let dir: string;
let ldif: string;
let model: DirectoryModel;
let manifest: Manifest;
let config: SyncConfig;
let rw: string;
const serviceOU = () => `OU=Service Accounts,${model.rootOU}`;

// Built-in exclusions the generator has no example of: krbtgt and a critical object in CN=Users.
const EXTRA = `dn: CN=krbtgt,CN=Users,${BASE}
objectClass: user
sAMAccountName: krbtgt
objectGUID:: qqqqqqqqqqqqqqqqqqqqqg==

dn: CN=Administrator,CN=Users,${BASE}
objectClass: user
sAMAccountName: Administrator
isCriticalSystemObject: TRUE
objectGUID:: u7u7u7u7u7u7u7u7u7u7uw==

`;

const open = async (c: SyncConfig = config): Promise<SyncAgent> => openSyncAgent(c, { exporter: await createInProcessExporter(cloud.svc, t.tenant.name) });
async function runOnce(c: SyncConfig = config) {
  const agent = await open(c);
  try {
    return await agent.run();
  } finally {
    await agent.close();
  }
}
const users = () => cloud.svc.db.selectFrom('users').selectAll().where('tenant_id', '=', t.tenant.id);
const byAnchor = (a: string) => users().where('immutable_id', '=', a).executeTakeFirst();
const groupByAnchor = (a: string) => cloud.svc.db.selectFrom('groups').selectAll().where('tenant_id', '=', t.tenant.id).where('immutable_id', '=', a).executeTakeFirstOrThrow();
const edge = (c: keyof Manifest['edgeCases']) => manifest.edgeCases[c];
const plain = (e: ManifestEntry) => Object.entries(manifest.edgeCases).filter(([, l]) => l.some((x) => x.key === e.key)).every(([k]) => ['upn-routable-suffix', 'upn-domain-suffix', 'manager'].includes(k));
async function rewrite() {
  await writeLdif(ldif, adLdif(model));
  appendFileSync(ldif, EXTRA);
}

beforeAll(async () => {
  cloud = await startCloud();
  t = await syncTenant(cloud, 'contoso');
  rw = await t.token('readwrite');
  dir = tempDir();
  ({ path: ldif, model, manifest } = await generatedLdif(dir, USERS));
  appendFileSync(ldif, EXTRA);
  ({ config } = await writeConfig(dir, cloud, t, { ldif, source: { exclude: [serviceOU()] } }));
});
afterAll(async () => cloud?.close());

describe('full sync from an AD LDIF export', () => {
  let softTarget: ManifestEntry;
  let softCloudId: string;
  let adminTarget: ManifestEntry;
  let adminId: string;

  it('(before) pre-creates a cloud user to soft-match and an administrator that must not be', async () => {
    const routable = edge('upn-routable-suffix').filter(plain);
    softTarget = routable[0]!;
    adminTarget = routable[1]!;
    const a = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(t.tenant, 'softy', { userPrincipalName: softTarget.userPrincipalName }) });
    expect(a.status).toBe(201);
    softCloudId = a.body.id;
    const b = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(t.tenant, 'boss', { userPrincipalName: adminTarget.userPrincipalName }) });
    adminId = b.body.id;
    await cloud.svc.directory.assignRole(cliActor(t.tenant.id), GLOBAL_ADMIN, adminId);
  });

  it('lands every in-scope object, and exports nothing out of scope', async () => {
    const r = await runOnce();
    expect(r.status).toBe('success');
    expect(r.counts.errors).toBe(0);
    const inScopeUsers = model.userList.filter((u) => !u.critical && !u.edgeCases.includes('conflict-name') && !u.parent.startsWith(serviceOU()));
    expect(r.counts.inScope).toBe(inScopeUsers.length + model.groupList.length);
    expect(r.counts.adds + r.counts.updates).toBe(r.counts.inScope);
    const synced = await users().where('on_prem_sync_enabled', '=', 1).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(synced.n)).toBe(inScopeUsers.length);
    // Excluded OU, critical system objects, AAD_/MSOL_ accounts, CNF: conflicts, krbtgt: none reached the cloud.
    for (const e of [...edge('critical-system-object'), ...edge('conflict-name'), ...edge('sync-service-account-name')]) expect(await byAnchor(e.immutableId)).toBeUndefined();
    const svc = model.userList.find((u) => u.sAMAccountName === 'svc-nimbus-sync')!;
    expect(await byAnchor(guidToBytes(svc.guid).toString('base64'))).toBeUndefined();
    for (const a of ['qqqqqqqqqqqqqqqqqqqqqg==', 'u7u7u7u7u7u7u7u7u7u7uw==']) expect(await byAnchor(a)).toBeUndefined();
    // Managers exported in a later batch than their reports were set by the cloud on arrival:
    // every manager is in place after one pass, and no object was exported twice.
    const cloudRows = new Map((await users().select(['id', 'immutable_id', 'manager_id']).execute()).map((u) => [u.immutable_id, u]));
    const anchorOf = (u: DirUser) => guidToBytes(u.guid).toString('base64');
    const inScope = new Set(inScopeUsers.map((u) => u.key));
    const withManager = inScopeUsers.filter((u) => u.managerKey && inScope.has(u.managerKey));
    expect(withManager.length).toBeGreaterThan(100);
    const byKey = new Map(model.userList.map((u) => [u.key, u]));
    const wrong = withManager.filter((u) => cloudRows.get(anchorOf(u))?.manager_id !== cloudRows.get(anchorOf(byKey.get(u.managerKey!)!))?.id);
    expect(wrong.map((u) => u.sAMAccountName)).toEqual([]);
    expect(r.counts.unresolved).toBe(0);
    expect(r.counts.adds + r.counts.updates + r.counts.unchanged).toBe(r.counts.inScope);
    // Managers go first, in their own batches; then the other users; then groups.
    const managers = new Set(withManager.map((u) => u.managerKey));
    const per = MAX_SYNC_BATCH;
    expect(r.counts.batches).toBe(Math.ceil(managers.size / per) + Math.ceil((inScopeUsers.length - managers.size) / per) + Math.ceil(model.groupList.length / per));
  });

  it('maps the attributes of an ordinary user, including manager and on-premises values', async () => {
    const e = edge('manager').find(plain)!;
    const u = model.userList.find((x) => x.key === e.key)!;
    const row = (await byAnchor(e.immutableId))!;
    expect(row).toMatchObject({ display_name: u.displayName, given_name: u.givenName, surname: u.sn, department: u.department, job_title: u.title, employee_id: u.employeeID, on_prem_distinguished_name: e.dn, on_prem_sam_account_name: u.sAMAccountName, on_prem_domain_name: 'corp.example.com', account_enabled: 1 });
    const mgr = model.userList.find((x) => x.key === u.managerKey)!;
    const mgrRow = (await byAnchor(manifest.edgeCases.manager.concat(edge('upn-domain-suffix'), edge('upn-routable-suffix')).find((x) => x.key === mgr.key)!.immutableId))!;
    expect(row.manager_id).toBe(mgrRow.id);
    const g = await cloud.graph(rw, `users/${row.id}?$select=businessPhones,onPremisesImmutableId,proxyAddresses`);
    expect(g.body).toMatchObject({ businessPhones: [u.telephoneNumber], onPremisesImmutableId: e.immutableId, proxyAddresses: u.proxyAddresses });
  });

  it('applies the UPN rules: .local -> fallback, no UPN -> sAMAccountName@AD domain', async () => {
    const local = edge('upn-nonroutable-suffix')[0]!;
    const row = (await byAnchor(local.immutableId))!;
    expect(row.upn.endsWith(`@${t.tenant.initial_domain}`)).toBe(true);
    expect(row.on_prem_user_principal_name).toBe(local.userPrincipalName);
    const none = edge('no-upn')[0]!;
    expect((await byAnchor(none.immutableId))!.upn).toBe(`${none.sAMAccountName}@corp.example.com`);
  });

  it('soft-matches the pre-created cloud user (no duplicate) and never the administrator', async () => {
    const same = await users().where('upn', '=', softTarget.userPrincipalName!).execute();
    expect(same.map((u) => [u.id, u.immutable_id])).toEqual([[softCloudId, softTarget.immutableId]]);
    const agent = await open();
    expect(agent.space.object(softTarget.immutableId)).toMatchObject({ match: 'soft-upn', cloud_id: softCloudId });
    expect(agent.space.object(adminTarget.immutableId)).toMatchObject({ match: 'new' });
    await agent.close();
    const admin = await users().where('id', '=', adminId).executeTakeFirstOrThrow();
    expect(admin.immutable_id).toBeNull();
    const synced = (await byAnchor(adminTarget.immutableId))!;
    expect(synced.id).not.toBe(adminId);
    expect(JSON.parse(synced.on_prem_provisioning_errors)[0]).toMatchObject({ propertyCausingError: 'UserPrincipalName', conflictingObjectId: adminId });
  });

  it('disables accounts with userAccountControl 0x2', async () => {
    for (const e of edge('disabled').slice(0, 3)) expect((await byAnchor(e.immutableId))!.account_enabled).toBe(0);
  });

  it('completes nested groups and a group of more than 1500 members', async () => {
    const large = edge('large-group').find((g) => g.sAMAccountName.includes('all-employees') || g.dn.includes('All Employees'))!;
    expect(large.memberCount).toBeGreaterThan(1500);
    const g = await groupByAnchor(large.immutableId);
    const n = await cloud.svc.db.selectFrom('memberships').select(({ fn }) => fn.countAll<number>().as('n')).where('group_id', '=', g.id).executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(large.memberCount);
    for (const nested of edge('nested-group')) {
      const ng = await groupByAnchor(nested.immutableId);
      const members = await cloud.svc.db.selectFrom('memberships').selectAll().where('group_id', '=', ng.id).execute();
      expect(members.filter((m) => m.member_type === 'group')).toHaveLength(nested.memberGroups!.length);
      expect(members).toHaveLength(nested.memberCount!);
    }
    const sec = await groupByAnchor(edge('security-group')[0]!.immutableId);
    expect(sec.security_enabled).toBe(1);
    const mailEnabled = edge('mail-enabled-group').find((x) => !edge('security-group').some((s) => s.key === x.key))!;
    expect(await groupByAnchor(mailEnabled.immutableId)).toMatchObject({ mail_enabled: 1, security_enabled: 0 });
  });

  it('a second run with no changes exports nothing', async () => {
    const before = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    const r = await runOnce();
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ adds: 0, updates: 0, deletes: 0, batches: 0 });
    const after = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    expect(after.change_seq).toBe(before.change_seq);
  });

  it('checkpoints the connector space once a run has ended, while the agent waits: its database file alone then holds the run', async () => {
    const agent = await open();
    try {
      const r = await agent.run();
      // The run as the database file holds it without the WAL (a copy of the file alone).
      const inFile = () =>
        readFileAlone(agent.space.file, (db) =>
          // (A new space's very tables may be in the WAL only.)
          hasTable(db, 'runs') ? (db.prepare('SELECT status FROM runs WHERE id = ?').get(r.runId) as { status: string } | undefined)?.status : undefined,
        );
      expect(r.status).toBe('success');
      // When run() returns, the run's last commits are in the WAL only...
      expect(inFile()).not.toBe('success');
      // ...and once the agent is idle, in the file.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(inFile()).toBe('success');
    } finally {
      await agent.close();
    }
  });

  it('exports exactly a modify, a delete and a rename/move (same cloud object)', async () => {
    const managers = new Set(model.userList.map((u) => u.managerKey));
    const candidates = edge('upn-domain-suffix').filter(plain).map((e) => model.userList.find((u) => u.key === e.key)!).filter((u) => !managers.has(u.key));
    const [modified, deleted, moved] = candidates as [DirUser, DirUser, DirUser];
    const anchorOf = (u: DirUser) => edge('upn-domain-suffix').find((e) => e.key === u.key)!.immutableId;
    const movedBefore = (await byAnchor(anchorOf(moved)))!;
    modified.title = 'Chief Sync Officer';
    model.userList.splice(model.userList.indexOf(deleted), 1);
    const groupsOfDeleted = model.groupList.filter((g) => g.memberKeys.includes(deleted.key));
    for (const g of groupsOfDeleted) g.memberKeys = g.memberKeys.filter((k) => k !== deleted.key);
    moved.parent = model.userList.find((u) => u.parent !== moved.parent && u.parent.startsWith('OU=Users'))!.parent;
    await rewrite();
    const r = await runOnce();
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ adds: 0, deletes: 1, updates: 2 + groupsOfDeleted.length, errors: 0 });
    expect((await byAnchor(anchorOf(modified)))!.job_title).toBe('Chief Sync Officer');
    expect((await byAnchor(anchorOf(deleted)))!.deleted_at).not.toBeNull();
    const movedAfter = (await byAnchor(anchorOf(moved)))!;
    expect(movedAfter.id).toBe(movedBefore.id);
    expect(movedAfter.on_prem_distinguished_name).toBe(dnOf(moved));
  });

  it('stops at the deletion threshold, deleting nothing, and lists what it would delete', async () => {
    const gone = model.userList.filter((u) => u.key.startsWith('u') && !u.edgeCases.some((e) => e !== 'upn-domain-suffix' && e !== 'upn-routable-suffix' && e !== 'manager')).slice(-4);
    for (const u of gone) {
      model.userList.splice(model.userList.indexOf(u), 1);
      for (const g of model.groupList) g.memberKeys = g.memberKeys.filter((k) => k !== u.key);
      for (const x of model.userList) if (x.managerKey === u.key) delete x.managerKey;
    }
    await rewrite();
    const strict = (await writeConfig(dir, cloud, t, { ldif, source: { exclude: [serviceOU()] }, sync: { deletionThreshold: 3 } })).config;
    const before = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    const r = await runOnce(strict);
    expect(r.status).toBe('stopped-deletion-threshold-exceeded');
    expect(r.message).toContain('more than sync.deletionThreshold (3)');
    expect(r.pendingDeletes!.map((d) => d.dn).sort()).toEqual(gone.map((u) => dnOf(u)).sort());
    expect(r.counts.batches).toBe(0);
    const after = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    expect(after.change_seq).toBe(before.change_seq);
    // With the default threshold the same change goes through.
    const ok = await runOnce();
    expect(ok.status).toBe('success');
    expect(ok.counts.deletes).toBe(4);
  });

  it('never treats a source with no objects as everything deleted', async () => {
    writeFileSync(join(dir, 'empty.ldif'), '# nothing\n');
    const empty = (await writeConfig(dir, cloud, t, { ldif: join(dir, 'empty.ldif'), source: { exclude: [serviceOU()] }, sync: { deletionThreshold: 100_000 } })).config;
    const r = await runOnce(empty);
    expect(r).toMatchObject({ status: 'failed', code: 'SourceEmpty' });
    expect(r.counts.batches).toBe(0);
    const live = await users().where('on_prem_sync_enabled', '=', 1).where('deleted_at', 'is', null).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(Number(live.n)).toBeGreaterThan(1500);
  });
});
