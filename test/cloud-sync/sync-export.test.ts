// The cloud side of sync through its HTTP endpoint with a sync-role token: matching,
// UPN fallback, duplicate-attribute resiliency with self-healing errors, groups, deletes.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/cloud/services/context.ts';
import { GLOBAL_ADMIN } from '../../src/cloud/services/directory.ts';
import { BatchCache } from '../../src/cloud/sync/batch-cache.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

let cloud: TestCloud;
let t: TestTenant;
let sync: string;
let admin: string;
let n = 0;
const anchor = () => Buffer.from(`anchor-${++n}-${Math.random()}`).toString('base64').slice(0, 24);

const exportObjects = async (objects: unknown[], token = sync) => cloud.graph(token, '/sync/v1/objects', { method: 'POST', body: { objects } });
const user = (a: string, attributes: Record<string, unknown>) => ({ op: 'upsert', type: 'user', sourceAnchor: a, attributes });

beforeAll(async () => {
  cloud = await startCloud();
  t = await cloud.createTenant('fabrikam');
  await cloud.svc.domains.add(cliActor(t.tenant.id), 'fabrikam.com');
  await cloud.svc.domains.verify(cliActor(t.tenant.id), 'fabrikam.com', { force: true });
  sync = await t.token('sync');
  admin = await t.token('readwrite');
});
afterAll(async () => cloud.close());

describe('before directory sync is activated', () => {
  it('refuses exports with a message saying how to activate it', async () => {
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'x@fabrikam.com', displayName: 'X' })]);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('DirectorySyncNotActivated');
    expect(r.body.error.message).toContain('nimbus dirsync enable --tenant fabrikam');
    const org = await cloud.graph(admin, 'organization');
    expect(org.body.value[0].onPremisesLastSyncDateTime).toBeNull();
  });
});

