// Users through the Graph API on a real server and store: validation on create, one
// case-insensitive address space per tenant, PATCH, soft delete / restore / purge, manager,
// the onPremises* properties owned by directory sync, and directory roles.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS, ManualClock } from '../../src/shared/clock.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { GLOBAL_ADMIN } from '../../src/cloud/services/directory.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

const clock = new ManualClock('2026-03-01T00:00:00.000Z');
let cloud: TestCloud;
let a: TestTenant;
let b: TestTenant;
let rw: string;
let read: string;
let sync: string;
let rwB: string;

beforeAll(async () => {
  cloud = await startCloud({ clock });
  a = await cloud.createTenant('users-a');
  b = await cloud.createTenant('users-b');
  await refreshTokens();
});

/** Tokens expire after an hour; tests that move the clock take new ones. */
async function refreshTokens() {
  rw = await a.token('readwrite');
  read = await a.token('read');
  sync = await a.token('sync');
  rwB = await b.token('readwrite');
}

afterAll(async () => {
  await cloud?.close();
});

const create = (token: string, body: unknown) => cloud.graph(token, 'users', { method: 'POST', body });
const upn = (nick: string, t: TestTenant = a) => `${nick}@${t.tenant.initial_domain}`;

function expectGraphError(r: { status: number; body: any }, status: number) {
  expect(r.status).toBe(status);
  expect(r.body.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
  expect(r.body.error.innerError['request-id']).toEqual(expect.any(String));
}

describe('creating a user', () => {
  it('returns 201 with the object, and it can be read back by id and by UPN', async () => {
    const r = await create(rw, newUser(a.tenant, 'alice', { givenName: 'Alice', jobTitle: 'Engineer' }));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ displayName: 'User alice', userPrincipalName: upn('alice'), givenName: 'Alice', jobTitle: 'Engineer', accountEnabled: true, mailNickname: 'alice' });
    expect(r.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.body).not.toHaveProperty('passwordProfile');
    const byId = await cloud.graph(rw, `users/${r.body.id}`);
    expect(byId.body.userPrincipalName).toBe(upn('alice'));
    const byUpn = await cloud.graph(rw, `users/${upn('alice').toUpperCase()}`);
    expect(byUpn.body.id).toBe(r.body.id);
  });

  it.each(['accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName', 'passwordProfile'])('names the missing required property %s', async (prop) => {
    const body: Record<string, unknown> = newUser(a.tenant, `req-${prop.toLowerCase()}`);
    delete body[prop];
    const r = await create(rw, body);
    expectGraphError(r, 400);
    expect(r.body.error.message).toContain(prop);
    expect(r.body.error.target).toBe(prop);
  });

  it('names every missing required property at once, and treats null as missing', async () => {
    const r = await create(rw, {});
    expectGraphError(r, 400);
    for (const p of ['accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName', 'passwordProfile']) expect(r.body.error.message).toContain(p);
    const n = await create(rw, newUser(a.tenant, 'nullnick', { mailNickname: null }));
    expectGraphError(n, 400);
    expect(n.body.error.message).toContain('mailNickname');
  });

  it('refuses an unknown property, naming it', async () => {
    const r = await create(rw, newUser(a.tenant, 'unk', { favouriteColour: 'blue' }));
    expectGraphError(r, 400);
    expect(r.body.error.message).toContain("'favouriteColour'");
    expect(r.body.error.target).toBe('favouriteColour');
    const pp = await create(rw, newUser(a.tenant, 'unk', { passwordProfile: { password: 'Str0ng!Passw0rd', hint: 'x' } }));
    expectGraphError(pp, 400);
    expect(pp.body.error.message).toContain('passwordProfile.hint');
  });

  it.each<[string, unknown, string]>([
    ['accountEnabled', 'yes', 'Edm.Boolean'],
    ['accountEnabled', 1, 'Edm.Boolean'],
    ['displayName', 42, 'Edm.String'],
    ['displayName', null, 'Edm.String'],
    ['givenName', { first: 'x' }, 'Edm.String'],
    ['businessPhones', '+1 555', 'Collection(Edm.String)'],
    ['businessPhones', [1, 2], 'Collection(Edm.String)'],
    ['userPrincipalName', ['a@b.c'], 'Edm.String'],
    ['userType', 'Robot', 'not one of'],
    ['passwordProfile', 'Str0ng!Passw0rd', 'passwordProfile'],
    ['passwordProfile', { password: 12345678 }, 'passwordProfile.password'],
    ['passwordProfile', { password: 'Str0ng!Passw0rd', forceChangePasswordNextSignIn: 'no' }, 'forceChangePasswordNextSignIn'],
  ])('refuses %s = %j (wrong type)', async (prop, value, why) => {
    const r = await create(rw, newUser(a.tenant, 'types', { [prop]: value }));
    expectGraphError(r, 400);
    expect(r.body.error.message).toContain(prop);
    expect(r.body.error.message).toContain(why);
  });

  it.each<[string, number]>([
    ['displayName', 257],
    ['givenName', 65],
    ['surname', 65],
    ['jobTitle', 129],
    ['department', 65],
    ['employeeId', 17],
    ['usageLocation', 3],
    ['streetAddress', 1025],
  ])('refuses an overlong %s (%d characters), saying the limit', async (prop, len) => {
    const r = await create(rw, newUser(a.tenant, 'long', { [prop]: 'x'.repeat(len) }));
    expectGraphError(r, 400);
    expect(r.body.error.message).toContain(prop);
    expect(r.body.error.message).toContain(`the limit is ${len - 1}`);
    const ok = await create(rw, newUser(a.tenant, `long-${prop.toLowerCase()}`, { [prop]: 'x'.repeat(len - 1) }));
    expect(ok.status).toBe(201);
  });

  it('refuses overlong mailNickname, UPN and local part', async () => {
    const nick = await create(rw, newUser(a.tenant, 'n'.repeat(65)));
    expectGraphError(nick, 400);
    expect(nick.body.error.message).toContain('mailNickname');
    const longUpn = await create(rw, newUser(a.tenant, 'ok', { userPrincipalName: `${'u'.repeat(60)}.${'v'.repeat(40)}@${a.tenant.initial_domain}` }));
    expectGraphError(longUpn, 400);
    expect(longUpn.body.error.target).toBe('userPrincipalName');
    const local = await create(rw, newUser(a.tenant, 'ok', { userPrincipalName: `${'l'.repeat(65)}@${a.tenant.initial_domain}` }));
    expectGraphError(local, 400);
    expect(local.body.error.message).toContain("the part before '@' is longer than 64");
  });

  it.each([' lead', 'a b', 'a%b', 'a&b', 'a*b', 'a+b', 'a/b', 'a=b', 'a?b', 'a{b', 'a}b', 'a|b', 'a<b', 'a>b', 'a(b', 'a)b', 'a;b', 'a:b', 'a,b', 'a[b', 'a]b', 'a"b', 'a\\b', 'jürgen', '.lead', 'trail.', 'a..b', 'a@b'])(
    'refuses the UPN local part %j',
    async (local) => {
      const r = await create(rw, newUser(a.tenant, 'chars', { userPrincipalName: `${local}@${a.tenant.initial_domain}` }));
      expectGraphError(r, 400);
      expect(r.body.error.target).toBe('userPrincipalName');
      expect(r.body.error.message).toContain('userPrincipalName');
    },
  );

  it.each(['no-at-sign', '@users-a.onnimbus.net', 'x@', 'x@nodot', 'x@bad_domain.example'])('refuses the malformed UPN %j', async (value) => {
    const r = await create(rw, newUser(a.tenant, 'malformed', { userPrincipalName: value }));
    expectGraphError(r, 400);
    expect(r.body.error.target).toBe('userPrincipalName');
  });

  it("accepts the characters Entra allows: ' . - _ ! # ^ ~", async () => {
    const r = await create(rw, newUser(a.tenant, 'oconnor', { userPrincipalName: `o'connor.j-r_x!#^~@${a.tenant.initial_domain}` }));
    expect(r.status).toBe(201);
  });

  it.each([
    ['Sh0rt!', '8 to 256'],
    ['alllowercaseletters', 'complexity'],
    ['NoDigitsOrSymbols', 'complexity'],
    ['12345678!', 'complexity'],
    ['x'.repeat(257), '8 to 256'],
  ])('refuses the weak password %j', async (password, why) => {
    const r = await create(rw, newUser(a.tenant, 'weak', { passwordProfile: { password } }));
    expectGraphError(r, 400);
    expect(r.body.error.target).toBe('passwordProfile.password');
    expect(r.body.error.message).toContain(why);
  });

  it('refuses writes by the read role', async () => {
    const r = await create(read, newUser(a.tenant, 'reader'));
    expectGraphError(r, 403);
    expect(r.body.error.code).toBe('Authorization_RequestDenied');
  });
});

