// Groups through the Graph API on a real server and store: required properties, mail
// rules, membership through members/$ref (users and nested groups), paging of members,
// and groups/delta with members@delta across rounds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

let cloud: TestCloud;
let a: TestTenant;
let rw: string;
let read: string;
let sync: string;

beforeAll(async () => {
  cloud = await startCloud();
  a = await cloud.createTenant('groups-a');
  rw = await a.token('readwrite');
  read = await a.token('read');
  sync = await a.token('sync');
});

afterAll(async () => {
  await cloud?.close();
});

const security = (nick: string, extra: Record<string, unknown> = {}) => ({ displayName: `Group ${nick}`, mailEnabled: false, mailNickname: nick, securityEnabled: true, ...extra });
const createGroup = async (token: string, body: unknown) => cloud.graph(token, 'groups', { method: 'POST', body });
const ref = (kind: 'users' | 'groups' | 'directoryObjects', id: string) => ({ '@odata.id': `https://graph.microsoft.com/v1.0/${kind}/${id}` });
const addMember = (groupId: string, body: unknown, token = rw) => cloud.graph(token, `groups/${groupId}/members/$ref`, { method: 'POST', body });
const path = (link: string) => link.replace(/^https?:\/\/[^/]+/, '');

async function newUserId(nick: string): Promise<string> {
  const r = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(a.tenant, nick) });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

async function newGroupId(nick: string): Promise<string> {
  const r = await createGroup(rw, security(nick));
  expect(r.status).toBe(201);
  return r.body.id as string;
}

async function allMembers(groupId: string, top?: number): Promise<{ ids: string[]; pages: number }> {
  let link: string | undefined = `/v1.0/groups/${groupId}/members${top ? `?$top=${top}` : ''}`;
  const ids: string[] = [];
  let pages = 0;
  while (link) {
    const r = await cloud.graph(rw, path(link));
    expect(r.status).toBe(200);
    pages++;
    ids.push(...(r.body.value as any[]).map((m) => m.id as string));
    link = r.body['@odata.nextLink'] as string | undefined;
  }
  return { ids, pages };
}

/** Follows a delta round to its deltaLink; returns every item and the deltaLink. */
async function deltaRound(start: string, headers: Record<string, string> = {}) {
  let link: string | undefined = start;
  const items: any[] = [];
  let deltaLink: string | undefined;
  let pages = 0;
  while (link) {
    const r = await cloud.graph(rw, path(link), { headers });
    expect(r.status).toBe(200);
    pages++;
    items.push(...(r.body.value as any[]));
    link = r.body['@odata.nextLink'] as string | undefined;
    deltaLink = r.body['@odata.deltaLink'] as string | undefined;
  }
  expect(deltaLink).toBeDefined();
  return { items, deltaLink: deltaLink!, pages };
}