describe('exports', () => {
  beforeAll(async () => {
    await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  });

  it('is refused to apps without the sync role', async () => {
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'y@fabrikam.com' })], admin);
    expect(r.status).toBe(403);
  });

  it('creates a synced user with its on-premises attributes and no password, and stamps the last sync time', async () => {
    const a = anchor();
    const r = await exportObjects([user(a, { userPrincipalName: 'alice@fabrikam.com', displayName: 'Alice', mail: 'alice@fabrikam.com', proxyAddresses: ['SMTP:alice@fabrikam.com'], onPremisesSamAccountName: 'alice', onPremisesDistinguishedName: 'CN=Alice,OU=Sales,DC=corp,DC=example,DC=com', accountEnabled: false })]);
    expect(r.status).toBe(200);
    expect(r.body.results[0]).toMatchObject({ status: 'created', match: 'new', userPrincipalName: 'alice@fabrikam.com' });
    const u = await cloud.graph(admin, `users/${r.body.results[0].id}?$select=onPremisesImmutableId,onPremisesSyncEnabled,onPremisesSamAccountName,accountEnabled,onPremisesLastSyncDateTime`);
    expect(u.body).toMatchObject({ onPremisesImmutableId: a, onPremisesSyncEnabled: true, onPremisesSamAccountName: 'alice', accountEnabled: false });
    expect(u.body.onPremisesLastSyncDateTime).not.toBeNull();
    const row = await cloud.svc.db.selectFrom('users').select('password_hash').where('id', '=', r.body.results[0].id).executeTakeFirstOrThrow();
    expect(row.password_hash).toBeNull();
    const org = await cloud.graph(admin, 'organization');
    expect(org.body.value[0].onPremisesLastSyncDateTime).not.toBeNull();
    // On-premises attributes are read-only to ordinary apps.
    const patch = await cloud.graph(admin, `users/${r.body.results[0].id}`, { method: 'PATCH', body: { displayName: 'Changed' } });
    expect(patch.status).toBe(400);
  });

  it('exporting the same object twice changes nothing the second time', async () => {
    const a = anchor();
    const obj = user(a, { userPrincipalName: 'idem@fabrikam.com', displayName: 'Idem' });
    await exportObjects([obj]);
    const before = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    const r = await exportObjects([obj]);
    expect(r.body.results[0].status).toBe('unchanged');
    const after = await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow();
    expect(after.change_seq).toBe(before.change_seq);
  });

  it('falls back to <mailNickname>@<initial domain> for an unverified suffix, and recomputes once the domain is verified', async () => {
    const a = anchor();
    const attrs = { userPrincipalName: 'carol@contoso.org', displayName: 'Carol', mailNickname: 'carol.w' };
    const r = await exportObjects([user(a, attrs)]);
    expect(r.body.results[0].userPrincipalName).toBe(`carol.w@${t.tenant.initial_domain}`);
    const u = await cloud.graph(admin, `users/${r.body.results[0].id}?$select=userPrincipalName,onPremisesUserPrincipalName`);
    expect(u.body.onPremisesUserPrincipalName).toBe('carol@contoso.org');
    await cloud.svc.domains.add(cliActor(t.tenant.id), 'contoso.org');
    await cloud.svc.domains.verify(cliActor(t.tenant.id), 'contoso.org', { force: true });
    // Verification alone recomputes it: the agent has nothing new to export for Carol.
    const after = await cloud.graph(admin, `users/${r.body.results[0].id}?$select=userPrincipalName`);
    expect(after.body.userPrincipalName).toBe('carol@contoso.org');
    const again = await exportObjects([user(a, attrs)]);
    expect(again.body.results[0]).toMatchObject({ status: 'unchanged', userPrincipalName: 'carol@contoso.org', id: r.body.results[0].id });
  });

  it('soft-matches a cloud-only user on UPN: same object, anchor stamped, no duplicate', async () => {
    const cloudUser = await cloud.graph(admin, 'users', { method: 'POST', body: newUser(t.tenant, 'dave', { userPrincipalName: 'dave@fabrikam.com' }) });
    const a = anchor();
    const r = await exportObjects([user(a, { userPrincipalName: 'DAVE@fabrikam.com', displayName: 'Dave (AD)' })]);
    expect(r.body.results[0]).toMatchObject({ status: 'updated', match: 'soft-upn', id: cloudUser.body.id });
    const list = await cloud.graph(admin, `users?$filter=startswith(userPrincipalName,'dave')&$select=id,onPremisesImmutableId`);
    expect(list.body.value).toEqual([{ id: cloudUser.body.id, onPremisesImmutableId: a }]);
  });

  it('soft-matches on the primary SMTP address', async () => {
    const cloudUser = await cloud.graph(admin, 'users', { method: 'POST', body: newUser(t.tenant, 'erin', { mail: 'erin.mail@fabrikam.com' }) });
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'erin.onprem@fabrikam.com', proxyAddresses: ['SMTP:erin.mail@fabrikam.com'], displayName: 'Erin' })]);
    expect(r.body.results[0]).toMatchObject({ match: 'soft-smtp', id: cloudUser.body.id, userPrincipalName: 'erin.onprem@fabrikam.com' });
  });

  it('never soft-matches an administrator: a new object gets a placeholder UPN and a conflict error naming the admin', async () => {
    const adm = await cloud.graph(admin, 'users', { method: 'POST', body: newUser(t.tenant, 'boss', { userPrincipalName: 'boss@fabrikam.com' }) });
    await cloud.svc.directory.assignRole(cliActor(t.tenant.id), GLOBAL_ADMIN, adm.body.id);
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'boss@fabrikam.com', displayName: 'Boss (AD)' })]);
    const res = r.body.results[0];
    expect(res.match).toBe('new');
    expect(res.id).not.toBe(adm.body.id);
    expect(res.softMatchRefused).toContain('administrator');
    expect(res.userPrincipalName).toMatch(new RegExp(`^boss\\d{4}@${t.tenant.initial_domain.replace(/\./g, '\\.')}$`));
    expect(res.provisioningErrors[0]).toMatchObject({ category: 'PropertyConflict', propertyCausingError: 'UserPrincipalName', value: 'boss@fabrikam.com', conflictingObjectId: adm.body.id });
    const u = await cloud.graph(admin, `users/${res.id}?$select=onPremisesProvisioningErrors`);
    expect(u.body.onPremisesProvisioningErrors).toHaveLength(1);
  });

  it('blocks soft match when the tenant says so', async () => {
    const feat = await cloud.graph(admin, 'directory/onPremisesSynchronization');
    const id = feat.body.value[0].id;
    expect((await cloud.graph(admin, `directory/onPremisesSynchronization/${id}`, { method: 'PATCH', body: { features: { blockSoftMatchEnabled: true } } })).status).toBe(204);
    const cloudUser = await cloud.graph(admin, 'users', { method: 'POST', body: newUser(t.tenant, 'frank', { userPrincipalName: 'frank@fabrikam.com' }) });
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'frank@fabrikam.com', displayName: 'Frank' })]);
    expect(r.body.results[0].match).toBe('new');
    expect(r.body.results[0].id).not.toBe(cloudUser.body.id);
    await cloud.graph(admin, `directory/onPremisesSynchronization/${id}`, { method: 'PATCH', body: { features: { blockSoftMatchEnabled: false } } });
  });

  it('resolves a duplicate UPN between synced users with a placeholder, and heals when the other goes away', async () => {
    const a1 = anchor();
    const a2 = anchor();
    const first = await exportObjects([user(a1, { userPrincipalName: 'gina@fabrikam.com', displayName: 'Gina 1', proxyAddresses: ['SMTP:gina@fabrikam.com'] })]);
    const second = await exportObjects([user(a2, { userPrincipalName: 'gina@fabrikam.com', displayName: 'Gina 2', proxyAddresses: ['SMTP:gina@fabrikam.com', 'smtp:gina2@fabrikam.com'] })]);
    const res = second.body.results[0];
    expect(res.status).toBe('created');
    expect(res.userPrincipalName).not.toBe('gina@fabrikam.com');
    expect(res.provisioningErrors.map((e: any) => e.propertyCausingError).sort()).toEqual(['ProxyAddresses', 'UserPrincipalName']);
    const g2 = await cloud.graph(admin, `users/${res.id}?$select=proxyAddresses`);
    expect(g2.body.proxyAddresses).toEqual(['smtp:gina2@fabrikam.com']);
    // The conflict goes away: the first user is deleted on-premises.
    const del = await exportObjects([{ op: 'delete', type: 'user', sourceAnchor: a1 }]);
    expect(del.body.results[0]).toMatchObject({ status: 'deleted', id: first.body.results[0].id });
    const healed = await cloud.graph(admin, `users/${res.id}?$select=userPrincipalName,proxyAddresses,onPremisesProvisioningErrors`);
    expect(healed.body.userPrincipalName).toBe('gina@fabrikam.com');
    expect(healed.body.proxyAddresses).toEqual(['SMTP:gina@fabrikam.com', 'smtp:gina2@fabrikam.com']);
    expect(healed.body.onPremisesProvisioningErrors).toEqual([]);
  });

  it('within one batch, later objects see the users created before them: a shared address names its holder, a repeated anchor updates the same user, a same UPN is refused as a soft match', async () => {
    // Created users are inserted several at a time; every read in the batch must still see them.
    const [a, b, c, d] = [anchor(), anchor(), anchor(), anchor()];
    const r = await exportObjects([
      user(a, { userPrincipalName: 'held.a@fabrikam.com', displayName: 'Held A', proxyAddresses: ['SMTP:held.a@fabrikam.com', 'smtp:shared.batch@fabrikam.com'] }),
      user(b, { userPrincipalName: 'held.b@fabrikam.com', displayName: 'Held B', proxyAddresses: ['SMTP:held.b@fabrikam.com', 'smtp:shared.batch@fabrikam.com'] }),
      user(a, { userPrincipalName: 'held.a@fabrikam.com', displayName: 'Held A renamed', proxyAddresses: ['SMTP:held.a@fabrikam.com', 'smtp:shared.batch@fabrikam.com'] }),
      user(c, { userPrincipalName: 'dup.batch@fabrikam.com', displayName: 'Dup C' }),
      user(d, { userPrincipalName: 'dup.batch@fabrikam.com', displayName: 'Dup D' }),
    ]);
    expect(r.status).toBe(200);
    const [ra, rb, ra2, rc, rd] = r.body.results;
    expect([ra.status, rb.status, ra2.status, rc.status, rd.status]).toEqual(['created', 'created', 'updated', 'created', 'created']);
    expect(ra2.id).toBe(ra.id);
    const rows = await cloud.svc.db.selectFrom('users').select(['id', 'display_name']).where('tenant_id', '=', t.tenant.id).where('immutable_id', '=', a).execute();
    expect(rows).toEqual([{ id: ra.id, display_name: 'Held A renamed' }]);
    expect(rb.provisioningErrors).toEqual([expect.objectContaining({ propertyCausingError: 'ProxyAddresses', value: 'smtp:shared.batch@fabrikam.com', conflictingObjectId: ra.id, conflictingObjectDisplayName: 'held.a@fabrikam.com' })]);
    expect(rd.softMatchRefused).toContain('already synced with another source anchor');
    expect(rd.provisioningErrors).toEqual([expect.objectContaining({ propertyCausingError: 'UserPrincipalName', conflictingObjectId: rc.id })]);
    // The same anchor twice in a row, with no other read between them.
    const e = anchor();
    const again = await exportObjects([user(e, { userPrincipalName: 'twice@fabrikam.com', displayName: 'Twice' }), user(e, { userPrincipalName: 'twice@fabrikam.com', displayName: 'Twice renamed' })]);
    expect(again.body.results.map((x: { status: string }) => x.status)).toEqual(['created', 'updated']);
    expect(again.body.results[1].id).toBe(again.body.results[0].id);
  });

  it('restores an object that comes back into scope as the same object', async () => {
    const a = anchor();
    const created = await exportObjects([user(a, { userPrincipalName: 'hank@fabrikam.com', displayName: 'Hank' })]);
    await exportObjects([{ op: 'delete', type: 'user', sourceAnchor: a }]);
    const bin = await cloud.graph(admin, 'directory/deletedItems/microsoft.graph.user?$select=id');
    expect(bin.body.value.map((u: any) => u.id)).toContain(created.body.results[0].id);
    const back = await exportObjects([user(a, { userPrincipalName: 'hank@fabrikam.com', displayName: 'Hank' })]);
    expect(back.body.results[0]).toMatchObject({ status: 'restored', id: created.body.results[0].id });
  });

  it('syncs groups with members and nested groups, resolves managers, and reports unknown references', async () => {
    const [u1, u2, mgr, inner, outer] = [anchor(), anchor(), anchor(), anchor(), anchor()];
    const r = await exportObjects([
      { op: 'upsert', type: 'group', sourceAnchor: outer, attributes: { displayName: 'Outer', securityEnabled: true, members: [u1, inner, 'bm90LXlldA=='] } },
      { op: 'upsert', type: 'group', sourceAnchor: inner, attributes: { displayName: 'Inner', securityEnabled: true, members: [u2] } },
      user(u1, { userPrincipalName: 'ivy@fabrikam.com', displayName: 'Ivy', manager: mgr }),
      user(mgr, { userPrincipalName: 'mgr@fabrikam.com', displayName: 'Manager' }),
      user(u2, { userPrincipalName: 'jack@fabrikam.com', displayName: 'Jack' }),
    ]);
    const byAnchor = new Map<string, any>(r.body.results.map((x: any) => [x.sourceAnchor, x]));
    // The manager came later in the same batch: unresolved when Ivy was applied, set by the end of the batch.
    expect(byAnchor.get(u1).unresolvedReferences).toEqual([mgr]);
    expect((await cloud.graph(admin, `users/${byAnchor.get(u1).id}/manager`)).body.id).toBe(byAnchor.get(mgr).id);
    expect(byAnchor.get(outer).unresolvedReferences).toEqual(['bm90LXlldA==']);
    const outerId = byAnchor.get(outer).id;
    const members = await cloud.graph(admin, `groups/${outerId}/members`);
    expect(members.body.value.map((m: any) => m['@odata.type']).sort()).toEqual(['#microsoft.graph.group', '#microsoft.graph.user']);
    await exportObjects([user(u1, { userPrincipalName: 'ivy@fabrikam.com', displayName: 'Ivy', manager: mgr })]);
    const m = await cloud.graph(admin, `users/${byAnchor.get(u1).id}/manager`);
    expect(m.body.id).toBe(byAnchor.get(mgr).id);
    // Membership changes: drop the nested group.
    const again = await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: outer, attributes: { displayName: 'Outer', securityEnabled: true, members: [u1] } }]);
    expect(again.body.results[0].status).toBe('updated');
    expect((await cloud.graph(admin, `groups/${outerId}/members`)).body.value).toHaveLength(1);
  });


  it('a delta round that started before a sync created a group gets its members; later changes come from the change log', async () => {
    const [u1, u2, grp] = [anchor(), anchor(), anchor()];
    const users = await exportObjects([user(u1, { userPrincipalName: 'delta1@fabrikam.com' }), user(u2, { userPrincipalName: 'delta2@fabrikam.com' })]);
    const [id1, id2] = users.body.results.map((r: { id: string }) => r.id);
    const reader = await t.token('read');
    const round = async (link: string) => {
      let next: string | undefined = link;
      const items: any[] = [];
      let deltaLink = '';
      while (next) {
        const r = await cloud.graph(reader, next.replace(/^https?:\/\/[^/]+/, ''));
        expect(r.status).toBe(200);
        items.push(...r.body.value);
        next = r.body['@odata.nextLink'];
        deltaLink = r.body['@odata.deltaLink'] ?? deltaLink;
      }
      return { items, deltaLink };
    };
    const r1 = await round('/v1.0/groups/delta?$select=displayName,members');
    const created = await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Delta group', securityEnabled: true, members: [u1, u2] } }]);
    const gid = created.body.results[0].id as string;
    // The first members went in without change-log rows; the group says from when the log holds its changes.
    const logged = await cloud.svc.db.selectFrom('membership_changes').select('member_id').where('group_id', '=', gid).execute();
    expect(logged).toEqual([]);
    const row = await cloud.svc.db.selectFrom('groups').select(['members_since', 'seq']).where('id', '=', gid).executeTakeFirstOrThrow();
    expect(row.members_since).toBe(row.seq);
    const r2 = await round(r1.deltaLink);
    const g2 = r2.items.find((i) => i.id === gid);
    expect(g2.displayName).toBe('Delta group');
    expect(g2['members@delta'].map((m: { id: string }) => m.id).sort()).toEqual([id1, id2].sort());
    // A removal after that is logged, and a round from after the group's creation reads the log.
    await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Delta group', securityEnabled: true, members: [u1] } }]);
    const r3 = await round(r2.deltaLink);
    expect(r3.items.find((i) => i.id === gid)['members@delta']).toEqual([{ '@odata.type': '#microsoft.graph.user', id: id2, '@removed': { reason: 'deleted' } }]);
  });

  it('applies changed member lists by their difference from the last one, to the same members and waiting references as a whole comparison', async () => {
    // A seeded walk: lists with members added and dropped, members not in the cloud yet that
    // arrive later, the group itself, a nested group, and a member deleted as it leaves the list.
    let seed = 7;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % k);
    const grp = anchor();
    const nested = anchor();
    const pool = Array.from({ length: 30 }, () => anchor());
    const live = new Set<string>();
    const exportUser = async (a: string) => {
      const r = await exportObjects([user(a, { userPrincipalName: `walk-${a.replace(/[^a-z0-9]/gi, '').toLowerCase()}@fabrikam.com`, displayName: 'Walk' })]);
      expect(r.body.results[0].status).toMatch(/created|restored|unchanged/);
      live.add(a);
    };
    for (const a of pool.slice(0, 10)) await exportUser(a);
    await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: nested, attributes: { displayName: 'Walk nested', securityEnabled: true } }]);
    live.add(nested);
    const idOf = async (a: string) => (await cloud.svc.db.selectFrom('users').select('id').where('immutable_id', '=', a).executeTakeFirst())?.id ?? (await cloud.svc.db.selectFrom('groups').select('id').where('immutable_id', '=', a).executeTakeFirst())?.id;
    let list: string[] = [];
    let gid = '';
    for (let round = 0; round < 14; round++) {
      // Change a few members (the first round sets the whole list).
      const next = new Set(list);
      for (let k = round === 0 ? 12 : 1 + rand(4); k > 0; k--) next.add(pool[rand(pool.length)]!);
      for (let k = round === 0 ? 0 : rand(3); k > 0 && next.size; k--) next.delete([...next][rand(next.size)]!);
      if (round % 4 === 1) next.add(nested);
      if (round === 5) next.add(grp); // itself: never a member
      // A member deleted on-premises leaves the list in the same run.
      const leaving = round % 5 === 3 ? [...next].find((a) => live.has(a) && a !== nested) : undefined;
      if (leaving) {
        next.delete(leaving);
        expect((await exportObjects([{ op: 'delete', type: 'user', sourceAnchor: leaving }])).body.results[0].status).toBe('deleted');
        live.delete(leaving);
      }
      list = [...next];
      const r = await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Walk', securityEnabled: true, members: list } }]);
      expect(r.status).toBe(200);
      gid = r.body.results[0].id;
      const waiting = list.filter((a) => !live.has(a) && a !== grp).sort();
      expect([...(r.body.results[0].unresolvedReferences ?? [])].filter((a: string) => a !== grp).sort()).toEqual(waiting);
      // Some members arrive in a later batch (their waiting references are set then).
      if (round % 3 === 2) for (const a of waiting.slice(0, 2)) await exportUser(a);
      const want = (await Promise.all(list.filter((a) => live.has(a)).map(idOf))).sort();
      const rows = await cloud.svc.db.selectFrom('memberships').select('member_id').where('group_id', '=', gid).execute();
      expect(rows.map((x) => x.member_id).sort()).toEqual(want);
    }
    // The rows changed behind the list's back (a row lost): the next list is compared whole, and the row is back.
    const rows = await cloud.svc.db.selectFrom('memberships').select('member_id').where('group_id', '=', gid).execute();
    expect(rows.length).toBeGreaterThan(2);
    await cloud.svc.db.deleteFrom('memberships').where('group_id', '=', gid).where('member_id', '=', rows[0]!.member_id).execute();
    await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Walk', securityEnabled: true, members: list } }]);
    expect((await cloud.svc.db.selectFrom('memberships').select('member_id').where('group_id', '=', gid).execute()).length).toBe(rows.length);
    const kept = await cloud.svc.db.selectFrom('sync_member_lists').select(['anchors', 'member_count']).where('group_id', '=', gid).executeTakeFirstOrThrow();
    expect(kept.member_count).toBe(rows.length);
    expect(JSON.parse(kept.anchors).sort()).toEqual([...list].sort());
  });

  it("fetches up front the members of groups that resolve their whole list, and leaves those of a group applying its list by difference to be looked up as needed", async () => {
    const [u1, u2, u3, grp] = [anchor(), anchor(), anchor(), anchor()];
    for (const a of [u1, u2, u3]) await exportObjects([user(a, { userPrincipalName: `pre-${a.replace(/[^a-z0-9]/gi, '').toLowerCase()}@fabrikam.com`, displayName: 'Pre' })]);
    const created = await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Preload', securityEnabled: true, members: [u1, u2] } }]);
    const gid = created.body.results[0].id;
    const item = { op: 'upsert' as const, type: 'group' as const, sourceAnchor: grp, attributes: { displayName: 'Preload', securityEnabled: true, members: [u1, u2, u3] } };
    const resolveWith = async (wholeMembers?: (g: { id: string } | null) => boolean) => {
      const cache = await BatchCache.load(cloud.svc.db, t.tenant.id, [item], (a) => a.userPrincipalName ?? '', wholeMembers);
      let reads = 0;
      cache.beforeRead = async () => void reads++;
      const found = await cache.resolve([u1, u2, u3]);
      return { reads, found: [u1, u2, u3].map((a) => found.get(a)?.type) };
    };
    const seen: (string | undefined)[] = [];
    // Whole list (the default, and a group created by this call): answered from the cache.
    expect(await resolveWith()).toEqual({ reads: 0, found: ['user', 'user', 'user'] });
    expect(await resolveWith((g) => (seen.push(g?.id), true))).toEqual({ reads: 0, found: ['user', 'user', 'user'] });
    expect(seen).toEqual([gid]);
    // By difference: nothing fetched for it; the members it looks up come from the database, the same.
    expect(await resolveWith(() => false)).toEqual({ reads: 1, found: ['user', 'user', 'user'] });
    // Through the service: the group in the cloud already gains u3 by difference.
    const r = await exportObjects([item]);
    expect(r.body.results[0]).toMatchObject({ id: gid, status: 'updated' });
    const ids = await Promise.all([u1, u2, u3].map(async (a) => (await cloud.svc.db.selectFrom('users').select('id').where('immutable_id', '=', a).executeTakeFirstOrThrow()).id));
    expect((await cloud.svc.db.selectFrom('memberships').select('member_id').where('group_id', '=', gid).execute()).map((x) => x.member_id).sort()).toEqual(ids.sort());
  });

  it('sets a manager or a member that arrives in a later batch, without a new export of the referrer', async () => {
    const [report, boss, grp, late, other] = [anchor(), anchor(), anchor(), anchor(), anchor()];
    const first = await exportObjects([
      user(report, { userPrincipalName: 'rita@fabrikam.com', displayName: 'Rita', manager: boss }),
      { op: 'upsert', type: 'group', sourceAnchor: grp, attributes: { displayName: 'Late members', securityEnabled: true, members: [late] } },
    ]);
    const ids = new Map<string, string>(first.body.results.map((x: any) => [x.sourceAnchor, x.id]));
    expect(first.body.results.find((x: any) => x.sourceAnchor === report).unresolvedReferences).toEqual([boss]);
    expect((await cloud.graph(admin, `users/${ids.get(report)}/manager`)).status).toBe(404);
    const before = (await cloud.graph(admin, `groups/${ids.get(grp)}/members`)).body.value;
    expect(before).toHaveLength(0);

    // The targets arrive later, in their own batch: the waiting references are set then.
    const second = await exportObjects([user(boss, { userPrincipalName: 'boss@fabrikam.com', displayName: 'Boss' }), user(late, { userPrincipalName: 'late@fabrikam.com', displayName: 'Late' })]);
    const bossId = second.body.results[0].id;
    expect((await cloud.graph(admin, `users/${ids.get(report)}/manager`)).body.id).toBe(bossId);
    const after = (await cloud.graph(admin, `groups/${ids.get(grp)}/members`)).body.value;
    expect(after.map((m: any) => m.id)).toEqual([second.body.results[1].id]);
    expect(await cloud.svc.db.selectFrom('sync_pending_refs').select('target_anchor').where('target_anchor', 'in', [boss, late]).execute()).toEqual([]);

    // A reference the referrer no longer wants is dropped, not set, when its target arrives.
    await exportObjects([user(report, { userPrincipalName: 'rita@fabrikam.com', displayName: 'Rita', manager: other })]);
    await exportObjects([user(report, { userPrincipalName: 'rita@fabrikam.com', displayName: 'Rita' })]);
    await exportObjects([user(other, { userPrincipalName: 'other@fabrikam.com', displayName: 'Other' })]);
    expect((await cloud.graph(admin, `users/${ids.get(report)}/manager`)).status).toBe(404);
  });
  it('soft-matches mail-enabled groups on proxy addresses but never security groups', async () => {
    const m365 = await cloud.graph(admin, 'groups', { method: 'POST', body: { displayName: 'Team', mailEnabled: true, mailNickname: 'team', securityEnabled: false, groupTypes: ['Unified'] } });
    const sec = await cloud.graph(admin, 'groups', { method: 'POST', body: { displayName: 'Sec', mailEnabled: false, mailNickname: 'sec', securityEnabled: true } });
    const r = await exportObjects([
      { op: 'upsert', type: 'group', sourceAnchor: anchor(), attributes: { displayName: 'Team (AD)', mailEnabled: true, securityEnabled: false, proxyAddresses: [`SMTP:${m365.body.mail}`] } },
      { op: 'upsert', type: 'group', sourceAnchor: anchor(), attributes: { displayName: 'Sec', securityEnabled: true, mailNickname: 'sec' } },
    ]);
    expect(r.body.results[0]).toMatchObject({ match: 'soft-proxy', id: m365.body.id });
    expect(r.body.results[1].match).toBe('new');
    expect(r.body.results[1].id).not.toBe(sec.body.id);
  });

  it('refuses a source anchor that belongs to an object of another type', async () => {
    const a = anchor();
    await exportObjects([user(a, { userPrincipalName: 'kim@fabrikam.com', displayName: 'Kim' })]);
    const r = await exportObjects([{ op: 'upsert', type: 'group', sourceAnchor: a, attributes: { displayName: 'Kim group' } }]);
    expect(r.body.results[0]).toMatchObject({ status: 'error' });
    expect(r.body.results[0].provisioningErrors[0].category).toBe('ObjectTypeMismatch');
  });

  it('an object the database refuses mid-batch becomes its own error; the objects around it land, it leaves nothing behind', async () => {
    // A real failure inside the store (a trigger), not a stub: the straight-through try of the
    // batch is rolled back and the batch runs again object by object.
    await sql`CREATE TRIGGER poison BEFORE INSERT ON users WHEN NEW.display_name = 'Poison Pill' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`.execute(cloud.svc.db);
    try {
      const [a, p, b] = [anchor(), anchor(), anchor()];
      const r = await exportObjects([
        user(a, { userPrincipalName: 'before.poison@fabrikam.com', displayName: 'Before', mail: 'before.poison@fabrikam.com' }),
        user(p, { userPrincipalName: 'poison@fabrikam.com', displayName: 'Poison Pill', mail: 'poison@fabrikam.com' }),
        user(b, { userPrincipalName: 'after.poison@fabrikam.com', displayName: 'After' }),
      ]);
      expect(r.status).toBe(200);
      expect(r.body.results.map((x: { status: string }) => x.status)).toEqual(['created', 'error', 'created']);
      expect(r.body.results[1].message).toContain('poisoned row');
      const T = t.tenant.id;
      const rows = await cloud.svc.db.selectFrom('users').select(['immutable_id', 'upn']).where('tenant_id', '=', T).where('immutable_id', 'in', [a, p, b]).execute();
      expect(rows.map((x) => x.immutable_id).sort()).toEqual([a, b].sort());
      const held = await cloud.svc.db.selectFrom('addresses').select('address').where('tenant_id', '=', T).where('address', 'in', ['poison@fabrikam.com', 'before.poison@fabrikam.com']).execute();
      expect(held.map((x) => x.address)).toEqual(['before.poison@fabrikam.com']);
    } finally {
      await sql`DROP TRIGGER poison`.execute(cloud.svc.db);
    }
  });

  it('rejects malformed batches with a 400 naming the object and the field', async () => {
    const r = await exportObjects([user(anchor(), { userPrincipalName: 'ok@fabrikam.com' }), { op: 'upsert', type: 'user', sourceAnchor: 'not base64!', attributes: {} }]);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('object #1');
    expect(r.body.error.message).toContain('sourceAnchor');
    const unknown = await exportObjects([user(anchor(), { userPrincipalName: 'ok@fabrikam.com', favouriteColour: 'blue' })]);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('favouriteColour');
    const tooMany = await exportObjects(Array.from({ length: 5001 }, (_, i) => ({ op: 'delete', type: 'user', sourceAnchor: Buffer.from(`gone-${i}`).toString('base64') })));
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toContain('at most 5000 objects (got 5001)');
  });

  it('takes batch bodies up to 16 MB (Graph keeps 4 MB) and refuses larger ones with a 413 naming the limit', async () => {
    // 6 MB: read and validated (the bad item is reported), not refused for its size.
    const padded = (n: number, size: number) => Array.from({ length: n }, (_, i) => user(anchor(), { userPrincipalName: `p${i}@fabrikam.com`, streetAddress: 'x'.repeat(size) }));
    const six = await exportObjects([...padded(5000, 1000), { op: 'upsert', type: 'user', sourceAnchor: 'not base64!', attributes: {} }].slice(-5000));
    expect(six.status).toBe(400);
    expect(six.body.error.message).toContain('sourceAnchor');
    const big = await exportObjects(padded(5000, 3500));
    expect(big.status).toBe(413);
    expect(big.body.error.message).toContain('16 MB');
  });
});