describe('one case-insensitive address space per tenant', () => {
  it('refuses a second user with the same UPN in another case, naming the holder', async () => {
    const first = await create(rw, newUser(a.tenant, 'bob'));
    expect(first.status).toBe(201);
    const r = await create(rw, newUser(a.tenant, 'bob2', { userPrincipalName: upn('BOB') }));
    expectGraphError(r, 400);
    expect(r.body.error.target).toBe('userPrincipalName');
    expect(r.body.error.message).toContain(first.body.id);
    expect(r.body.error.message).toContain(upn('bob'));
    expect(r.body.error.details).toEqual([expect.objectContaining({ code: 'ObjectConflict' })]);
  });

  it("refuses a mail equal to another user's UPN, and a UPN equal to another user's mail", async () => {
    const m = await create(rw, newUser(a.tenant, 'carol', { mail: upn('Bob') }));
    expectGraphError(m, 400);
    expect(m.body.error.target).toBe('mail');
    const c = await create(rw, newUser(a.tenant, 'carol', { mail: 'Carol.Mail@Example.org' }));
    expect(c.status).toBe(201);
    const u = await create(rw, newUser(a.tenant, 'carol2', { mail: 'carol.mail@example.ORG' }));
    expectGraphError(u, 400);
    expect(u.body.error.message).toContain('carol.mail@example.org');
    // PATCH into a taken address is refused too, and leaves the user unchanged.
    const d = await create(rw, newUser(a.tenant, 'dave'));
    const p = await cloud.graph(rw, `users/${d.body.id}`, { method: 'PATCH', body: { userPrincipalName: upn('CAROL') } });
    expectGraphError(p, 400);
    expect((await cloud.graph(rw, `users/${d.body.id}`)).body.userPrincipalName).toBe(upn('dave'));
  });

  it("refuses a user mail equal to a group's mail, and a group mail equal to a user's", async () => {
    const g = await cloud.graph(rw, 'groups', { method: 'POST', body: { displayName: 'Sales', mailEnabled: true, mailNickname: 'sales', securityEnabled: false, groupTypes: ['Unified'] } });
    expect(g.status).toBe(201);
    expect(g.body.mail).toBe(upn('sales'));
    const u = await create(rw, newUser(a.tenant, 'eve', { mail: upn('SALES') }));
    expectGraphError(u, 400);
    expect(u.body.error.message).toContain("group 'Sales'");
    // A user's UPN can't take the group's address either.
    const u2 = await create(rw, newUser(a.tenant, 'sales'));
    expectGraphError(u2, 400);
    expect(u2.body.error.target).toBe('userPrincipalName');
    const g2 = await cloud.graph(rw, 'groups', { method: 'POST', body: { displayName: 'Bob team', mailEnabled: true, mailNickname: 'bob', securityEnabled: false, groupTypes: ['Unified'] } });
    expectGraphError(g2, 400);
    expect(g2.body.error.message).toContain(upn('bob'));
  });

  it('refuses SMTP proxy addresses (set by sync) that another object holds, in any case', async () => {
    const r = await create(sync, { accountEnabled: true, displayName: 'Proxy', mailNickname: 'proxy', userPrincipalName: upn('proxy'), proxyAddresses: [`SMTP:proxy@example.org`, `smtp:${upn('ALICE')}`] });
    expectGraphError(r, 400);
    expect(r.body.error.target).toBe('proxyAddresses');
    expect(r.body.error.message).toContain(upn('alice'));
    const ok = await create(sync, { accountEnabled: true, displayName: 'Proxy', mailNickname: 'proxy', userPrincipalName: upn('proxy'), proxyAddresses: ['SMTP:proxy@example.org', 'X500:/o=x/cn=alice'] });
    expect(ok.status).toBe(201);
    const clash = await create(rw, newUser(a.tenant, 'frank', { mail: 'PROXY@example.org' }));
    expectGraphError(clash, 400);
    expect(clash.body.error.message).toContain("user '" + upn('proxy') + "'");
  });

  it('keeps tenants apart: an address held in tenant A is free in tenant B', async () => {
    // Tenant A's user takes, as mail, the address tenant B's user gets as UPN.
    const inA = await create(rw, newUser(a.tenant, 'gina', { mail: upn('gina', b) }));
    expect(inA.status).toBe(201);
    const inB = await create(rwB, newUser(b.tenant, 'gina'));
    expect(inB.status).toBe(201);
    expect(inB.body.userPrincipalName).toBe(upn('gina', b));
    // The same mail address in both tenants.
    const m1 = await create(rw, newUser(a.tenant, 'hal', { mail: 'shared@example.net' }));
    const m2 = await create(rwB, newUser(b.tenant, 'hal', { mail: 'SHARED@example.net' }));
    expect([m1.status, m2.status]).toEqual([201, 201]);
    // And each tenant sees only its own users.
    const listB = await cloud.graph(rwB, 'users');
    expect(listB.body.value.map((u: any) => u.userPrincipalName).sort()).toEqual([upn('gina', b), upn('hal', b)]);
    expect((await cloud.graph(rwB, `users/${inA.body.id}`)).status).toBe(404);
  });

  it('frees an address when its holder changes it', async () => {
    const r = await create(rw, newUser(a.tenant, 'ivan', { mail: 'ivan.old@example.org' }));
    expect((await cloud.graph(rw, `users/${r.body.id}`, { method: 'PATCH', body: { mail: 'ivan.new@example.org' } })).status).toBe(204);
    const after = await cloud.graph(rw, `users/${r.body.id}?$select=mail,proxyAddresses`);
    expect(after.body.mail).toBe('ivan.new@example.org');
    expect(after.body.proxyAddresses).toEqual(['SMTP:ivan.new@example.org']);
    const taker = await create(rw, newUser(a.tenant, 'ivan2', { mail: 'Ivan.Old@example.org' }));
    expect(taker.status).toBe(201);
  });
});