describe('creating a group', () => {
  it('creates a security group with the required properties', async () => {
    const r = await createGroup(rw, security('eng', { description: 'Engineers' }));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ displayName: 'Group eng', mailEnabled: false, securityEnabled: true, mailNickname: 'eng', mail: null, description: 'Engineers', groupTypes: [] });
    expect((await cloud.graph(rw, `groups/${r.body.id}`)).body.displayName).toBe('Group eng');
  });

  it.each(['displayName', 'mailEnabled', 'mailNickname', 'securityEnabled'])('names the missing required property %s', async (prop) => {
    const body: Record<string, unknown> = security('req');
    delete body[prop];
    const r = await createGroup(rw, body);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(prop);
    expect(r.body.error.target).toBe(prop);
  });

  it('names every missing property at once, and null counts as missing', async () => {
    const r = await createGroup(rw, {});
    expect(r.status).toBe(400);
    for (const p of ['displayName', 'mailEnabled', 'mailNickname', 'securityEnabled']) expect(r.body.error.message).toContain(p);
    const n = await createGroup(rw, security('nullnick', { mailNickname: null }));
    expect(n.status).toBe(400);
    expect(n.body.error.message).toContain('mailNickname');
  });

  it.each<[Record<string, unknown>, string]>([
    [{ displayName: 'x'.repeat(257) }, 'displayName'],
    [{ mailNickname: 'n'.repeat(65) }, 'mailNickname'],
    [{ mailNickname: 'has space' }, 'mailNickname'],
    [{ mailNickname: 'a@b' }, 'mailNickname'],
    [{ mailEnabled: 'false' }, 'mailEnabled'],
    [{ securityEnabled: 1 }, 'securityEnabled'],
    [{ groupTypes: 'Unified' }, 'groupTypes'],
    [{ groupTypes: ['Bogus'] }, 'groupTypes'],
    [{ groupTypes: ['DynamicMembership'] }, 'DynamicMembership'],
    [{ visibility: 'Secret' }, 'visibility'],
    [{ colour: 'red' }, 'colour'],
    [{ onPremisesSecurityIdentifier: 'S-1-5-21-1' }, 'onPremisesSecurityIdentifier'],
    [{ proxyAddresses: ['SMTP:x@example.org'] }, 'proxyAddresses'],
  ])('refuses %j naming %s', async (extra, prop) => {
    const r = await createGroup(rw, security('bad', extra));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(prop);
  });

  it('refuses mail-enabled non-Unified groups for a readwrite app, allows them for sync', async () => {
    const r = await createGroup(rw, security('dl', { mailEnabled: true }));
    expect(r.status).toBe(400);
    expect(r.body.error.target).toBe('mailEnabled');
    expect(r.body.error.message).toContain('Unified');
    const s = await createGroup(sync, {
      ...security('dl', { mailEnabled: true, mail: `dl@${a.tenant.initial_domain}`, proxyAddresses: [`SMTP:dl@${a.tenant.initial_domain}`, 'smtp:dl-alias@example.org'] }),
      onPremisesSecurityIdentifier: 'S-1-5-21-9-9-9-1200',
      onPremisesSamAccountName: 'dl',
    });
    expect(s.status).toBe(201);
    expect(s.body).toMatchObject({ mailEnabled: true, mail: `dl@${a.tenant.initial_domain}`, onPremisesSyncEnabled: true });
    // Its alias is taken in the tenant's address space.
    const clash = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(a.tenant, 'dlx', { mail: 'DL-alias@example.org' }) });
    expect(clash.status).toBe(400);
    expect(clash.body.error.message).toContain("group 'Group dl'");
  });

  it('gives a Unified group a mail address and primary SMTP proxy on the default domain', async () => {
    const r = await createGroup(rw, { displayName: 'Marketing', mailEnabled: true, mailNickname: 'marketing', securityEnabled: false, groupTypes: ['Unified'], visibility: 'Private' });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ mail: `marketing@${a.tenant.initial_domain}`, proxyAddresses: [`SMTP:marketing@${a.tenant.initial_domain}`], groupTypes: ['Unified'], visibility: 'Private' });
    // A second Unified group with the same nickname collides on the address.
    const dup = await createGroup(rw, { displayName: 'Marketing 2', mailEnabled: true, mailNickname: 'Marketing', securityEnabled: false, groupTypes: ['Unified'] });
    expect(dup.status).toBe(400);
    expect(dup.body.error.details[0].code).toBe('ObjectConflict');
  });

  it('refuses writes by the read role', async () => {
    expect((await createGroup(read, security('ro'))).status).toBe(403);
  });
});

