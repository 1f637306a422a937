// Staging mode and deletion safety from an AD LDIF export into a real cloud directory over
// HTTP: a staging run exports nothing and `nimbus sync pending` lists exactly what the first
// run with staging off then exports (compared with the objects the cloud changed); the
// percentage deletion threshold stops a run until `--allow-deletes`; the run reports reach the
// cloud with their pending lists.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adLdif } from '../../scripts/generator/ldif.ts';
import { dnOf, type DirectoryModel, type DirUser } from '../../scripts/generator/model.ts';
import { guidToBytes } from '../../scripts/lib/ldap.ts';
import type { PendingExport } from '../../src/sync/engine/pending.ts';
import type { RunReport } from '../../src/sync/engine/run.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { runNimbus } from '../helpers/nimbus-cli.ts';
import { generatedLdif, syncTenant, tempDir, writeConfig, writeLdif } from './helpers.ts';

let cloud: TestCloud;
let t: TestTenant;
let dir: string;
let ldif: string;
let model: DirectoryModel;
let file: string;

const anchorOf = (o: { guid: string }) => guidToBytes(o.guid).toString('base64');

/** Runs the real CLI (test/helpers/nimbus-cli.ts). */
const nimbus = (...args: string[]) => runNimbus(args);

async function sync(...flags: string[]): Promise<{ code: number | null; report: RunReport }> {
  const r = await nimbus('sync', '--config', file, '--json', ...flags);
  return { code: r.code, report: JSON.parse(r.stdout) as RunReport };
}

async function pending(...flags: string[]): Promise<{ counts: { adds: number; updates: number; deletes: number }; objects: PendingExport[]; listed: number }> {
  const r = await nimbus('sync', 'pending', '--config', file, '--json', ...flags);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { counts: { adds: number; updates: number; deletes: number }; objects: PendingExport[]; listed: number };
}

const seq = async () => (await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow()).change_seq;
const syncedUsers = () => cloud.svc.db.selectFrom('users').selectAll().where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1);

/** Source anchors of every object the cloud changed after `since` (attributes, deletes, memberships). */
async function changedSince(since: number): Promise<string[]> {
  const db = cloud.svc.db;
  const T = t.tenant.id;
  const users = await db.selectFrom('users').select('immutable_id').where('tenant_id', '=', T).where('seq', '>', since).execute();
  const groups = await db.selectFrom('groups').select('immutable_id').where('tenant_id', '=', T).where('seq', '>', since).execute();
  const members = await db.selectFrom('membership_changes').innerJoin('groups', (j) => j.onRef('groups.id', '=', 'membership_changes.group_id').onRef('groups.tenant_id', '=', 'membership_changes.tenant_id')).select('groups.immutable_id').where('membership_changes.tenant_id', '=', T).where('membership_changes.seq', '>', since).execute();
  return [...new Set([...users, ...groups, ...members].map((o) => o.immutable_id!))].sort();
}

async function rewrite() {
  await writeLdif(ldif, adLdif(model));
}

/** Plain users (no edge case, manager of nobody), safe to change or delete one at a time. */
function plainUsers(): DirUser[] {
  const managers = new Set(model.userList.map((u) => u.managerKey));
  return model.userList.filter((u) => u.key.startsWith('u') && u.edgeCases.every((e) => e === 'upn-domain-suffix' || e === 'upn-routable-suffix' || e === 'manager') && !managers.has(u.key) && !u.disabled);
}

function removeUser(u: DirUser) {
  model.userList.splice(model.userList.indexOf(u), 1);
  for (const g of model.groupList) g.memberKeys = g.memberKeys.filter((k) => k !== u.key);
}

beforeAll(async () => {
  cloud = await startCloud();
  t = await syncTenant(cloud, 'contoso');
  dir = tempDir();
  ({ path: ldif, model } = await generatedLdif(dir, 120, 3));
  ({ file } = await writeConfig(dir, cloud, t, { ldif, sync: { staging: true, deletionThreshold: '3%' } }));
});
afterAll(async () => cloud?.close());