describe('PATCH', () => {
  it('changes, clears and keeps properties', async () => {
    const u = await create(rw, newUser(a.tenant, 'judy', { jobTitle: 'Analyst', department: 'Finance' }));
    const p = await cloud.graph(rw, `users/${u.body.id}`, { method: 'PATCH', body: { displayName: 'Judy J', jobTitle: null, businessPhones: ['+1 555 0100'], officeLocation: 'B1', accountEnabled: false } });
    expect(p.status).toBe(204);
    const g = await cloud.graph(rw, `users/${u.body.id}?$select=displayName,jobTitle,department,businessPhones,officeLocation,accountEnabled,userPrincipalName`);
    expect(g.body).toMatchObject({ displayName: 'Judy J', jobTitle: null, department: 'Finance', businessPhones: ['+1 555 0100'], officeLocation: 'B1', accountEnabled: false, userPrincipalName: upn('judy') });
  });

  it('refuses read-only, unknown and invalid values, and changes nothing', async () => {
    const u = await create(rw, newUser(a.tenant, 'kim'));
    for (const [body, prop] of [
      [{ id: '00000000-0000-0000-0000-000000000000' }, 'id'],
      [{ createdDateTime: '2020-01-01T00:00:00Z' }, 'createdDateTime'],
      [{ shoeSize: 44 }, 'shoeSize'],
      [{ displayName: '   ' }, 'displayName'],
      [{ mailNickname: null }, 'mailNickname'],
      [{ mail: 'not-an-address' }, 'mail'],
      [{ displayName: 'ok', surname: 'x'.repeat(65) }, 'surname'],
    ] as const) {
      const r = await cloud.graph(rw, `users/${u.body.id}`, { method: 'PATCH', body });
      expectGraphError(r, 400);
      expect(r.body.error.message, JSON.stringify(body)).toContain(prop);
    }
    const g = await cloud.graph(rw, `users/${u.body.id}?$select=displayName,surname,mailNickname`);
    expect(g.body).toMatchObject({ displayName: 'User kim', surname: null, mailNickname: 'kim' });
  });

  it('answers 404 for an unknown user', async () => {
    const r = await cloud.graph(rw, 'users/00000000-0000-0000-0000-000000000001', { method: 'PATCH', body: { displayName: 'x' } });
    expectGraphError(r, 404);
  });

  it('changes the password (complexity checked) and the read role cannot PATCH', async () => {
    const u = await create(rw, newUser(a.tenant, 'leo'));
    expect((await cloud.graph(rw, `users/${u.body.id}`, { method: 'PATCH', body: { passwordProfile: { password: 'An0ther!Passw0rd' } } })).status).toBe(204);
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}`, { method: 'PATCH', body: { passwordProfile: { password: 'weak' } } }), 400);
    expectGraphError(await cloud.graph(read, `users/${u.body.id}`, { method: 'PATCH', body: { displayName: 'x' } }), 403);
  });
});

describe('soft delete, restore and purge', () => {
  it('moves a deleted user to the recycle bin and restores the same object', async () => {
    const u = await create(rw, newUser(a.tenant, 'mona', { jobTitle: 'Chemist', mail: 'mona@example.org' }));
    expect((await cloud.graph(rw, `users/${u.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}`), 404);
    expect((await cloud.graph(rw, `users?$filter=userPrincipalName eq '${upn('mona')}'`)).body.value).toEqual([]);
    const bin = await cloud.graph(rw, 'directory/deletedItems/microsoft.graph.user');
    expect(bin.status).toBe(200);
    const item = bin.body.value.find((x: any) => x.id === u.body.id);
    expect(item).toMatchObject({ '@odata.type': '#microsoft.graph.user', userPrincipalName: upn('mona') });
    const one = await cloud.graph(rw, `directory/deletedItems/${u.body.id}?$select=deletedDateTime,userPrincipalName`);
    expect(one.body.deletedDateTime).toBe(clock.now().toISOString());
    // Deleting again is a 404: it is no longer a live user.
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}`, { method: 'DELETE' }), 404);

    const r = await cloud.graph(rw, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: u.body.id, userPrincipalName: upn('mona') });
    const back = await cloud.graph(rw, `users/${u.body.id}?$select=jobTitle,mail,deletedDateTime`);
    expect(back.body).toMatchObject({ jobTitle: 'Chemist', mail: 'mona@example.org', deletedDateTime: null });
    expect((await cloud.graph(rw, 'directory/deletedItems/microsoft.graph.user')).body.value.map((x: any) => x.id)).not.toContain(u.body.id);
    // Its addresses are held again.
    expectGraphError(await create(rw, newUser(a.tenant, 'mona2', { mail: 'MONA@example.org' })), 400);
  });

  it('refuses a restore whose UPN a new user took meanwhile, naming it; allowed once freed', async () => {
    const old = await create(rw, newUser(a.tenant, 'nora'));
    expect((await cloud.graph(rw, `users/${old.body.id}`, { method: 'DELETE' })).status).toBe(204);
    const fresh = await create(rw, newUser(a.tenant, 'nora-new', { userPrincipalName: upn('Nora') }));
    expect(fresh.status).toBe(201);
    const r = await cloud.graph(rw, `directory/deletedItems/${old.body.id}/restore`, { method: 'POST' });
    expectGraphError(r, 400);
    expect(r.body.error.message).toContain(upn('nora'));
    expect(r.body.error.message).toContain(fresh.body.id);
    expect(r.body.error.target).toBe('userPrincipalName');
    // Still in the bin.
    expect((await cloud.graph(rw, `directory/deletedItems/${old.body.id}`)).status).toBe(200);
    expect((await cloud.graph(rw, `users/${fresh.body.id}`, { method: 'PATCH', body: { userPrincipalName: upn('nora-new') } })).status).toBe(204);
    const ok = await cloud.graph(rw, `directory/deletedItems/${old.body.id}/restore`, { method: 'POST' });
    expect(ok.status).toBe(200);
    expect((await cloud.graph(rw, `users/${upn('nora')}`)).body.id).toBe(old.body.id);
  });

  it('refuses restore and purge by the read role, and 404s an unknown item', async () => {
    const u = await create(rw, newUser(a.tenant, 'olga'));
    await cloud.graph(rw, `users/${u.body.id}`, { method: 'DELETE' });
    expectGraphError(await cloud.graph(read, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' }), 403);
    expectGraphError(await cloud.graph(read, `directory/deletedItems/${u.body.id}`, { method: 'DELETE' }), 403);
    expectGraphError(await cloud.graph(rw, 'directory/deletedItems/00000000-0000-0000-0000-00000000abcd/restore', { method: 'POST' }), 404);
    // Tenant B cannot see or restore tenant A's deleted user.
    expectGraphError(await cloud.graph(rwB, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' }), 404);
    expect((await cloud.graph(rwB, 'directory/deletedItems/microsoft.graph.user')).body.value.map((x: any) => x.id)).not.toContain(u.body.id);
  });
});

describe('manager and directReports', () => {
  it('sets, reads, lists and removes a manager', async () => {
    const boss = await create(rw, newUser(a.tenant, 'quinn'));
    const w1 = await create(rw, newUser(a.tenant, 'rita'));
    const w2 = await create(rw, newUser(a.tenant, 'sam'));
    expectGraphError(await cloud.graph(rw, `users/${w1.body.id}/manager`), 404);
    for (const w of [w1, w2]) {
      const r = await cloud.graph(rw, `users/${w.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${boss.body.id}` } });
      expect(r.status).toBe(204);
    }
    const m = await cloud.graph(rw, `users/${w1.body.id}/manager`);
    expect(m.status).toBe(200);
    expect(m.body).toMatchObject({ '@odata.type': '#microsoft.graph.user', id: boss.body.id, userPrincipalName: upn('quinn') });
    const reports = await cloud.graph(rw, `users/${boss.body.id}/directReports`);
    expect(reports.body.value.map((x: any) => x.id).sort()).toEqual([w1.body.id, w2.body.id].sort());
    // directReports pages.
    const p1 = await cloud.graph(rw, `users/${boss.body.id}/directReports?$top=1`);
    expect(p1.body.value).toHaveLength(1);
    expect(p1.body['@odata.nextLink']).toContain('$skiptoken=');

    expect((await cloud.graph(rw, `users/${w1.body.id}/manager/$ref`, { method: 'DELETE' })).status).toBe(204);
    expectGraphError(await cloud.graph(rw, `users/${w1.body.id}/manager`), 404);
    expectGraphError(await cloud.graph(rw, `users/${w1.body.id}/manager/$ref`, { method: 'DELETE' }), 404);
    expect((await cloud.graph(rw, `users/${boss.body.id}/directReports`)).body.value.map((x: any) => x.id)).toEqual([w2.body.id]);
  });

  it('refuses a self-manager, an unknown manager, a group as manager, and a malformed reference', async () => {
    const u = await create(rw, newUser(a.tenant, 'tess'));
    const self = await cloud.graph(rw, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${u.body.id}` } });
    expectGraphError(self, 400);
    const unknown = await cloud.graph(rw, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': 'https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-000000000009' } });
    expectGraphError(unknown, 404);
    const g = await cloud.graph(rw, 'groups', { method: 'POST', body: { displayName: 'G', mailEnabled: false, mailNickname: 'g-mgr', securityEnabled: true } });
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/groups/${g.body.id}` } }), 404);
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { nope: 1 } }), 400);
    expectGraphError(await cloud.graph(read, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${u.body.id}` } }), 403);
  });

  it('a manager from another tenant cannot be set', async () => {
    const u = await create(rw, newUser(a.tenant, 'uma'));
    const other = await create(rwB, newUser(b.tenant, 'victor'));
    expectGraphError(await cloud.graph(rw, `users/${u.body.id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${other.body.id}` } }), 404);
  });
});

describe('onPremises* properties and synced users', () => {
  const synced = (nick: string) => ({
    accountEnabled: true,
    displayName: `Synced ${nick}`,
    mailNickname: nick,
    userPrincipalName: upn(nick),
    givenName: 'Synced',
    jobTitle: 'Operator',
    onPremisesImmutableId: Buffer.from(`anchor-${nick}`).toString('base64'),
    onPremisesSamAccountName: nick,
    onPremisesDistinguishedName: `CN=${nick},OU=Staff,DC=corp,DC=example,DC=com`,
    onPremisesUserPrincipalName: `${nick}@corp.example.com`,
    onPremisesDomainName: 'corp.example.com',
    onPremisesSecurityIdentifier: 'S-1-5-21-1-2-3-1001',
  });

  it.each(['onPremisesImmutableId', 'onPremisesSamAccountName', 'onPremisesDistinguishedName', 'onPremisesUserPrincipalName', 'onPremisesSyncEnabled', 'onPremisesSecurityIdentifier', 'proxyAddresses'])(
    '%s is read-only to a readwrite app (create and PATCH)',
    async (prop) => {
      const value = prop === 'onPremisesSyncEnabled' ? true : prop === 'proxyAddresses' ? ['SMTP:x@example.org'] : 'value';
      const c = await create(rw, newUser(a.tenant, 'onprem', { [prop]: value }));
      expectGraphError(c, 400);
      expect(c.body.error.message).toContain(prop);
      expect(c.body.error.target).toBe(prop);
      const u = await cloud.graph(rw, `users/${upn('alice')}`);
      const p = await cloud.graph(rw, `users/${u.body.id}`, { method: 'PATCH', body: { [prop]: value } });
      expectGraphError(p, 400);
      expect(p.body.error.message).toContain(prop);
    },
  );

  it('onPremisesLastSyncDateTime and onPremisesProvisioningErrors are read-only even to sync', async () => {
    for (const [prop, value] of [['onPremisesLastSyncDateTime', '2026-01-01T00:00:00Z'], ['onPremisesProvisioningErrors', []]] as const) {
      const r = await create(sync, { ...synced('ro'), [prop]: value });
      expectGraphError(r, 400);
      expect(r.body.error.message).toContain(prop);
    }
  });

  it('the sync role writes them; the user is synced and its on-prem attributes are locked for readwrite apps', async () => {
    const c = await create(sync, synced('walt'));
    expect(c.status).toBe(201);
    const id = c.body.id as string;
    const g = await cloud.graph(rw, `users/${id}?$select=onPremisesSyncEnabled,onPremisesImmutableId,onPremisesSamAccountName,onPremisesDistinguishedName,onPremisesUserPrincipalName,onPremisesDomainName,onPremisesSecurityIdentifier`);
    expect(g.body).toMatchObject({
      onPremisesSyncEnabled: true,
      onPremisesImmutableId: Buffer.from('anchor-walt').toString('base64'),
      onPremisesSamAccountName: 'walt',
      onPremisesDistinguishedName: 'CN=walt,OU=Staff,DC=corp,DC=example,DC=com',
      onPremisesUserPrincipalName: 'walt@corp.example.com',
      onPremisesDomainName: 'corp.example.com',
      onPremisesSecurityIdentifier: 'S-1-5-21-1-2-3-1001',
    });

    for (const body of [{ displayName: 'Changed' }, { jobTitle: null }, { givenName: 'X' }, { accountEnabled: false }, { userPrincipalName: upn('walt2') }, { mail: 'walt@example.org' }, { usageLocation: 'US', department: 'Ops' }]) {
      const r = await cloud.graph(rw, `users/${id}`, { method: 'PATCH', body });
      expectGraphError(r, 400);
      const locked = Object.keys(body).find((k) => k !== 'usageLocation')!;
      expect(r.body.error.message, JSON.stringify(body)).toContain(locked);
      expect(r.body.error.message).toContain('synchronized from on-premises');
    }
    expectGraphError(await cloud.graph(rw, `users/${id}`, { method: 'PATCH', body: { passwordProfile: { password: 'An0ther!Passw0rd' } } }), 400);
    const boss = await create(rw, newUser(a.tenant, 'xena'));
    expectGraphError(await cloud.graph(rw, `users/${id}/manager/$ref`, { method: 'PUT', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${boss.body.id}` } }), 400);
    const del = await cloud.graph(rw, `users/${id}`, { method: 'DELETE' });
    expectGraphError(del, 400);
    expect(del.body.error.message).toContain('synchronized from on-premises');

    // Nothing changed.
    const after = await cloud.graph(rw, `users/${id}?$select=displayName,jobTitle,givenName,accountEnabled,department`);
    expect(after.body).toMatchObject({ displayName: 'Synced walt', jobTitle: 'Operator', givenName: 'Synced', accountEnabled: true, department: null });

    // A cloud-only property stays writable.
    expect((await cloud.graph(rw, `users/${id}`, { method: 'PATCH', body: { usageLocation: 'US' } })).status).toBe(204);
    // The sync role may change everything.
    expect((await cloud.graph(sync, `users/${id}`, { method: 'PATCH', body: { displayName: 'Walt W', jobTitle: null, onPremisesSamAccountName: 'waltw' } })).status).toBe(204);
    const s = await cloud.graph(rw, `users/${id}?$select=displayName,jobTitle,onPremisesSamAccountName,usageLocation`);
    expect(s.body).toMatchObject({ displayName: 'Walt W', jobTitle: null, onPremisesSamAccountName: 'waltw', usageLocation: 'US' });
    expect((await cloud.graph(sync, `users/${id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('sync may create a user without a password; a readwrite app may not', async () => {
    const body = { ...synced('yuri') } as Record<string, unknown>;
    expect((await create(sync, body)).status).toBe(201);
    const cloudOnly = newUser(a.tenant, 'zoe') as Record<string, unknown>;
    delete cloudOnly.passwordProfile;
    expectGraphError(await create(rw, cloudOnly), 400);
  });
});

describe('directory roles', () => {
  it('an administrator created like `nimbus admin create` holds Global Administrator, visible through Graph', async () => {
    const actor = cliActor(a.tenant.id);
    const admin = await cloud.svc.users.create(actor, newUser(a.tenant, 'admin', { displayName: 'Admin' }));
    await cloud.svc.directory.assignRole(actor, GLOBAL_ADMIN, admin.id as string);

    const roles = await cloud.graph(read, 'directoryRoles');
    expect(roles.status).toBe(200);
    expect(roles.body.value).toContainEqual(expect.objectContaining({ id: GLOBAL_ADMIN, displayName: 'Global Administrator', roleTemplateId: GLOBAL_ADMIN }));
    const members = await cloud.graph(read, `directoryRoles/${GLOBAL_ADMIN}/members`);
    expect(members.status).toBe(200);
    expect(members.body.value.map((m: any) => m.id)).toEqual([admin.id]);
    expect(members.body.value[0]).toMatchObject({ '@odata.type': '#microsoft.graph.user', userPrincipalName: upn('admin') });

    const memberOf = await cloud.graph(read, `users/${admin.id as string}/memberOf`);
    expect(memberOf.body.value).toContainEqual(expect.objectContaining({ '@odata.type': '#microsoft.graph.directoryRole', id: GLOBAL_ADMIN, displayName: 'Global Administrator' }));
    // Another user holds no role.
    const plain = await cloud.graph(read, `users/${upn('alice')}/memberOf`);
    expect(plain.body.value.filter((x: any) => x['@odata.type'] === '#microsoft.graph.directoryRole')).toEqual([]);
    // Tenant B's Global Administrator role has no members.
    expect((await cloud.graph(rwB, `directoryRoles/${GLOBAL_ADMIN}/members`)).body.value).toEqual([]);
    // Assigning twice is refused; an unknown role is a 404.
    await expect(cloud.svc.directory.assignRole(actor, GLOBAL_ADMIN, admin.id as string)).rejects.toThrow(/already/);
    expectGraphError(await cloud.graph(read, 'directoryRoles/00000000-0000-0000-0000-000000000000/members'), 404);
  });

  it('a deleted administrator is no longer listed as a role member, and comes back on restore', async () => {
    const members = async () => ((await cloud.graph(rw, `directoryRoles/${GLOBAL_ADMIN}/members`)).body.value as any[]).map((m) => m.userPrincipalName);
    const admin = await cloud.graph(rw, `users/${upn('admin')}`);
    expect(await members()).toEqual([upn('admin')]);
    expect((await cloud.graph(rw, `users/${admin.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await members()).toEqual([]);
    expect((await cloud.graph(rw, `directory/deletedItems/${admin.body.id}/restore`, { method: 'POST' })).status).toBe(200);
    expect(await members()).toEqual([upn('admin')]);
  });
});

