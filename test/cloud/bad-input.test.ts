// Property-based fuzzing of the HTTP layer with fast-check: random and near-valid $filter
// strings, JSON bodies for users and groups, $batch payloads, malformed JSON, wrong content
// types, huge bodies and odd URLs. Whatever comes in: never a 5xx, every error in Graph's
// shape {error:{code,message,innerError:{request-id,date}}}, and no stack trace in the body.
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

let cloud: TestCloud;
let t: TestTenant;
let rw: string;
let sync: string;
let userId: string;
let groupId: string;

// NIMBUS_FUZZ_RUNS raises it for a longer hunt; the default keeps the file to a few seconds.
const RUNS = Number(process.env.NIMBUS_FUZZ_RUNS ?? 250);
// Each property makes a few hundred requests; give it room beyond Vitest's 5 s default.
const SLOW = { timeout: 60_000 };

beforeAll(async () => {
  cloud = await startCloud();
  t = await cloud.createTenant('fuzz');
  rw = await t.token('readwrite');
  sync = await t.token('sync');
  const u = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(t.tenant, 'fuzzy') });
  userId = u.body.id as string;
  const g = await cloud.graph(rw, 'groups', { method: 'POST', body: { displayName: 'Fuzz', mailEnabled: false, mailNickname: 'fuzz', securityEnabled: true } });
  groupId = g.body.id as string;
});

afterAll(async () => {
  await cloud?.close();
});

interface Raw {
  status: number;
  body: string;
  contentType: string;
}

async function send(opts: { method: string; url: string; token?: string | null; headers?: Record<string, string>; payload?: string | Buffer }): Promise<Raw> {
  const headers: Record<string, string> = { ...(opts.token === null ? {} : { authorization: `Bearer ${opts.token ?? rw}` }), ...(opts.headers ?? {}) };
  const res = await cloud.app.inject({ method: opts.method as InjectOptions['method'], url: opts.url, headers, ...(opts.payload !== undefined ? { payload: opts.payload } : {}) });
  return { status: res.statusCode, body: res.body, contentType: String(res.headers['content-type'] ?? '') };
}

/** Percent-encodes the UTF-8 bytes of any JS string (lone surrogates become U+FFFD, as a client would send). */
const pct = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

const STACK = /\n\s+at\s|node_modules|\.ts:\d+|\bat (?:async )?[A-Za-z_.]+ \(/;

/** Checks a Graph error body (parsed). */
function expectErrorShape(body: unknown, where: string) {
  const e = (body as { error?: Record<string, unknown> } | null)?.error;
  expect(e, `${where}: ${JSON.stringify(body)?.slice(0, 300)}`).toBeTypeOf('object');
  expect(typeof e!.code, where).toBe('string');
  expect(typeof e!.message, where).toBe('string');
  expect((e!.message as string).length, where).toBeGreaterThan(0);
  const inner = e!.innerError as Record<string, unknown> | undefined;
  expect(inner, where).toBeTypeOf('object');
  expect(typeof inner!['request-id'], where).toBe('string');
  expect(typeof inner!.date, where).toBe('string');
  expect(Number.isNaN(Date.parse(`${inner!.date as string}Z`)), where).toBe(false);
}

/** Never a 5xx; a 4xx is Graph's error JSON; no stack traces anywhere. */
function expectSane(r: Raw, where: string): unknown {
  expect(r.status, `${where} -> ${r.status} ${r.body.slice(0, 300)}`).toBeLessThan(500);
  expect(r.body, where).not.toMatch(STACK);
  let parsed: unknown;
  if (r.contentType.includes('json') && r.body) parsed = JSON.parse(r.body);
  if (r.status >= 400) {
    expect(r.contentType, where).toContain('application/json');
    expectErrorShape(parsed, where);
  }
  return parsed;
}

// ---- arbitraries ------------------------------------------------------------------------

const anyText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }));