describe('run reports', () => {
  it('records a run reported at its start and its end, newest first, and says whether one is running', async () => {
    const startedAt = new Date().toISOString();
    const start = await cloud.graph(sync, '/sync/v1/runs', { method: 'POST', body: { runId: 'run-1', kind: 'delta', status: 'in-progress', inProgress: true, startedAt } });
    expect(start.status).toBe(204);
    let runs = await cloud.graph(admin, '/sync/v1/runs');
    expect(runs.body.inProgress).toBe(true);
    expect(runs.body.runs[0]).toMatchObject({ runId: 'run-1', status: 'in-progress', inProgress: true });
    const end = await cloud.graph(sync, '/sync/v1/runs', {
      method: 'POST',
      body: { runId: 'run-1', kind: 'delta', status: 'success', inProgress: false, startedAt, endedAt: new Date().toISOString(), counts: { adds: 3, updates: 1 }, errors: [{ anchor: 'x', message: 'bad' }] },
    });
    expect(end.status).toBe(204);
    runs = await cloud.graph(admin, '/sync/v1/runs');
    expect(runs.body.inProgress).toBe(false);
    expect(runs.body.runs).toHaveLength(1);
    expect(runs.body.runs[0]).toMatchObject({ status: 'success', counts: { adds: 3, updates: 1 }, errors: [{ anchor: 'x', message: 'bad' }] });
  });

  it('accepts reports only from the sync role, and names a bad field', async () => {
    const startedAt = new Date().toISOString();
    expect((await cloud.graph(admin, '/sync/v1/runs', { method: 'POST', body: { runId: 'r2', kind: 'full', status: 'x', inProgress: false, startedAt } })).status).toBe(403);
    const bad = await cloud.graph(sync, '/sync/v1/runs', { method: 'POST', body: { runId: 'r 2', kind: 'full', status: 'x', inProgress: false, startedAt } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('runId');
  });
});