describe('staging mode', () => {
  let firstPending: Awaited<ReturnType<typeof pending>>;

  it('`nimbus sync pending` before any run says there is no connector space yet (exit 2)', async () => {
    const r = await nimbus('sync', 'pending', '--config', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('No connector space in');
    expect(r.stderr).toContain('nimbus sync --staging');
  });

  it('a staging run (sync.staging: true) imports and computes everything, exports nothing, and reports what is pending', async () => {
    const before = await seq();
    const { code, report } = await sync();
    expect(code).toBe(0);
    expect(report.status).toBe('staged');
    expect(report.counts).toMatchObject({ adds: 0, updates: 0, deletes: 0, batches: 0, pendingUpdates: 0, pendingDeletes: 0 });
    expect(report.counts.pendingAdds).toBeGreaterThan(120);
    expect(report.message).toContain('nimbus sync pending');
    expect(await seq()).toBe(before);
    expect(await syncedUsers().execute()).toHaveLength(0);
    // The cloud got the run report with a capped summary of the pending exports, for the portal.
    const runs = await cloud.svc.sync.runs(t.tenant.id);
    const run = runs.runs[0]!;
    expect(run).toMatchObject({ status: 'staged', inProgress: false, counts: { pendingAdds: report.counts.pendingAdds } });
    expect(run.pendingExports).toMatchObject({ adds: report.counts.pendingAdds, updates: 0, deletes: 0, total: report.counts.pendingAdds });
    expect(run.pendingExports!.items).toHaveLength(report.counts.pendingAdds!);
    expect(run.pendingExports!.items[0]!.attributes).toContain('displayName');
  });

  it('`nimbus sync pending` lists every pending export, with filters and a table on the terminal', async () => {
    firstPending = await pending();
    const users = model.userList.length;
    expect(firstPending.counts.adds).toBeGreaterThan(users);
    expect(firstPending.objects).toHaveLength(firstPending.counts.adds);
    expect(firstPending.listed).toBe(firstPending.counts.adds);
    expect(new Set(firstPending.objects.map((o) => o.action))).toEqual(new Set(['add']));
    // Users before groups; an add's changes are every attribute with a value (before: null).
    const firstGroup = firstPending.objects.findIndex((o) => o.type === 'group');
    expect(firstPending.objects.slice(firstGroup).every((o) => o.type === 'group')).toBe(true);
    const u = plainUsers().find((x) => x.title && x.userPrincipalName)!;
    const row = firstPending.objects.find((o) => o.anchor === anchorOf(u))!;
    expect(row).toMatchObject({ action: 'add', type: 'user', dn: dnOf(u), displayName: u.displayName });
    expect(row.changes).toContainEqual({ attribute: 'jobTitle', before: null, after: u.title });
    const groups = await pending('--type', 'group', '--action', 'add');
    expect(groups.objects.length).toBe(firstPending.objects.length - firstGroup);
    expect(groups.objects.every((o) => o.type === 'group')).toBe(true);
    expect((await pending('--action', 'delete')).objects).toHaveLength(0);
    const text = await nimbus('sync', 'pending', '--config', file, '--type', 'user');
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^Pending exports in .*connector-space\.db: [\d,]+ adds, 0 updates, 0 deletes$/);
    expect(lines[1]).toMatch(/^ACTION\s+TYPE\s+OBJECT$/);
    expect(lines.slice(2)).toHaveLength(firstGroup);
    expect(lines).toContain(`add     user   ${dnOf(u)}  (${u.userPrincipalName})`);
  });

  it('the first run with staging off exports exactly what `pending` showed', async () => {
    ({ file } = await writeConfig(dir, cloud, t, { ldif, sync: { staging: false, deletionThreshold: '3%' } }));
    const before = await seq();
    const { code, report } = await sync();
    expect(code).toBe(0);
    expect(report.status).toBe('success');
    expect(report.counts.adds).toBe(firstPending.counts.adds);
    expect(await changedSince(before)).toEqual(firstPending.objects.map((o) => o.anchor).sort());
    expect((await pending()).objects).toHaveLength(0);
  });

  it('changes under --staging (update, delete, add) are listed with before/after; un-staging exports them plus its own import', async () => {
    const [modified, deleted, later] = plainUsers() as [DirUser, DirUser, DirUser];
    const oldTitle = modified.title ?? null;
    modified.title = 'Staged Title';
    removeUser(deleted);
    const added: DirUser = { ...deleted, key: 'staged-new', guid: '0badc0de-0000-4000-8000-000000000001', cn: 'Staged Newcomer', sAMAccountName: 'staged.new', displayName: 'Staged Newcomer', userPrincipalName: 'staged.new@contoso.com', mail: 'staged.new@contoso.com', proxyAddresses: ['SMTP:staged.new@contoso.com'], edgeCases: [] };
    model.userList.push(added);
    await rewrite();
    const before = await seq();
    const staged = await sync('--staging');
    expect(staged.code).toBe(0);
    expect(staged.report.status).toBe('staged');
    expect(await seq()).toBe(before);
    const p = await pending();
    const find = (u: DirUser) => p.objects.find((o) => o.anchor === anchorOf(u));
    expect(find(modified)).toMatchObject({ action: 'update', type: 'user', dn: dnOf(modified) });
    expect(find(modified)!.changes).toEqual([{ attribute: 'jobTitle', before: oldTitle, after: 'Staged Title' }]);
    expect(find(deleted)).toMatchObject({ action: 'delete', type: 'user', reason: 'deleted-in-source', changes: [] });
    expect(find(added)).toMatchObject({ action: 'add', userPrincipalName: 'staged.new@contoso.com' });
    // The deleted user's groups lose a member: updates whose members change lists the removal.
    const groupsOfDeleted = p.objects.filter((o) => o.type === 'group');
    expect(groupsOfDeleted.length).toBeGreaterThan(0);
    for (const g of groupsOfDeleted) expect(g.changes.find((c) => c.attribute === 'members')!.removed).toContain(anchorOf(deleted));
    expect(p.counts).toEqual({ adds: 1, updates: 1 + groupsOfDeleted.length, deletes: 1 });
    expect(staged.report.counts).toMatchObject({ pendingAdds: 1, pendingUpdates: p.counts.updates, pendingDeletes: 1 });

    // A change after the staging run: the un-staged run's own import adds it (pending would show it too).
    later.title = 'Changed After Staging';
    await rewrite();
    ({ file } = await writeConfig(dir, cloud, t, { ldif, sync: { staging: false, deletionThreshold: '3%' } }));
    const { code, report } = await sync();
    expect(code).toBe(0);
    expect(report.status).toBe('success');
    expect(report.counts).toMatchObject({ adds: 1, updates: p.counts.updates + 1, deletes: 1, errors: 0 });
    expect(await changedSince(before)).toEqual([...p.objects.map((o) => o.anchor), anchorOf(later)].sort());
    const row = async (u: DirUser) => (await syncedUsers().where('immutable_id', '=', anchorOf(u)).executeTakeFirstOrThrow());
    expect((await row(modified)).job_title).toBe('Staged Title');
    expect((await row(later)).job_title).toBe('Changed After Staging');
    expect((await row(deleted)).deleted_at).not.toBeNull();
    expect((await row(added)).upn).toBe('staged.new@contoso.com');
    expect((await pending()).counts).toEqual({ adds: 0, updates: 0, deletes: 0 });
  });
});

