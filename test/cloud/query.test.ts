// Graph query options over a seeded tenant of 300 users: $filter returns exactly the
// users a reference predicate picks (case-insensitively), $orderby pages without gaps or
// duplicates, $top bounds, $count, unsupported options and broken tokens get 4xx errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS, ManualClock } from '../../src/shared/clock.ts';
import type { Actor } from '../../src/cloud/services/context.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

const START = Date.parse('2026-02-01T00:00:00.000Z');
const clock = new ManualClock(new Date(START));
let cloud: TestCloud;
let t: TestTenant;
let tok: string;

interface Seeded {
  id: string;
  upn: string;
  displayName: string;
  givenName: string;
  surname: string;
  department: string | null;
  jobTitle: string | null;
  accountEnabled: boolean;
  mail: string | null;
  proxyAddresses: string[];
  employeeId: string;
  userType: 'Member' | 'Guest';
  createdDateTime: string;
  synced: boolean;
}
const users: Seeded[] = [];

const FIRST = ['Alice', 'bob', 'Carol', 'dave', 'Eve', 'Frank', 'grace', 'Heidi', 'Ivan', 'judy'];
const LAST = ['Smith', 'jones', 'Brown', 'Taylor', "O'Neil", 'Müller', 'wilson'];
const DEPTS = ['Sales', 'Engineering', 'HR', 'Finance'];
const N = 300;

beforeAll(async () => {
  cloud = await startCloud({ clock });
  t = await cloud.createTenant('query');
  tok = await t.token('read');
  // Seed through the service as directory sync would (no password hashing per user).
  const seeder: Actor = { tenantId: t.tenant.id, kind: 'app', id: 'seeder', name: 'seeder', role: 'sync' };
  const dom = t.tenant.initial_domain;
  for (let i = 0; i < N; i++) {
    const nick = `u${String(i).padStart(3, '0')}`;
    const first = FIRST[i % FIRST.length]!;
    const last = LAST[i % LAST.length]!;
    const mail = i % 2 === 0 ? `${i % 4 === 0 ? nick.toUpperCase() : nick}@Mail.Example` : null;
    const s: Omit<Seeded, 'id' | 'createdDateTime'> = {
      upn: `${i % 7 === 0 ? nick.toUpperCase() : nick}@${dom}`,
      displayName: `${first} ${last} ${i}`,
      givenName: first,
      surname: last,
      department: i % 9 === 0 ? null : DEPTS[i % DEPTS.length]!,
      jobTitle: i % 3 === 0 ? 'Engineer' : i % 3 === 1 ? 'Manager' : null,
      accountEnabled: i % 4 !== 0,
      mail,
      proxyAddresses: mail ? [`SMTP:${mail}`, `smtp:${nick}.alias@alias.example`, ...(i % 10 === 0 ? [`X500:/o=corp/cn=${nick}`] : [])] : [],
      employeeId: String(1000 + i),
      userType: i % 25 === 0 ? 'Guest' : 'Member',
      synced: i % 6 === 0,
    };
    const body: Record<string, unknown> = {
      accountEnabled: s.accountEnabled,
      displayName: s.displayName,
      mailNickname: nick,
      userPrincipalName: s.upn,
      givenName: s.givenName,
      surname: s.surname,
      department: s.department,
      jobTitle: s.jobTitle,
      employeeId: s.employeeId,
      userType: s.userType,
      ...(s.mail ? { mail: s.mail, proxyAddresses: s.proxyAddresses } : {}),
      ...(s.synced ? { onPremisesImmutableId: Buffer.from(nick).toString('base64') } : {}),
    };
    const created = await cloud.svc.users.create(seeder, body);
    users.push({ ...s, id: created.id as string, createdDateTime: created.createdDateTime as string });
    clock.advance(60_000);
  }
  tok = await t.token('read');
});

afterAll(async () => {
  await cloud?.close();
});

const get = (url: string, headers: Record<string, string> = {}) => cloud.graph(tok, url.replace(/^https?:\/\/[^/]+/, ''), { headers });
const enc = (s: string) => encodeURIComponent(s);