const filterProp = fc.constantFrom(
  'displayName', 'userPrincipalName', 'mail', 'accountEnabled', 'createdDateTime', 'proxyAddresses', 'jobTitle', 'id',
  'officeLocation', 'shoeSize', 'onPremisesSyncEnabled', 'givenName', 'DisplayName', 'x/y', 'groupTypes', 'mailEnabled', 'onPremisesProvisioningErrors',
);
const filterLit = fc.oneof(
  anyText.map((s) => `'${s.replace(/'/g, "''")}'`),
  anyText.map((s) => `'${s}'`),
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom('true', 'false', 'null', 'TRUE', '2026-01-01T00:00:00Z', '2026-13-45T99:00:00Z', '00000000-0000-0000-0000-000000000000', "''", "'", '-', '1e999', "'\u0000'"),
);
const filterOp = fc.constantFrom('eq', 'ne', 'gt', 'ge', 'lt', 'le', 'has', 'in', 'EQ', 'add', 'like');
const filterLeaf = fc.oneof(
  fc.tuple(filterProp, filterOp, filterLit).map(([p, o, l]) => `${p} ${o} ${l}`),
  fc.tuple(filterProp, fc.array(filterLit, { maxLength: 5 })).map(([p, ls]) => `${p} in (${ls.join(',')})`),
  fc.tuple(fc.constantFrom('startswith', 'endswith', 'contains', 'any', 'startsWith', 'length'), filterProp, filterLit).map(([f, p, l]) => `${f}(${p},${l})`),
  fc.tuple(filterProp, fc.constantFrom('any', 'all'), fc.constantFrom('x', 'p'), filterOp, filterLit).map(([p, f, v, o, l]) => `${p}/${f}(${v}:${v} ${o} ${l})`),
  fc.tuple(filterProp, filterLit).map(([p, l]) => `${p}/any(x:startswith(x,${l}))`),
);
const { filterExpr } = fc.letrec((tie) => ({
  filterExpr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    filterLeaf,
    fc.tuple(tie('filterExpr'), fc.constantFrom('and', 'or', 'AND', 'xor'), tie('filterExpr')).map(([a, o, b]) => `${a as string} ${o} ${b as string}`),
    tie('filterExpr').map((e) => `not(${e as string})`),
    tie('filterExpr').map((e) => `not ${e as string}`),
    tie('filterExpr').map((e) => `(${e as string})`),
  ),
}));
/** Well-formed filters over filterable properties with any literal text (these reach SQL). */
const safeText = anyText.map((x) => `'${x.replace(/'/g, "''")}'`);
const validLeaf = fc.oneof(
  fc.tuple(fc.constantFrom('displayName', 'userPrincipalName', 'mail', 'jobTitle', 'givenName', 'mailNickname', 'department'), fc.constantFrom('eq', 'ne'), safeText).map(([p, o, l]) => `${p} ${o} ${l}`),
  fc.tuple(fc.constantFrom('startswith', 'endswith'), fc.constantFrom('displayName', 'userPrincipalName', 'mail'), safeText).map(([f, p, l]) => `${f}(${p},${l})`),
  fc.tuple(fc.constantFrom('accountEnabled', 'onPremisesSyncEnabled'), fc.constantFrom('eq', 'ne'), fc.constantFrom('true', 'false', 'null')).map(([p, o, l]) => `${p} ${o} ${l}`),
  fc.date({ noInvalidDate: true, min: new Date('1900-01-01'), max: new Date('2200-01-01') }).map((d) => `createdDateTime ge ${d.toISOString()}`),
  safeText.map((l) => `proxyAddresses/any(x:x eq ${l})`),
  fc.array(safeText, { minLength: 1, maxLength: 5 }).map((ls) => `userPrincipalName in (${ls.join(',')})`),
);
const { validFilter } = fc.letrec((tie) => ({
  validFilter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    validLeaf,
    fc.tuple(tie('validFilter'), fc.constantFrom('and', 'or'), tie('validFilter')).map(([a, o, b]) => `(${a as string}) ${o} (${b as string})`),
    tie('validFilter').map((e) => `not(${e as string})`),
  ),
}));
/** Valid and near-valid filters, sometimes cut or with junk spliced in. */
const fuzzFilter = fc.oneof(
  validFilter,
  filterExpr,
  fc.tuple(filterExpr, fc.nat(), anyText).map(([e, i, s]) => {
    const at = i % (e.length + 1);
    return e.slice(0, at) + s + e.slice(at);
  }),
  fc.tuple(filterExpr, fc.nat()).map(([e, i]) => e.slice(0, i % (e.length + 1))),
  anyText,
  // Raw query text that is not valid UTF-8 or not valid percent-encoding.
  fc.constantFrom('%RAW%%ED%A0%80', "%RAW%displayName%20eq%20'%FF'", '%RAW%%', "%RAW%displayName eq '%ZZ'", '%RAW%%C0%AF'),
  fc.constantFrom('(('.repeat(200), 'not '.repeat(500) + "displayName eq 'a'", `displayName in (${Array.from({ length: 300 }, (_, i) => `'${i}'`).join(',')})`, "displayName eq 'a' or ".repeat(150) + "displayName eq 'b'"),
);