describe('deletion threshold as a percentage, and --allow-deletes', () => {
  let gone: DirUser[];

  it('deleting more than 3% of the exported objects stops the run (exit 3), deletes nothing, and reports the list to the cloud', async () => {
    const exported = (await syncedUsers().where('deleted_at', 'is', null).execute()).length;
    gone = plainUsers().slice(0, 6);
    for (const u of gone) removeUser(u);
    await rewrite();
    const before = await seq();
    const { code, report } = await sync();
    expect(code).toBe(3);
    expect(report.status).toBe('stopped-deletion-threshold-exceeded');
    expect(report.message).toMatch(/This run would delete 6 objects in the cloud, more than sync.deletionThreshold \(3% of \d+ exported objects = \d+\)/);
    expect(report.message).toContain('nimbus sync --allow-deletes');
    expect(exported).toBeGreaterThan(100);
    expect(report.pendingDeletes!.map((d) => d.anchor).sort()).toEqual(gone.map(anchorOf).sort());
    expect(report.counts).toMatchObject({ batches: 0, pendingDeletes: 6 });
    expect(await seq()).toBe(before);
    const run = (await cloud.svc.sync.runs(t.tenant.id)).runs[0]!;
    expect(run.status).toBe('stopped-deletion-threshold-exceeded');
    expect(run.pendingDeletes!.total).toBe(6);
    expect(run.pendingDeletes!.items.map((d) => d.dn).sort()).toEqual(gone.map(dnOf).sort());
    // Stopping again and again deletes nothing: the pending deletes stay pending.
    expect((await sync()).code).toBe(3);
    expect(await seq()).toBe(before);
  });

  it('a staging run warns that the first un-staged run would stop at the threshold', async () => {
    const { code, report } = await sync('--staging');
    expect(code).toBe(0);
    expect(report.status).toBe('staged');
    expect(report.message).toContain('will stop at the deletion threshold (6 deletes');
  });

  it('--allow-deletes runs once with the threshold lifted and reports what it deleted; the next run has the threshold again', async () => {
    const { code, report } = await sync('--allow-deletes');
    expect(code).toBe(0);
    expect(report.status).toBe('success');
    expect(report.counts.deletes).toBe(6);
    expect(report.deleted!.map((d) => d.anchor).sort()).toEqual(gone.map(anchorOf).sort());
    expect(report.message).toContain('Deletion threshold lifted for this run: 6 objects deleted');
    for (const u of gone) expect((await syncedUsers().where('immutable_id', '=', anchorOf(u)).executeTakeFirstOrThrow()).deleted_at).not.toBeNull();
    const runs = (await cloud.svc.sync.runs(t.tenant.id)).runs;
    expect(runs[0]!.deleted).toMatchObject({ total: 6 });
    expect(runs[0]!.deleted!.items).toHaveLength(6);
    // Only the latest pending list of an agent is kept in the cloud.
    expect(runs.filter((r) => r.pendingDeletes)).toHaveLength(1);

    const more = plainUsers().slice(0, 6);
    for (const u of more) removeUser(u);
    await rewrite();
    const next = await sync();
    expect(next.code).toBe(3);
    expect(next.report.pendingDeletes).toHaveLength(6);
  });

  it('staging runs even when directory sync is not activated; an exporting run is refused (exit 2)', async () => {
    const other = await cloud.createTenant('fabrikam');
    const d = tempDir();
    const { file: f } = await writeConfig(d, cloud, other, { ldif: join(dir, 'export.ldif'), sync: { staging: true } });
    const staged = await nimbus('sync', '--config', f, '--json');
    expect(staged.code).toBe(0);
    const r = JSON.parse(staged.stdout) as RunReport;
    expect(r.status).toBe('staged');
    expect(r.message).toContain('not activated');
    const { file: g } = await writeConfig(d, cloud, other, { ldif: join(dir, 'export.ldif'), sync: { staging: false } });
    const exporting = await nimbus('sync', '--config', g);
    expect(exporting.code).toBe(2);
    expect(exporting.stderr).toContain('nimbus dirsync enable --tenant fabrikam');
  });
});