/** Every item of a list, following @odata.nextLink; checks each page's size. */
async function collect(url: string, pageSize?: number): Promise<{ items: any[]; pages: number }> {
  let link: string | undefined = url;
  const items: any[] = [];
  let pages = 0;
  while (link) {
    const r = await get(link);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    pages++;
    const next = r.body['@odata.nextLink'] as string | undefined;
    if (pageSize !== undefined && next) expect(r.body.value).toHaveLength(pageSize);
    items.push(...(r.body.value as any[]));
    link = next;
    expect(pages).toBeLessThan(400);
  }
  return { items, pages };
}

async function filterIds(filter: string): Promise<string[]> {
  const { items } = await collect(`/v1.0/users?$select=id&$top=999&$filter=${enc(filter)}`);
  return items.map((i) => i.id as string).sort();
}
const expected = (pred: (u: Seeded) => boolean) => users.filter(pred).map((u) => u.id).sort();
const lc = (s: string | null) => (s === null ? null : s.toLowerCase());

describe('$filter', () => {
  const cases: [string, (u: Seeded) => boolean][] = [
    ["displayName eq 'ALICE SMITH 0'", (u) => lc(u.displayName) === 'alice smith 0'],
    ["displayName eq 'bob jones 1'", (u) => u.displayName === 'bob Jones 1' || lc(u.displayName) === 'bob jones 1'],
    ["department eq 'sales'", (u) => u.department === 'Sales'],
    ["department ne 'Sales'", (u) => u.department !== 'Sales'],
    ["startswith(displayName,'ali')", (u) => lc(u.displayName)!.startsWith('ali')],
    ["startswith(givenName,'G')", (u) => lc(u.givenName)!.startsWith('g')],
    ["startswith(surname,'o''n')", (u) => lc(u.surname)!.startsWith("o'n")],
    ["startswith(userPrincipalName,'u01')", (u) => lc(u.upn)!.startsWith('u01')],
    ["endswith(displayName,' 7')", (u) => u.displayName.endsWith(' 7')],
    ["endswith(mail,'@mail.example')", (u) => u.mail !== null],
    ["endswith(userPrincipalName,'7@query.onnimbus.net')", (u) => lc(u.upn)!.endsWith('7@query.onnimbus.net')],
    [`userPrincipalName in ('u001@query.onnimbus.net', 'U007@QUERY.onnimbus.net', 'nobody@query.onnimbus.net')`, (u) => ['u001', 'u007'].includes(lc(u.upn)!.split('@')[0]!)],
    ["mail eq 'U004@mail.example'", (u) => lc(u.mail) === 'u004@mail.example'],
    ["employeeId eq '1042'", (u) => u.employeeId === '1042'],
    ["accountEnabled eq false", (u) => !u.accountEnabled],
    ["accountEnabled eq true and department eq 'HR'", (u) => u.accountEnabled && u.department === 'HR'],
    ["jobTitle eq 'Engineer' or jobTitle eq 'manager'", (u) => u.jobTitle !== null],
    ["not(accountEnabled eq true)", (u) => !u.accountEnabled],
    ["not startswith(displayName,'a')", (u) => !lc(u.displayName)!.startsWith('a')],
    ["jobTitle eq null", (u) => u.jobTitle === null],
    ["jobTitle ne null", (u) => u.jobTitle !== null],
    ["department eq null or userType eq 'Guest'", (u) => u.department === null || u.userType === 'Guest'],
    ["(givenName eq 'alice' or givenName eq 'BOB') and not(accountEnabled eq false)", (u) => ['alice', 'bob'].includes(lc(u.givenName)!) && u.accountEnabled],
    ["userType eq 'Guest'", (u) => u.userType === 'Guest'],
    ["onPremisesSyncEnabled eq true", (u) => u.synced],
    ["onPremisesSyncEnabled eq null", (u) => !u.synced],
    [`createdDateTime ge ${new Date(START + 100 * 60_000).toISOString()} and createdDateTime lt ${new Date(START + 110 * 60_000).toISOString()}`, (u) => Date.parse(u.createdDateTime) >= START + 100 * 60_000 && Date.parse(u.createdDateTime) < START + 110 * 60_000],
    [`createdDateTime gt ${new Date(START + 290 * 60_000).toISOString()}`, (u) => Date.parse(u.createdDateTime) > START + 290 * 60_000],
    [`createdDateTime le ${new Date(START + 5 * 60_000).toISOString()}`, (u) => Date.parse(u.createdDateTime) <= START + 5 * 60_000],
    ["proxyAddresses/any(p:p eq 'smtp:u002.alias@ALIAS.example')", (u) => u.proxyAddresses.some((p) => lc(p) === 'smtp:u002.alias@alias.example')],
    ["proxyAddresses/any(x:startswith(x,'x500:'))", (u) => u.proxyAddresses.some((p) => p.startsWith('X500:'))],
    ["proxyAddresses/any(x:x in ('SMTP:u008@mail.example', 'smtp:u010.alias@alias.example'))", (u) => u.proxyAddresses.some((p) => ['smtp:u008@mail.example', 'smtp:u010.alias@alias.example'].includes(lc(p)!))],
    ["proxyAddresses/any(x:startswith(x,'smtp:u01')) and accountEnabled eq true", (u) => u.proxyAddresses.some((p) => lc(p)!.startsWith('smtp:u01')) && u.accountEnabled],
    ["displayName eq 'no such user'", () => false],
  ];

  it.each(cases)('%s', async (filter, pred) => {
    const want = expected(pred);
    const got = await filterIds(filter);
    expect(got).toEqual(want);
  });

  it('the reference predicates are not trivial', () => {
    // Guards the table above: most filters pick a proper, non-empty subset.
    const sizes = cases.map(([, p]) => users.filter(p).length);
    expect(sizes.filter((n) => n > 0 && n < N).length).toBeGreaterThan(cases.length - 3);
  });

  it('filters with $count and pages the filtered set', async () => {
    const want = expected((u) => u.department === 'Engineering');
    const r = await get(`/v1.0/users?$filter=${enc("department eq 'Engineering'")}&$count=true&$top=10&$select=id,department`, { consistencylevel: 'eventual' });
    expect(r.status).toBe(200);
    expect(r.body['@odata.count']).toBe(want.length);
    expect(r.body.value).toHaveLength(10);
    const all = await collect(`/v1.0/users?$filter=${enc("department eq 'Engineering'")}&$top=10&$select=id,department`, 10);
    expect(all.items.map((i) => i.id).sort()).toEqual(want);
    expect(all.items.every((i) => i.department === 'Engineering')).toBe(true);
  });
});