const json = fc.jsonValue({ maxDepth: 3 });
const interesting = fc.oneof(
  json,
  fc.constantFrom(null, true, false, 0, -1, 1e308, '', ' ', 'x'.repeat(300), 'a@b', `x@${'fuzz'}.onnimbus.net`, ['SMTP:a@b.c', 'SMTP:d@e.f'], [], {}, { password: 'Str0ng!Passw0rd' }, { '@odata.id': 'x' }, '00000000-0000-0000-0000-000000000000'),
);
const userKey = fc.constantFrom(
  'accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName', 'passwordProfile', 'mail', 'proxyAddresses', 'givenName', 'surname',
  'businessPhones', 'onPremisesImmutableId', 'onPremisesSyncEnabled', 'manager@odata.bind', 'id', '@odata.type', 'userType', 'createdDateTime',
  'usageLocation', 'otherMails', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'unknownProp', 'onPremisesProvisioningErrors', 'officeLocation',
);
const groupKey = fc.constantFrom(
  'displayName', 'mailEnabled', 'mailNickname', 'securityEnabled', 'groupTypes', 'description', 'visibility', 'mail', 'proxyAddresses',
  'members@odata.bind', 'owners@odata.bind', 'onPremisesSecurityIdentifier', 'id', '__proto__', 'constructor', 'unknownProp', '@odata.type',
);
const randomObject = (keys: fc.Arbitrary<string>) => fc.dictionary(fc.oneof(keys, fc.string()), interesting, { maxKeys: 8 });
let seq = 0;
/** A valid user body with one to three properties replaced or added at random. */
const nearValidUser = fc.array(fc.tuple(userKey, interesting), { minLength: 1, maxLength: 3 }).map((changes) => {
  const body: Record<string, unknown> = newUser(t.tenant, `nv${seq++}`);
  for (const [k, v] of changes) Object.defineProperty(body, k, { value: v, enumerable: true, configurable: true, writable: true });
  return body;
});
const nearValidGroup = fc.array(fc.tuple(groupKey, interesting), { minLength: 1, maxLength: 3 }).map((changes) => {
  const body: Record<string, unknown> = { displayName: 'G', mailEnabled: false, mailNickname: `g${seq++}`, securityEnabled: true };
  for (const [k, v] of changes) Object.defineProperty(body, k, { value: v, enumerable: true, configurable: true, writable: true });
  return body;
});
const anyBody = (keys: fc.Arbitrary<string>, near: fc.Arbitrary<Record<string, unknown>>) => fc.oneof(json, randomObject(keys), near);

// ---- properties -------------------------------------------------------------------------