// Last: it moves the clock forward a month.
describe('the recycle bin period', () => {
  it('purges after 30 days: gone from the bin, and delta reports it as deleted', async () => {
    const keep = await create(rw, newUser(a.tenant, 'pat-keep'));
    const u = await create(rw, newUser(a.tenant, 'pat'));
    expect((await cloud.graph(rw, `users/${u.body.id}`, { method: 'DELETE' })).status).toBe(204);
    const deletedAt = clock.now().getTime();

    clock.set(new Date(deletedAt + 29 * DAY_MS));
    await refreshTokens();
    expect(await cloud.svc.directory.purgeExpired()).toBe(0);
    expect((await cloud.graph(rw, `directory/deletedItems/${u.body.id}`)).status).toBe(200);
    // A delta round now, to a deltaLink.
    let link: string | undefined = '/v1.0/users/delta';
    let deltaLink: string | undefined;
    while (link) {
      const page = await cloud.graph(rw, link.replace(/^https?:\/\/[^/]+/, ''));
      expect(page.status).toBe(200);
      link = page.body['@odata.nextLink'] as string | undefined;
      deltaLink = page.body['@odata.deltaLink'] as string | undefined;
    }
    expect(deltaLink).toBeDefined();

    clock.set(new Date(deletedAt + 30 * DAY_MS + 60_000));
    await refreshTokens();
    expect(await cloud.svc.directory.purgeExpired()).toBeGreaterThanOrEqual(1);
    expectGraphError(await cloud.graph(rw, `directory/deletedItems/${u.body.id}`), 404);
    expectGraphError(await cloud.graph(rw, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' }), 404);
    expect((await cloud.graph(rw, 'directory/deletedItems/microsoft.graph.user')).body.value.map((x: any) => x.id)).not.toContain(u.body.id);
    expect((await cloud.graph(rw, `users/${keep.body.id}`)).status).toBe(200);

    const d = await cloud.graph(rw, deltaLink!.replace(/^https?:\/\/[^/]+/, ''));
    expect(d.status).toBe(200);
    expect(d.body.value).toContainEqual({ id: u.body.id, '@removed': { reason: 'deleted' } });
    expect(d.body.value.map((x: any) => x.id)).not.toContain(keep.body.id);
    // Its UPN is free again.
    expect((await create(rw, newUser(a.tenant, 'pat'))).status).toBe(201);
  });
});