describe('$filter errors', () => {
  it.each([
    ["officeLocation eq 'B1'", 'not supported'],
    ["businessPhones/any(x:x eq '1')", 'not supported'],
    ["city eq 'Paris'", 'not supported'],
  ])('refuses a non-filterable property: %s', async (filter, why) => {
    const r = await get(`/v1.0/users?$filter=${enc(filter)}`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('Request_UnsupportedQuery');
    expect(r.body.error.message).toContain(why);
  });

  it.each([
    "shoeSize eq 44",
    "displayName eq",
    "displayName eq 'unterminated",
    "accountEnabled eq 'yes'",
    "displayName eq true",
    "createdDateTime ge 'not a date'",
    "proxyAddresses eq 'SMTP:a@b.c'",
    "accountEnabled gt true",
    "displayName eq 'a' and",
    "((displayName eq 'a')",
    "jobTitle lt null",
    "startswith(accountEnabled,'t')",
    "contains(displayName,'a')",
    "displayName EQ 'a'",
    "displayName has 'a'",
  ])('refuses %j with a 400 that is not a 500', async (filter) => {
    const r = await get(`/v1.0/users?$filter=${enc(filter)}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toEqual(expect.any(String));
    expect(r.body.error.message).not.toMatch(/\n\s+at /);
  });
});

describe('$orderby and paging', () => {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const orders: [string, (u: Seeded) => string, boolean][] = [
    ['displayName', (u) => u.displayName, false],
    ['displayName asc', (u) => u.displayName, false],
    ['displayName desc', (u) => u.displayName, true],
    ['userPrincipalName', (u) => u.upn, false],
    ['userPrincipalName desc', (u) => u.upn, true],
  ];

  it.each(orders)('$orderby=%s pages 37 at a time in order, with no duplicates or gaps', async (orderby, key, desc) => {
    const { items, pages } = await collect(`/v1.0/users?$orderby=${enc(orderby)}&$top=37&$select=id,displayName,userPrincipalName`, 37);
    expect(pages).toBe(Math.ceil(N / 37));
    const ids = items.map((i) => i.id as string);
    expect(new Set(ids).size).toBe(N);
    expect([...ids].sort()).toEqual(users.map((u) => u.id).sort());
    // Case-insensitive order (as Graph sorts names), ties broken by id in the same direction.
    const want = [...users]
      .sort((a, b) => cmp(key(a).toLowerCase(), key(b).toLowerCase()) || cmp(a.id, b.id))
      .map((u) => u.id);
    if (desc) want.reverse();
    expect(ids).toEqual(want);
  });

  it('combines $orderby with $filter', async () => {
    const { items } = await collect(`/v1.0/users?$orderby=displayName desc&$filter=${enc("department eq 'HR'")}&$top=5&$select=id,displayName`, 5);
    const want = users.filter((u) => u.department === 'HR').sort((a, b) => cmp(b.displayName.toLowerCase(), a.displayName.toLowerCase()) || cmp(b.id, a.id));
    expect(items.map((i) => i.id)).toEqual(want.map((u) => u.id));
  });

  it('pages the default order (100 per page) over everyone', async () => {
    const { items, pages } = await collect('/v1.0/users?$select=id', 100);
    expect(pages).toBe(3);
    expect(items.map((i) => i.id).sort()).toEqual(users.map((u) => u.id).sort());
  });

  it('nextLink keeps the other options', async () => {
    const r = await get(`/v1.0/users?$top=2&$select=id,displayName&$filter=${enc("department eq 'HR'")}`);
    const next = new URL(r.body['@odata.nextLink'] as string);
    expect(next.searchParams.get('$top')).toBe('2');
    expect(next.searchParams.get('$select')).toBe('id,displayName');
    expect(next.searchParams.get('$filter')).toBe("department eq 'HR'");
    expect(next.searchParams.get('$skiptoken')).toBeTruthy();
  });

  it.each(['accountEnabled', 'createdDateTime', 'jobTitle', 'displayName,userPrincipalName', 'displayName sideways', 'nonsense'])('refuses $orderby=%s', async (orderby) => {
    const r = await get(`/v1.0/users?$orderby=${enc(orderby)}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('$orderby');
  });
});

describe('$top', () => {
  it.each(['0', '1000', 'abc', '-1', '1.5', '', '99999999999999999999'])('refuses $top=%j', async (top) => {
    const r = await get(`/v1.0/users?$top=${enc(top)}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('$top');
  });

  it('accepts 1 and 999', async () => {
    expect((await get('/v1.0/users?$top=1')).body.value).toHaveLength(1);
    const big = await get('/v1.0/users?$top=999&$select=id');
    expect(big.body.value).toHaveLength(N);
    expect(big.body['@odata.nextLink']).toBeUndefined();
  });
});

describe('$count', () => {
  it('requires ConsistencyLevel: eventual', async () => {
    const r = await get('/v1.0/users?$count=true');
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('ConsistencyLevel');
    const ok = await get('/v1.0/users?$count=true&$top=1', { consistencylevel: 'eventual' });
    expect(ok.status).toBe(200);
    expect(ok.body['@odata.count']).toBe(N);
    const no = await get('/v1.0/users?$count=false&$top=1');
    expect(no.body).not.toHaveProperty('@odata.count');
    expect((await get('/v1.0/users?$count=maybe', { consistencylevel: 'eventual' })).status).toBe(400);
  });

  it('/users/$count answers a plain number, with and without $filter', async () => {
    const r = await get('/v1.0/users/$count', { consistencylevel: 'eventual' });
    expect(r.status).toBe(200);
    expect(r.body).toBe(String(N));
    const f = await get(`/v1.0/users/$count?$filter=${enc('accountEnabled eq false')}`, { consistencylevel: 'eventual' });
    expect(f.body).toBe(String(users.filter((u) => !u.accountEnabled).length));
    const no = await get('/v1.0/users/$count');
    expect(no.status).toBe(400);
    expect(no.body.error.message).toContain('ConsistencyLevel');
  });
});

describe('unsupported and unknown query options', () => {
  it.each(['$expand=manager', '$search="displayName:alice"', '$skip=10', '$format=json', '$apply=groupby((department))'])('refuses %s as Request_UnsupportedQuery naming it', async (q) => {
    const r = await get(`/v1.0/users?${q}`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('Request_UnsupportedQuery');
    expect(r.body.error.message).toContain(q.split('=')[0]!);
  });

  it.each(['$frobnicate=1', '$Filterx=a'])('refuses the unknown option %s', async (q) => {
    const r = await get(`/v1.0/users?${q}`);
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(q.split('=')[0]!);
  });

  it('refuses a repeated option', async () => {
    const r = await get('/v1.0/users?$top=1&$top=2');
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('more than once');
  });

  it('refuses unknown $select properties, naming them', async () => {
    const r = await get('/v1.0/users?$select=displayName,shoeSize');
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('shoeSize');
  });

  it('refuses $filter on a single entity and on domains', async () => {
    expect((await get(`/v1.0/users/${users[0]!.id}?$filter=${enc("displayName eq 'x'")}`)).status).toBe(400);
    expect((await get('/v1.0/domains?$top=1')).status).toBe(400);
  });
});

describe('tampered tokens', () => {
  it.each([
    'garbage',
    '%%%',
    Buffer.from('{"v":"x"}').toString('base64url'),
    Buffer.from('[1,2,3]').toString('base64url'),
    Buffer.from('null').toString('base64url'),
    Buffer.from('{"id":{"$gt":""}}').toString('base64url'),
    Buffer.from('"just a string"').toString('base64url'),
  ])('a tampered $skiptoken %j is a 400', async (token) => {
    for (const url of [`/v1.0/users?$skiptoken=${enc(token)}`, `/v1.0/users?$orderby=displayName&$skiptoken=${enc(token)}`]) {
      const r = await get(url);
      expect(r.status, url).toBe(400);
      expect(r.body.error.message).toContain('$skiptoken');
    }
  });

  it('a skiptoken with a non-string sort value does not crash', async () => {
    const token = Buffer.from(JSON.stringify({ v: { a: 1 }, id: 'x' })).toString('base64url');
    const r = await get(`/v1.0/users?$orderby=displayName&$skiptoken=${token}`);
    expect(r.status).toBe(400);
  });

  it('a tampered $deltatoken or delta $skiptoken is a 400, not a 500', async () => {
    const good = await collect('/v1.0/users/delta?$select=displayName');
    expect(good.items).toHaveLength(N);
    const tokens = [
      'garbage',
      Buffer.from('{}').toString('base64url'),
      Buffer.from('null').toString('base64url'),
      Buffer.from(JSON.stringify({ t: 'other-tenant', o: 'user', s: 0, i: '', from: 0, init: false, at: clock.now().getTime() })).toString('base64url'),
      Buffer.from(JSON.stringify({ t: t.tenant.id, o: 'group', s: 0, i: '', from: 0, init: false, at: clock.now().getTime() })).toString('base64url'),
      Buffer.from(JSON.stringify({ t: t.tenant.id, o: 'user', s: 'zero', i: '', at: clock.now().getTime() })).toString('base64url'),
      Buffer.from(JSON.stringify({ t: t.tenant.id, o: 'user', s: 0, i: '', from: 0, init: false, at: 'yesterday' })).toString('base64url'),
      Buffer.from(JSON.stringify({ t: t.tenant.id, o: 'user', s: 0, i: '', from: 0, init: false, at: clock.now().getTime(), sel: 'shoeSize' })).toString('base64url'),
    ];
    for (const tk of tokens) {
      for (const opt of ['$deltatoken', '$skiptoken']) {
        const r = await get(`/v1.0/users/delta?${opt}=${enc(tk)}`);
        expect(r.status, `${opt}=${tk}`).toBe(400);
        expect(r.body.error.code).not.toBe('InternalServerError');
      }
    }
  });
});

describe('delta token expiry', () => {
  it('a delta token older than 30 days is 410 syncStateNotFound; a fresh round works', async () => {
    const first = await collect('/v1.0/users/delta');
    expect(first.items).toHaveLength(N);
    let link = '/v1.0/users/delta';
    let deltaLink: string | undefined;
    while (!deltaLink) {
      const r = await get(link);
      deltaLink = r.body['@odata.deltaLink'] as string | undefined;
      link = r.body['@odata.nextLink'] as string;
    }
    // Within 30 days the token works.
    clock.advance(29 * DAY_MS);
    tok = await t.token('read');
    const ok = await get(deltaLink);
    expect(ok.status).toBe(200);
    expect(ok.body.value).toEqual([]);

    clock.advance(2 * DAY_MS);
    tok = await t.token('read');
    const r = await get(deltaLink);
    expect(r.status).toBe(410);
    expect(r.body.error.code).toBe('syncStateNotFound');
    expect(r.body.error.message).toContain('30 days');
    const fresh = await get('/v1.0/users/delta');
    expect(fresh.status).toBe(200);
  });
});