describe('fuzzing $filter', SLOW, () => {
  it('random and near-valid filters on /users: 200 or a Graph 400, never a 5xx', async () => {
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(fuzzFilter, fc.constantFrom('users', 'groups', 'users/$count', 'directory/deletedItems/microsoft.graph.user'), async (filter, resource) => {
        const r = await send({ method: 'GET', url: `/v1.0/${resource}?$filter=${filter.startsWith('%RAW%') ? filter.slice(5) : pct(filter)}`, headers: { consistencylevel: 'eventual' } });
        expectSane(r, `$filter=${filter} on ${resource}`);
        expect([200, 400]).toContain(r.status);
        if (r.status === 200) ok++;
      }),
      { numRuns: RUNS },
    );
    // The generator reaches the database, not only the parser's error paths.
    expect(ok).toBeGreaterThan(RUNS / 20);
  });

  it('random $select, $orderby, $top and $skiptoken values: never a 5xx', async () => {
    const opt = fc.tuple(fc.constantFrom('$select', '$orderby', '$top', '$skiptoken', '$count', '$deltatoken', '$expand', '$filter', '$foo', 'plain'), anyText);
    await fc.assert(
      fc.asyncProperty(fc.array(opt, { minLength: 1, maxLength: 4 }), fc.constantFrom('users', 'groups', 'users/delta', 'groups/delta', `groups/${groupId}/members`, `users/${userId}/directReports`, 'auditLogs/directoryAudits'), async (opts, resource) => {
        const qs = opts.map(([k, v]) => `${k}=${pct(v)}`).join('&');
        const r = await send({ method: 'GET', url: `/v1.0/${resource}?${qs}`, headers: { consistencylevel: 'eventual' } });
        expectSane(r, `${resource}?${qs}`);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fuzzing JSON bodies', SLOW, () => {
  it('POST /users with random bodies', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody(userKey, nearValidUser), fc.constantFrom(rw, sync), async (body, token) => {
        const r = await send({ method: 'POST', url: '/v1.0/users', token, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expectSane(r, `POST /users ${JSON.stringify(body)}`);
        expect([201, 400, 404]).toContain(r.status);
      }),
      { numRuns: RUNS },
    );
  });

  it('PATCH /users/{id} with random bodies', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody(userKey, nearValidUser), fc.constantFrom(rw, sync), async (body, token) => {
        const r = await send({ method: 'PATCH', url: `/v1.0/users/${userId}`, token, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expectSane(r, `PATCH /users ${JSON.stringify(body)}`);
        expect([204, 400, 404]).toContain(r.status);
      }),
      { numRuns: RUNS },
    );
    // Whatever was accepted, the user is still readable and well-formed.
    const u = await cloud.graph(rw, `users/${userId}?$select=*`);
    expect(u.status).toBe(200);
    expect(typeof u.body.userPrincipalName).toBe('string');
  });

  it('POST /groups and PATCH /groups/{id} with random bodies', async () => {
    await fc.assert(
      fc.asyncProperty(anyBody(groupKey, nearValidGroup), fc.boolean(), fc.constantFrom(rw, sync), async (body, patch, token) => {
        const r = patch
          ? await send({ method: 'PATCH', url: `/v1.0/groups/${groupId}`, token, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
          : await send({ method: 'POST', url: '/v1.0/groups', token, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expectSane(r, `${patch ? 'PATCH' : 'POST'} /groups ${JSON.stringify(body)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('random bodies on the other write endpoints', async () => {
    const endpoints: [string, string][] = [
      ['POST', '/v1.0/domains'],
      ['PATCH', '/v1.0/domains/fuzz.onnimbus.net'],
      ['PATCH', `/v1.0/organization/${'00000000-0000-0000-0000-000000000000'}`],
      ['POST', `/v1.0/groups/${groupId}/members/$ref`],
      ['PUT', `/v1.0/users/${userId}/manager/$ref`],
      ['POST', '/v1.0/directoryRoles/62e90394-69f5-4237-9190-012177145e10/members/$ref'],
      ['POST', '/v1.0/directory/deletedItems/00000000-0000-0000-0000-000000000000/restore'],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), fc.oneof(json, randomObject(fc.constantFrom('id', 'isDefault', '@odata.id', 'onPremisesSyncEnabled'))), async ([method, url], body) => {
        const r = await send({ method, url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        expectSane(r, `${method} ${url} ${JSON.stringify(body)}`);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fuzzing $batch', SLOW, () => {
  const ids = fc.constantFrom('1', '2', '3', 'a', 'zz');
  const batchRequest = fc.record(
    {
      id: fc.oneof(ids, fc.string(), fc.integer(), fc.constant(null)),
      method: fc.oneof(fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'get', 'HEAD', 'TRACE', 'OPTIONS'), json),
      url: fc.oneof(
        fc.constantFrom(
          '/users', 'users', '/users?$top=1', '/groups', '/users/delta', '/$batch', '$batch', '/v1.0/$batch', '/V1.0/$BATCH', 'https://graph.microsoft.com/v1.0/users',
          '/me', '/users/not-a-guid', '/organization', "/users?$filter=startswith(displayName,'U')", '/domains', '/../healthz', '//users', '/users/%ZZ',
          `/users/${'x'}`, `/groups/${'g'}/members`, '/users?$filter=((', '', ' ', '/auditLogs/directoryAudits',
        ),
        fc.string(),
        json,
      ),
      headers: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('content-type', 'ConsistencyLevel', 'authorization', 'prefer', 'x-odd'), fc.string()), fc.oneof(fc.string(), fc.integer(), json), { maxKeys: 3 }), json),
      body: fc.oneof(json, randomObject(userKey), nearValidUser),
      dependsOn: fc.oneof(fc.array(ids, { maxLength: 3 }), json),
    },
    { requiredKeys: [] },
  );
  const batchBody = fc.oneof(
    { weight: 4, arbitrary: fc.record({ requests: fc.array(batchRequest, { maxLength: 24 }) }) },
    // Mostly-valid batches, so dependsOn chains and inner requests really run.
    {
      weight: 4,
      arbitrary: fc.array(fc.tuple(fc.constantFrom('GET /users?$top=2', 'GET /groups', 'POST /users', 'GET /users/nobody', 'DELETE /users/nobody', 'GET /organization'), fc.array(ids, { maxLength: 2 }), nearValidUser), { minLength: 1, maxLength: 5 }).map((reqs) => ({
        requests: reqs.map(([mu, deps, body], i) => {
          const [method, url] = mu.split(' ') as [string, string];
          return { id: ['1', '2', '3', 'a', 'zz'][i]!, method, url, dependsOn: deps, ...(method === 'POST' ? { body } : {}) };
        }),
      })),
    },
    { weight: 1, arbitrary: json },
  );

  it('random batches: an outer 200 or a Graph 400; inner responses never 5xx, errors in Graph shape', async () => {
    let ran = 0;
    await fc.assert(
      fc.asyncProperty(batchBody, async (body) => {
        const r = await send({ method: 'POST', url: '/v1.0/$batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        const parsed = expectSane(r, `$batch ${JSON.stringify(body)?.slice(0, 500)}`) as { responses?: any[] };
        expect([200, 400]).toContain(r.status);
        if (r.status !== 200) return;
        ran++;
        const reqs = (body as { requests: unknown[] }).requests;
        expect(parsed.responses).toHaveLength(reqs.length);
        for (const inner of parsed.responses!) {
          expect(typeof inner.id).toBe('string');
          expect(inner.status, JSON.stringify(inner)).toBeLessThan(500);
          expect(JSON.stringify(inner)).not.toMatch(STACK);
          if (inner.status >= 400 && typeof inner.body === 'object') expectErrorShape(inner.body, `inner ${JSON.stringify(inner)}`);
        }
      }),
      { numRuns: RUNS },
    );
    expect(ran).toBeGreaterThan(0);
  });

  it('refuses oversized, duplicate-id, bad-dependsOn, circular and nested batches, running nothing', async () => {
    const before = (await cloud.graph(rw, 'users/$count', { headers: { consistencylevel: 'eventual' } })).body as string;
    const post = (id: string, extra: Record<string, unknown> = {}) => ({ id, method: 'POST', url: '/users', body: newUser(t.tenant, `batch-${id}-${seq++}`), ...extra });
    const cases: [unknown, string][] = [
      [{ requests: Array.from({ length: 21 }, (_, i) => post(String(i))) }, 'limit is 20'],
      [{ requests: [post('1'), post('1')] }, 'more than one request'],
      [{ requests: [post('1', { dependsOn: ['9'] })] }, 'not in the batch'],
      [{ requests: [post('1', { dependsOn: ['1'] })] }, 'depends on itself'],
      [{ requests: [post('0'), post('1', { dependsOn: ['2'] }), post('2', { dependsOn: ['1'] })] }, 'circular'],
      [{ requests: [post('0'), post('1', { dependsOn: ['2'] }), post('2', { dependsOn: ['3'] }), post('3', { dependsOn: ['1'] })] }, 'circular'],
      [{ requests: [post('0'), { id: '1', method: 'POST', url: '/$batch', body: { requests: [] } }] }, 'nested'],
      [{ requests: [post('0'), { id: '1', method: 'GET', url: 'https://evil.example/v1.0/users' }] }, 'relative'],
      [{ requests: [post('0'), { id: '1', method: 'GET', url: '/users', body: {} }] }, 'cannot have a body'],
      [{ requests: [] }, 'no requests'],
      [{ requests: {} }, 'requests'],
      [[], 'requests'],
    ];
    for (const [body, why] of cases) {
      const r = await send({ method: 'POST', url: '/v1.0/$batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
      expectSane(r, why);
      expect(r.status, why).toBe(400);
      expect(JSON.parse(r.body).error.message, why).toContain(why === 'nested' ? 'cannot be nested' : why);
    }
    // None of the refused batches created anyone.
    expect((await cloud.graph(rw, 'users/$count', { headers: { consistencylevel: 'eventual' } })).body).toBe(before);
  });

  it('a failed dependency gives 424 in Graph shape and the dependent request does not run', async () => {
    const body = {
      requests: [
        { id: '1', method: 'GET', url: '/users/00000000-0000-0000-0000-00000000dead' },
        { id: '2', method: 'POST', url: '/users', dependsOn: ['1'], body: newUser(t.tenant, 'never-created') },
      ],
    };
    const r = await send({ method: 'POST', url: '/v1.0/$batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
    const parsed = expectSane(r, 'failed dependency') as { responses: any[] };
    const byId = new Map(parsed.responses.map((x) => [x.id, x]));
    expect(byId.get('1').status).toBe(404);
    expect(byId.get('2').status).toBe(424);
    expectErrorShape(byId.get('2').body, '424');
    expect((await cloud.graph(rw, `users/never-created@${t.tenant.initial_domain}`)).status).toBe(404);
  });
});

describe('malformed requests', SLOW, () => {
  it('malformed JSON is a 400 saying so', async () => {
    const broken = fc.oneof(
      anyText.filter((s) => {
        try {
          JSON.parse(s);
          return false;
        } catch {
          return s.trim() !== '';
        }
      }),
      fc.json().map((s) => s.slice(0, Math.max(1, s.length - 1)) + '{'),
      fc.constantFrom('{', '{"a":', '{"displayName": "x",}', "{'a': 1}", '[1,2', '{"a":1}{"b":2}', 'undefined', 'NaN', '\u0000', '{"a":"\\x"}'),
    );
    await fc.assert(
      fc.asyncProperty(broken, fc.constantFrom(['POST', '/v1.0/users'], ['PATCH', `/v1.0/users/${userId}`], ['POST', '/v1.0/groups'], ['POST', '/v1.0/$batch'], ['POST', '/v1.0/domains'], ['PATCH', `/v1.0/organization/${userId}`]), async (text, [method, url]) => {
        const r = await send({ method: method, url: url, headers: { 'content-type': 'application/json' }, payload: text });
        expectSane(r, `${method} ${url} ${JSON.stringify(text)}`);
        expect(r.status).toBe(400);
        expect(JSON.parse(r.body).error.message).toMatch(/JSON/);
      }),
      { numRuns: RUNS },
    );
  });

  it('wrong content types are 4xx in Graph shape', async () => {
    const types = fc.constantFrom(
      'text/plain', 'application/xml', 'text/xml', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/x-www-form-urlencoded',
      'application/json; charset=utf-16', 'APPLICATION/JSON', 'application/jsonx', 'image/png', 'application/merge-patch+json', ';;;', 'text/html; charset=utf-8',
    );
    await fc.assert(
      fc.asyncProperty(types, fc.oneof(anyText, fc.json(), fc.constant(JSON.stringify(newUser({ initial_domain: 'fuzz.onnimbus.net' } as never, 'ct')))), fc.constantFrom(['POST', '/v1.0/users'], ['PATCH', `/v1.0/users/${userId}`], ['POST', '/v1.0/$batch'], ['POST', `/v1.0/groups/${groupId}/members/$ref`]), async (type, text, [method, url]) => {
        const r = await send({ method: method, url: url, headers: { 'content-type': type }, payload: text });
        expectSane(r, `${method} ${url} as ${type}`);
      }),
      { numRuns: RUNS },
    );
    // XML is not silently accepted.
    const xml = await send({ method: 'POST', url: '/v1.0/users', headers: { 'content-type': 'application/xml' }, payload: '<user/>' });
    expect(xml.status).toBe(415);
  });

  it('huge bodies: over the limit is 413; near it is a clear 400; deep nesting is handled', async () => {
    const huge = await send({ method: 'POST', url: '/v1.0/users', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ displayName: 'x'.repeat(5 * 1024 * 1024) }) });
    expectSane(huge, 'huge');
    expect(huge.status).toBe(413);

    const big = await send({ method: 'POST', url: '/v1.0/users', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(newUser(t.tenant, 'big', { displayName: 'x'.repeat(3 * 1024 * 1024) })) });
    expectSane(big, 'big');
    expect(big.status).toBe(400);
    expect(JSON.parse(big.body).error.message).toContain('displayName');

    const many = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`p${i}`, i]));
    const wide = await send({ method: 'POST', url: '/v1.0/users', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(many) });
    expectSane(wide, 'wide');
    expect(wide.status).toBe(400);

    const depth = 100_000;
    const deep = '['.repeat(depth) + ']'.repeat(depth);
    for (const [method, url, payload] of [
      ['POST', '/v1.0/users', `{"displayName": ${deep}}`],
      ['POST', '/v1.0/$batch', `{"requests":[{"id":"1","method":"POST","url":"/users","body":{"displayName":${deep}}}]}`],
      ['PATCH', `/v1.0/users/${userId}`, deep],
    ] as const) {
      const r = await send({ method, url, headers: { 'content-type': 'application/json' }, payload });
      expectSane(r, `deep ${method} ${url}`);
    }

    const longUrl = await send({ method: 'GET', url: `/v1.0/users?$filter=${encodeURIComponent(`displayName eq '${'x'.repeat(100_000)}'`)}` });
    expectSane(longUrl, 'long filter');
    expect(longUrl.status).toBe(400);
  });

  it('random paths, methods and auth headers under /v1.0: never a 5xx', async () => {
    const segment = fc.oneof(
      fc.constantFrom('users', 'groups', 'domains', 'organization', 'directory', 'deletedItems', 'microsoft.graph.user', 'directoryRoles', 'directoryObjects', 'auditLogs', 'directoryAudits', 'members', '$ref', 'manager', 'memberOf', 'directReports', 'delta', 'delta()', '$count', 'restore', 'verify', 'verificationDnsRecords', '$batch', userId, groupId, '%ZZ', '%00', '..', "users('x')"),
      fc.string().map(pct),
    );
    const auth = fc.oneof(
      fc.constant<string | null>(null),
      fc.constant(`Bearer ${'x'}`),
      fc.constant('Basic abc'),
      fc.string().map((s) => `Bearer ${s}`),
      fc.constant('Bearer eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.'),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.constantFrom('GET', 'POST', 'PATCH', 'PUT', 'DELETE'), fc.oneof(fc.constant(undefined), auth), fc.option(json, { nil: undefined }), async (segs, method, authHeader, body) => {
        const url = `/v1.0/${segs.join('/')}`;
        const headers: Record<string, string> = body !== undefined ? { 'content-type': 'application/json' } : {};
        if (authHeader !== undefined && authHeader !== null) headers.authorization = authHeader;
        const r = await send({ method, url, token: authHeader === undefined ? rw : null, headers, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
        expectSane(r, `${method} ${url}`);
        // Without a valid token nothing is served: 401, unless the URL itself is unreadable.
        const underGraph = new URL(url, 'http://x').pathname.toLowerCase().startsWith('/v1.0/');
        if (authHeader !== undefined && underGraph) expect(r.status === 401 || (r.status === 400 && r.body.includes('Invalid request URL')), `${r.status} ${r.body}`).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