describe('membership', () => {
  let g: string;
  let nested: string;
  let u1: string;
  let u2: string;

  beforeAll(async () => {
    g = await newGroupId('parent');
    nested = await newGroupId('child');
    u1 = await newUserId('m-one');
    u2 = await newUserId('m-two');
  });

  it('adds a user and a nested group through members/$ref and lists them', async () => {
    expect((await addMember(g, ref('directoryObjects', u1))).status).toBe(204);
    expect((await addMember(g, ref('groups', nested))).status).toBe(204);
    const r = await cloud.graph(rw, `groups/${g}/members`);
    expect(r.status).toBe(200);
    const byId = new Map((r.body.value as any[]).map((m) => [m.id, m]));
    expect([...byId.keys()].sort()).toEqual([u1, nested].sort());
    expect(byId.get(u1)['@odata.type']).toBe('#microsoft.graph.user');
    expect(byId.get(u1).userPrincipalName).toBe(`m-one@${a.tenant.initial_domain}`);
    expect(byId.get(nested)['@odata.type']).toBe('#microsoft.graph.group');
    // memberOf from both sides.
    expect((await cloud.graph(rw, `users/${u1}/memberOf`)).body.value.map((x: any) => x.id)).toEqual([g]);
    expect((await cloud.graph(rw, `groups/${nested}/memberOf`)).body.value.map((x: any) => x.id)).toEqual([g]);
  });

  it('refuses a duplicate add, naming members', async () => {
    const r = await addMember(g, ref('users', u1.toUpperCase()));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('already');
    expect(r.body.error.target).toBe('members');
    expect((await allMembers(g)).ids).toHaveLength(2);
  });

  it('refuses self-membership', async () => {
    const r = await addMember(g, ref('groups', g));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('member of itself');
  });

  it('refuses unknown members, bad references and other tenants’ objects', async () => {
    expect((await addMember(g, ref('users', '00000000-0000-0000-0000-0000000000aa'))).status).toBe(404);
    for (const body of [{}, { '@odata.id': 42 }, { '@odata.id': '' }, { '@odata.id': 'https://graph.microsoft.com/v1.0/users/%E0%A4%A' }, 'just-a-string', null]) {
      const r = await addMember(g, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const other = await cloud.createTenant('groups-other');
    const otherTok = await other.token();
    const ou = await cloud.graph(otherTok, 'users', { method: 'POST', body: newUser(other.tenant, 'outsider') });
    expect((await addMember(g, ref('users', ou.body.id as string))).status).toBe(404);
    // ... and the other tenant cannot touch this tenant's group.
    expect((await addMember(g, ref('users', ou.body.id as string), otherTok)).status).toBe(404);
  });

  it('refuses membership changes by the read role', async () => {
    expect((await addMember(g, ref('users', u2), read)).status).toBe(403);
    expect((await cloud.graph(read, `groups/${g}/members/${u1}/$ref`, { method: 'DELETE' })).status).toBe(403);
  });

  it('removes a member; removing a non-member is a 404', async () => {
    expect((await cloud.graph(rw, `groups/${g}/members/${u1}/$ref`, { method: 'DELETE' })).status).toBe(204);
    expect((await allMembers(g)).ids).toEqual([nested]);
    const again = await cloud.graph(rw, `groups/${g}/members/${u1}/$ref`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect((await cloud.graph(rw, `users/${u1}/memberOf`)).body.value).toEqual([]);
  });

  it('adds members at create time and through PATCH with members@odata.bind', async () => {
    const r = await createGroup(rw, security('bound', { 'members@odata.bind': [`https://graph.microsoft.com/v1.0/users/${u1}`, `https://graph.microsoft.com/v1.0/directoryObjects/${u2}`] }));
    expect(r.status).toBe(201);
    expect((await allMembers(r.body.id as string)).ids.sort()).toEqual([u1, u2].sort());
    const u3 = await newUserId('m-three');
    const p = await cloud.graph(rw, `groups/${r.body.id}`, { method: 'PATCH', body: { 'members@odata.bind': [`https://graph.microsoft.com/v1.0/users/${u3}`] } });
    expect(p.status).toBe(204);
    expect((await allMembers(r.body.id as string)).ids).toHaveLength(3);
    // A bad bind leaves the group as it was (the create is not half-done).
    const bad = await createGroup(rw, security('halfdone', { 'members@odata.bind': [`https://graph.microsoft.com/v1.0/users/${u1}`, 'https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-0000000000bb'] }));
    expect(bad.status).toBe(404);
    expect((await cloud.graph(rw, "groups?$filter=mailNickname eq 'halfdone'")).body.value).toEqual([]);
  });

  it('locks the membership of a synced group for readwrite apps, not for sync', async () => {
    const s = await createGroup(sync, { ...security('synced-grp'), onPremisesSecurityIdentifier: 'S-1-5-21-9-9-9-1300' });
    expect(s.status).toBe(201);
    const r = await addMember(s.body.id as string, ref('users', u2));
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('synchronized from on-premises');
    expect((await addMember(s.body.id as string, ref('users', u2), sync)).status).toBe(204);
    const rename = await cloud.graph(rw, `groups/${s.body.id}`, { method: 'PATCH', body: { displayName: 'Renamed' } });
    expect(rename.status).toBe(400);
    expect(rename.body.error.message).toContain('displayName');
  });
});

describe('members paging', () => {
  it('pages 25 members 10 at a time with no duplicates or gaps', async () => {
    const g = await newGroupId('big');
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const id = await newUserId(`pg-${i}`);
      ids.push(id);
      expect((await addMember(g, ref('users', id))).status).toBe(204);
    }
    const sub = await newGroupId('big-sub');
    ids.push(sub);
    expect((await addMember(g, ref('groups', sub))).status).toBe(204);
    const paged = await allMembers(g, 10);
    expect(paged.pages).toBe(3);
    expect(new Set(paged.ids).size).toBe(paged.ids.length);
    expect(paged.ids.sort()).toEqual([...ids].sort());
    const one = await allMembers(g, 1);
    expect(one.pages).toBe(26);
    expect(one.ids.sort()).toEqual([...ids].sort());
    expect((await cloud.graph(rw, `groups/${g}/members?$top=0`)).status).toBe(400);
    expect((await cloud.graph(rw, `groups/${g}/members?$top=1000`)).status).toBe(400);
  });
});

describe('groups/delta with members', () => {
  it('reports members@delta additions and removals across rounds', async () => {
    const t = await cloud.createTenant('groups-delta');
    const tok = await t.token();
    const g = (body: unknown) => cloud.graph(tok, 'groups', { method: 'POST', body });
    const u = async (nick: string) => (await cloud.graph(tok, 'users', { method: 'POST', body: newUser(t.tenant, nick) })).body.id as string;
    const [x, y, z] = [await u('dx'), await u('dy'), await u('dz')];
    const team = (await g({ ...security('team'), 'members@odata.bind': [`https://graph.microsoft.com/v1.0/users/${x}`, `https://graph.microsoft.com/v1.0/users/${y}`] })).body.id as string;
    const quiet = (await g(security('quiet'))).body.id as string;
    const sub = (await g(security('sub'))).body.id as string;

    const round = async (link: string) => {
      let next: string | undefined = link;
      const items: any[] = [];
      let deltaLink: string | undefined;
      while (next) {
        const r = await cloud.graph(tok, path(next));
        expect(r.status).toBe(200);
        items.push(...(r.body.value as any[]));
        next = r.body['@odata.nextLink'] as string | undefined;
        deltaLink = r.body['@odata.deltaLink'] as string | undefined;
      }
      return { items, deltaLink: deltaLink! };
    };
    const norm = (ms: any[]) => ms.map((m) => `${m.id}${m['@removed'] ? ':removed' : ''}`).sort();

    // Round 1: every group with its current members.
    const r1 = await round('/v1.0/groups/delta?$select=displayName,members');
    const byId1 = new Map(r1.items.map((i) => [i.id, i]));
    expect([...byId1.keys()].sort()).toEqual([team, quiet, sub].sort());
    expect(byId1.get(team).displayName).toBe('Group team');
    expect(norm(byId1.get(team)['members@delta'])).toEqual([x, y].sort());
    expect(byId1.get(quiet)['members@delta']).toEqual([]);
    expect(byId1.get(team)).not.toHaveProperty('mailNickname');

    // Changes: add z and the nested group, remove y.
    expect((await cloud.graph(tok, `groups/${team}/members/$ref`, { method: 'POST', body: ref('users', z) })).status).toBe(204);
    expect((await cloud.graph(tok, `groups/${team}/members/$ref`, { method: 'POST', body: ref('groups', sub) })).status).toBe(204);
    expect((await cloud.graph(tok, `groups/${team}/members/${y}/$ref`, { method: 'DELETE' })).status).toBe(204);

    const r2 = await round(r1.deltaLink);
    expect(r2.items.map((i) => i.id)).toEqual([team]);
    const md = r2.items[0]['members@delta'] as any[];
    expect(norm(md)).toEqual([z, sub, `${y}:removed`].sort());
    expect(md.find((m) => m.id === sub)['@odata.type']).toBe('#microsoft.graph.group');
    expect(md.find((m) => m.id === y)['@removed']).toEqual({ reason: 'deleted' });

    // Round 3: nothing changed.
    const r3 = await round(r2.deltaLink);
    expect(r3.items).toEqual([]);

    // Round 4: z added then removed within the round counts as removed; x removed; a rename.
    expect((await cloud.graph(tok, `groups/${team}/members/${z}/$ref`, { method: 'DELETE' })).status).toBe(204);
    expect((await cloud.graph(tok, `groups/${team}/members/${x}/$ref`, { method: 'DELETE' })).status).toBe(204);
    expect((await cloud.graph(tok, `groups/${quiet}`, { method: 'PATCH', body: { displayName: 'Quiet renamed' } })).status).toBe(204);
    const r4 = await round(r3.deltaLink);
    const byId4 = new Map(r4.items.map((i) => [i.id, i]));
    expect([...byId4.keys()].sort()).toEqual([team, quiet].sort());
    expect(norm(byId4.get(team)['members@delta'])).toEqual([`${x}:removed`, `${z}:removed`].sort());
    expect(byId4.get(quiet)).toMatchObject({ displayName: 'Quiet renamed', 'members@delta': [] });

    // Round 5: the group is deleted.
    expect((await cloud.graph(tok, `groups/${sub}`, { method: 'DELETE' })).status).toBe(204);
    const r5 = await round(r4.deltaLink);
    expect(r5.items).toEqual([{ id: sub, '@removed': { reason: 'changed' } }]);

    // $select cannot change within a round.
    const bad = await cloud.graph(tok, `${path(r5.deltaLink)}&$select=displayName`);
    expect(bad.status).toBe(400);
  });

  it('pages a delta round with Prefer: odata.maxpagesize, each group once', async () => {
    const before = await deltaRound('/v1.0/groups/delta?$select=displayName,members', { prefer: 'odata.maxpagesize=3' });
    expect(before.pages).toBeGreaterThan(2);
    const ids = before.items.map((i) => i.id);
    expect(new Set(ids).size).toBe(ids.length);
    const list = await cloud.graph(rw, 'groups?$top=999&$select=id');
    expect(ids.sort()).toEqual((list.body.value as any[]).map((g) => g.id).sort());
  });
});
