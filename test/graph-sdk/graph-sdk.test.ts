// Drives a running Nimbus over HTTPS through Microsoft's own Graph JavaScript SDK
// (@microsoft/microsoft-graph-client) with tokens from @azure/identity's
// ClientSecretCredential, which uses Nimbus as its authority. Nothing is mocked: a real
// server on loopback, a real SQLite store, real TLS with the test's self-signed certificate.
import { ClientSecretCredential } from '@azure/identity';
import {
  BatchRequestContent,
  BatchResponseContent,
  Client,
  GraphError,
  PageIterator,
  ResponseType,
  type BatchRequestStep,
  type PageCollection,
  type PageIteratorCallback,
} from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials/index.js';
import { randomUUID } from 'node:crypto';
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cliActor } from '../../src/cloud/services/context.ts';
import { TXT_PREFIX } from '../../src/cloud/services/domains.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

const SCOPE = 'https://graph.microsoft.com/.default';

// The server, the SDK and scrypt share two cores with other suites: allow for a busy machine.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 60_000 });

/**
 * @microsoft/microsoft-graph-client 3.0.6's PageIterator keeps its item cursor across pages
 * (it is never reset when the next page arrives), so after the first page it skips every
 * item whose index is below the first page's length: with equal page sizes it silently
 * yields only the first page. This subclass resets the cursor after each fetch; following
 * @odata.nextLink and capturing @odata.deltaLink remain the SDK's own code.
 */
class SdkPageIterator extends PageIterator {
  constructor(client: Client, page: PageCollection, callback: PageIteratorCallback, options?: ConstructorParameters<typeof PageIterator>[3]) {
    super(client, page, callback, options);
    const self = this as unknown as { cursor: number; fetchAndUpdateNextPageData: () => Promise<void> };
    const fetchNext = self.fetchAndUpdateNextPageData.bind(this);
    self.fetchAndUpdateNextPageData = async () => {
      await fetchNext();
      self.cursor = 0;
    };
  }
}

/** Every item of a collection, following @odata.nextLink with the SDK's PageIterator. */
async function iterateAll(client: Client, first: PageCollection, headers?: Record<string, string>) {
  const items: any[] = [];
  const it = new SdkPageIterator(client, first, (item) => {
    items.push(item);
    return true;
  }, headers ? { headers } : undefined);
  await it.iterate();
  expect(it.isComplete()).toBe(true);
  return { items, deltaLink: it.getDeltaLink() };
}

/** The JSON body of one batch response. */
async function bodyOf(r: Response): Promise<any> {
  return r.json();
}

function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** The GraphError a request fails with (fails the test if it succeeds or throws something else). */
async function graphError(p: Promise<unknown>): Promise<GraphError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GraphError);
    return err as GraphError;
  }
  throw new Error('expected the request to fail with a GraphError, but it succeeded');
}

let cloud: TestCloud;
let previousDispatcher: Dispatcher;
/** TXT records the test "publishes" for domain verification. */
const dns = new Map<string, string[]>();

function credential(tenantRef: string, c: { clientId: string; clientSecret: string }, trust = true) {
  return new ClientSecretCredential(tenantRef, c.clientId, c.clientSecret, {
    authorityHost: cloud.url,
    disableInstanceDiscovery: true,
    // @azure/identity sends its requests through @azure/core-rest-pipeline's own https agent.
    ...(trust ? { tlsOptions: { ca: cloud.cert! } } : {}),
  });
}

function sdk(cred: ClientSecretCredential): Client {
  return Client.initWithMiddleware({
    baseUrl: cloud.url,
    // The SDK attaches tokens only over HTTPS, to graph.microsoft.com or these hosts.
    customHosts: new Set([new URL(cloud.url).hostname]),
    authProvider: new TokenCredentialAuthenticationProvider(cred, { scopes: [SCOPE] }),
  });
}

async function clientFor(t: TestTenant, role: 'read' | 'readwrite' = 'readwrite', ref = t.tenant.id) {
  return sdk(credential(ref, await t.credentials(role)));
}

/** A batch step; URLs are host-relative without the version, as Graph's $batch expects. */
function step(id: string, method: string, path: string, body?: unknown, dependsOn?: string[]): BatchRequestStep {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  return { id, request: new Request(`${cloud.url}${path}`, init), ...(dependsOn ? { dependsOn } : {}) };
}

async function runBatch(client: Client, steps: BatchRequestStep[]) {
  const content = new BatchRequestContent(steps);
  const raw = await client.api('/$batch').post(await content.getContent());
  return new BatchResponseContent(raw);
}

beforeAll(async () => {
  cloud = await startCloud({ https: true, lookupTxt: async (name) => dns.get(name) ?? [] });
  // The SDK uses the global fetch (undici): trust the test certificate there, and only there.
  previousDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(new Agent({ connect: { ca: cloud.cert! } }));
});

afterAll(async () => {
  setGlobalDispatcher(previousDispatcher);
  await cloud?.close();
});

describe('tokens through @azure/identity ClientSecretCredential', () => {
  let t: TestTenant;
  beforeAll(async () => {
    t = await cloud.createTenant('tok');
    const d = await cloud.svc.domains.add(cliActor(t.tenant.id), 'tok.example');
    await cloud.svc.domains.verify(cliActor(t.tenant.id), d.name, { force: true });
  });

  it.each([
    ['tenant id', () => t.tenant.id],
    ['tenant name', () => t.tenant.name],
    ['verified domain', () => 'tok.example'],
  ])('gets a token for the tenant by its %s, and the SDK uses it', async (_what, ref) => {
    const c = await t.credentials();
    const cred = credential(ref(), c);
    const token = await cred.getToken(SCOPE);
    expect(token.token.split('.')).toHaveLength(3);
    expect(token.expiresOnTimestamp).toBeGreaterThan(cloud.clock.now().getTime());
    const claims = jwtPayload(token.token);
    expect(claims.tid).toBe(t.tenant.id);
    expect(claims.appid).toBe(c.clientId);
    expect(claims.aud).toBe('https://graph.microsoft.com');
    expect(claims.iss).toBe(`${cloud.url}/${t.tenant.id}/v2.0`);

    const org = await sdk(cred).api('/organization').get();
    expect(org.value).toHaveLength(1);
    expect(org.value[0].id).toBe(t.tenant.id);
  });

  it("refuses an app at another tenant's endpoint", async () => {
    const other = await cloud.createTenant('tok-other');
    const cred = credential(other.tenant.name, await t.credentials());
    await expect(cred.getToken(SCOPE)).rejects.toThrow(/AADSTS700016/);
  });

  it('refuses a wrong secret', async () => {
    const c = await t.credentials();
    await expect(credential(t.tenant.id, { ...c, clientSecret: `${c.clientSecret}x` }).getToken(SCOPE)).rejects.toThrow(/AADSTS7000215/);
  });

  it('verifies TLS: the same credential without trust in the test certificate gets no token', async () => {
    const c = await t.credentials();
    // MSAL reports the failed TLS handshake of its metadata request as unresolvable endpoints.
    await expect(credential(t.tenant.id, c, false).getToken(SCOPE)).rejects.toThrow(/endpoints_resolution_error/);
    await expect(credential(t.tenant.id, c, true).getToken(SCOPE)).resolves.toMatchObject({ tokenType: 'Bearer' });
  });
});

describe('users through the SDK', () => {
  let t: TestTenant;
  let client: Client;
  beforeAll(async () => {
    t = await cloud.createTenant('crud');
    client = await clientFor(t);
  });

  it('creates a user (201 with the object) and reads it back by id and by UPN', async () => {
    const created = await client.api('/users').post(newUser(t.tenant, 'ada', { givenName: 'Ada', jobTitle: 'Engineer' }));
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.userPrincipalName).toBe(`ada@${t.tenant.initial_domain}`);
    expect(created.passwordProfile).toBeUndefined();

    const byId = await client.api(`/users/${created.id}`).get();
    expect(byId).toMatchObject({ id: created.id, displayName: 'User ada', givenName: 'Ada', jobTitle: 'Engineer' });
    const byUpn = await client.api(`/users/${created.userPrincipalName}`).select(['id', 'accountEnabled']).get();
    expect(byUpn.id).toBe(created.id);
    expect(byUpn.accountEnabled).toBe(true);
    expect(byUpn.displayName).toBeUndefined();
  });

  it('updates and deletes a user', async () => {
    const u = await client.api('/users').post(newUser(t.tenant, 'bob'));
    await client.api(`/users/${u.id}`).patch({ jobTitle: 'Manager' });
    expect((await client.api(`/users/${u.id}`).select('jobTitle').get()).jobTitle).toBe('Manager');
    await client.api(`/users/${u.id}`).delete();
    const e = await graphError(client.api(`/users/${u.id}`).get());
    expect(e.statusCode).toBe(404);
    const binned = await client.api(`/directory/deletedItems/${u.id}`).get();
    expect(binned.id).toBe(u.id);
  });
});

describe('paging and query options', () => {
  const N = 260;
  let t: TestTenant;
  let client: Client;
  let ids: Set<string>;
  const name = (i: number) => `Pager ${String(i).padStart(3, '0')}`;

  beforeAll(async () => {
    t = await cloud.createTenant('paging');
    ids = new Set();
    for (let i = 0; i < N; i++) {
      const u = await cloud.svc.users.create(cliActor(t.tenant.id), newUser(t.tenant, `pager${i}`, { displayName: name(i), accountEnabled: i % 10 !== 0 }));
      ids.add(u.id as string);
    }
    // Another tenant's users must never show up in this tenant's pages.
    const other = await cloud.createTenant('paging-other');
    for (let i = 0; i < 5; i++) await cloud.svc.users.create(cliActor(other.tenant.id), newUser(other.tenant, `pager${i}`, { displayName: name(i) }));
    client = await clientFor(t);
  });

  it(`iterates all ${N} users with PageIterator and $top, each exactly once`, async () => {
    const first = await client.api('/users').top(100).get();
    expect(first.value).toHaveLength(100);
    expect(first['@odata.nextLink']).toMatch(new RegExp(`^${cloud.url}/v1\\.0/users\\?.*\\$skiptoken=`));
    const { items } = await iterateAll(client, first);
    expect(items).toHaveLength(N);
    expect(new Set(items.map((u) => u.id))).toEqual(ids);
  });

  it('keeps $filter, $orderby and $select across pages', async () => {
    const first = await client
      .api('/users')
      .filter("startswith(displayName,'Pager 1')")
      .orderby('displayName desc')
      .select(['id', 'displayName'])
      .top(37)
      .get();
    expect(first.value).toHaveLength(37);
    const { items } = await iterateAll(client, first);
    const expected = Array.from({ length: 100 }, (_, i) => name(199 - i));
    expect(items.map((u) => u.displayName)).toEqual(expected);
    for (const u of items) expect(Object.keys(u).sort()).toEqual(['displayName', 'id']);
  });

  it('orders by userPrincipalName ascending', async () => {
    const page = await client.api('/users').orderby('userPrincipalName').select('userPrincipalName').top(999).get();
    expect(page['@odata.nextLink']).toBeUndefined();
    const upns = page.value.map((u: any) => u.userPrincipalName as string);
    expect(upns).toHaveLength(N);
    expect(upns).toEqual([...upns].sort());
  });

  it('combines $filter conditions with and/or/in', async () => {
    const page = await client
      .api('/users')
      .filter(`accountEnabled eq false and (displayName eq '${name(10)}' or userPrincipalName in ('pager20@${t.tenant.initial_domain}','pager21@${t.tenant.initial_domain}'))`)
      .select('displayName')
      .get();
    // pager21 is enabled (21 % 10 != 0), so only 10 and 20 match.
    expect(page.value.map((u: any) => u.displayName).sort()).toEqual([name(10), name(20)]);
  });

  it('counts with $count and ConsistencyLevel: eventual', async () => {
    const page = await client.api('/users').header('ConsistencyLevel', 'eventual').count(true).filter("startswith(displayName,'Pager 2')").top(5).get();
    expect(page['@odata.count']).toBe(60);
    expect(page.value).toHaveLength(5);
    const n = await client.api('/users/$count').header('ConsistencyLevel', 'eventual').filter('accountEnabled eq false').responseType(ResponseType.TEXT).get();
    expect(Number(n)).toBe(N / 10);
  });

  it('refuses $count without ConsistencyLevel, and an out-of-range $top', async () => {
    const e = await graphError(client.api('/users').count(true).get());
    expect(e.statusCode).toBe(400);
    expect(e.message).toMatch(/ConsistencyLevel/);
    const top = await graphError(client.api('/users').top(1000).get());
    expect(top.statusCode).toBe(400);
    expect(top.message).toMatch(/\$top/);
  });
});

describe('delta', () => {
  it('follows nextLinks to a deltaLink, then returns exactly the later changes', async () => {
    const t = await cloud.createTenant('delta');
    const other = await cloud.createTenant('delta-other');
    const actor = cliActor(t.tenant.id);
    const seeded: string[] = [];
    for (let i = 0; i < 120; i++) seeded.push((await cloud.svc.users.create(actor, newUser(t.tenant, `d${i}`))).id as string);
    const client = await clientFor(t);
    const prefer = { Prefer: 'odata.maxpagesize=50' };

    // Initial round: every live user, in pages of 50, ending in a deltaLink.
    const first = await client.api('/users/delta').headers(prefer).select(['displayName', 'jobTitle']).get();
    expect(first.value).toHaveLength(50);
    expect(first['@odata.nextLink']).toBeDefined();
    expect(first['@odata.deltaLink']).toBeUndefined();
    const round1 = await iterateAll(client, first, prefer);
    expect(new Set(round1.items.map((u) => u.id))).toEqual(new Set(seeded));
    expect(round1.items).toHaveLength(120);
    expect(round1.deltaLink).toMatch(new RegExp(`^${cloud.url}/v1\\.0/users/delta\\?\\$deltatoken=`));

    // Changes: two creates, one update, one soft delete, one permanent delete; plus noise in another tenant.
    const c1 = await client.api('/users').post(newUser(t.tenant, 'new1'));
    const c2 = await client.api('/users').post(newUser(t.tenant, 'new2'));
    const [updated, softDeleted, purged] = [seeded[3]!, seeded[40]!, seeded[99]!];
    await client.api(`/users/${updated}`).patch({ jobTitle: 'Changed' });
    await client.api(`/users/${softDeleted}`).delete();
    await client.api(`/users/${purged}`).delete();
    await client.api(`/directory/deletedItems/${purged}`).delete();
    await cloud.svc.users.create(cliActor(other.tenant.id), newUser(other.tenant, 'noise'));

    const round2 = await iterateAll(client, await client.api(round1.deltaLink!).headers(prefer).get(), prefer);
    const byId = new Map(round2.items.map((i) => [i.id as string, i]));
    expect(round2.items).toHaveLength(5);
    expect(byId.get(c1.id)).toMatchObject({ displayName: 'User new1' });
    expect(byId.get(c2.id)).toMatchObject({ displayName: 'User new2' });
    expect(byId.get(updated)).toMatchObject({ jobTitle: 'Changed' });
    // The $select of the first round is remembered by the tokens.
    expect(Object.keys(byId.get(updated)).sort()).toEqual(['displayName', 'id', 'jobTitle']);
    expect(byId.get(softDeleted)).toEqual({ id: softDeleted, '@removed': { reason: 'changed' } });
    expect(byId.get(purged)).toEqual({ id: purged, '@removed': { reason: 'deleted' } });
    expect(round2.deltaLink).toBeDefined();

    // Restoring from the recycle bin brings the user back as a change.
    await client.api(`/directory/deletedItems/${softDeleted}/restore`).post({});
    const round3 = await iterateAll(client, await client.api(round2.deltaLink!).get());
    expect(round3.items.map((i) => i.id)).toEqual([softDeleted]);
    expect(round3.items[0]['@removed']).toBeUndefined();

    // Nothing changed since: an empty page with a fresh deltaLink.
    const round4 = await client.api(round3.deltaLink!).get();
    expect(round4.value).toEqual([]);
    expect(round4['@odata.deltaLink']).toBeDefined();
  });

  it('groups/delta reports membership changes', async () => {
    const t = await cloud.createTenant('gdelta');
    const client = await clientFor(t);
    const u = await client.api('/users').post(newUser(t.tenant, 'member'));
    const g = await client.api('/groups').post({ displayName: 'Team', mailEnabled: false, mailNickname: 'team', securityEnabled: true });
    const round1 = await iterateAll(client, await client.api('/groups/delta').select('displayName,members').get());
    expect(round1.items).toEqual([expect.objectContaining({ id: g.id, displayName: 'Team', 'members@delta': [] })]);
    await client.api(`/groups/${g.id}/members/$ref`).post({ '@odata.id': `${cloud.url}/v1.0/directoryObjects/${u.id}` });
    const round2 = await iterateAll(client, await client.api(round1.deltaLink!).get());
    expect(round2.items).toHaveLength(1);
    expect(round2.items[0]['members@delta']).toEqual([{ '@odata.type': '#microsoft.graph.user', id: u.id }]);
  });
});

describe('$batch through BatchRequestContent / BatchResponseContent', () => {
  let t: TestTenant;
  let client: Client;
  beforeAll(async () => {
    t = await cloud.createTenant('batch');
    client = await clientFor(t);
  });

  it('runs a serial dependsOn chain: create, read, update, read back', async () => {
    const upn = `chain@${t.tenant.initial_domain}`;
    const res = await runBatch(client, [
      step('1', 'POST', '/users', newUser(t.tenant, 'chain')),
      step('2', 'GET', `/users/${upn}`, undefined, ['1']),
      step('3', 'PATCH', `/users/${upn}`, { jobTitle: 'Batched' }, ['2']),
      step('4', 'GET', `/users/${upn}?$select=jobTitle`, undefined, ['3']),
    ]);
    const r1 = res.getResponseById('1');
    expect(r1.status).toBe(201);
    const created = await bodyOf(r1);
    expect(created.userPrincipalName).toBe(upn);
    const r2 = res.getResponseById('2');
    expect(r2.status).toBe(200);
    expect((await bodyOf(r2)).id).toBe(created.id);
    expect(res.getResponseById('3').status).toBe(204);
    const r4 = res.getResponseById('4');
    expect(r4.status).toBe(200);
    expect(await bodyOf(r4)).toMatchObject({ id: created.id, jobTitle: 'Batched' });
    expect([...res.getResponses().keys()].sort()).toEqual(['1', '2', '3', '4']);
  });

  it('does not run requests whose dependency failed (424), and changes nothing', async () => {
    const victim = await client.api('/users').post(newUser(t.tenant, 'victim'));
    const missing = randomUUID();
    const res = await runBatch(client, [
      step('a', 'GET', `/users/${missing}`),
      step('b', 'PATCH', `/users/${victim.id}`, { jobTitle: 'Should not happen' }, ['a']),
      step('c', 'DELETE', `/users/${victim.id}`, undefined, ['b']),
    ]);
    const a = res.getResponseById('a');
    expect(a.status).toBe(404);
    expect((await bodyOf(a)).error.code).toBe('Request_ResourceNotFound');
    expect(res.getResponseById('b').status).toBe(424);
    expect(res.getResponseById('c').status).toBe(424);
    const after = await client.api(`/users/${victim.id}`).select('jobTitle').get();
    expect(after.jobTitle).toBeNull();
  });

  it('returns each inner status of independent requests, errors in Graph shape', async () => {
    const res = await runBatch(client, [
      step('ok', 'GET', '/users?$top=1&$select=id'),
      step('org', 'GET', '/organization'),
      step('bad', 'POST', '/users', { displayName: 'No UPN' }),
      step('nf', 'DELETE', `/groups/${randomUUID()}`),
    ]);
    expect(res.getResponseById('ok').status).toBe(200);
    expect((await bodyOf(res.getResponseById('org'))).value[0].id).toBe(t.tenant.id);
    const bad = res.getResponseById('bad');
    expect(bad.status).toBe(400);
    const body = await bodyOf(bad);
    expect(body.error.code).toBe('Request_BadRequest');
    expect(body.error.message).toMatch(/accountEnabled|mailNickname|userPrincipalName/);
    expect(res.getResponseById('nf').status).toBe(404);
  });

  it('refuses more than 20 requests with a GraphError 400', async () => {
    const requests = Array.from({ length: 21 }, (_, i) => ({ id: String(i + 1), method: 'GET', url: '/organization' }));
    const e = await graphError(client.api('/$batch').post({ requests }));
    expect(e.statusCode).toBe(400);
    expect(e.message).toMatch(/20/);
  });
});

describe('errors surface as GraphError', () => {
  let t: TestTenant;
  let client: Client;
  beforeAll(async () => {
    t = await cloud.createTenant('errs');
    client = await clientFor(t);
  });

  it('404 Request_ResourceNotFound with a request id', async () => {
    const e = await graphError(client.api(`/users/${randomUUID()}`).get());
    expect(e.statusCode).toBe(404);
    expect(e.code).toBe('Request_ResourceNotFound');
    expect(e.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(e.date).toBeInstanceOf(Date);
  });

  it('400 naming the missing property, and the duplicate UPN conflict', async () => {
    const { mailNickname: _m, ...noNick } = newUser(t.tenant, 'x');
    const e = await graphError(client.api('/users').post(noNick));
    expect(e.statusCode).toBe(400);
    expect(e.code).toBe('Request_BadRequest');
    expect(e.message).toMatch(/mailNickname/);

    await client.api('/users').post(newUser(t.tenant, 'dup'));
    const dup = await graphError(client.api('/users').post(newUser(t.tenant, 'dup')));
    expect(dup.statusCode).toBe(400);
    expect(dup.message).toMatch(/userPrincipalName/);
    // GraphError.body is the JSON of the response's "error" object.
    expect(JSON.parse(dup.body as string).details[0].code).toBe('ObjectConflict');
  });

  it('400 for a broken $filter and an unknown query option', async () => {
    const f = await graphError(client.api('/users').filter("displayName eq 'unterminated").get());
    expect(f.statusCode).toBe(400);
    const o = await graphError(client.api('/users?$frobnicate=1').get());
    expect(o.statusCode).toBe(400);
    expect(o.message).toMatch(/\$frobnicate/);
  });

  it('403 Authorization_RequestDenied for a read-only app that writes', async () => {
    const reader = await clientFor(t, 'read');
    expect((await reader.api('/users').get()).value.length).toBeGreaterThan(0);
    const e = await graphError(reader.api('/users').post(newUser(t.tenant, 'nope')));
    expect(e.statusCode).toBe(403);
    expect(e.code).toBe('Authorization_RequestDenied');
  });

  it('401 InvalidAuthenticationToken for a token Nimbus did not issue', async () => {
    const forged = Client.init({
      baseUrl: cloud.url,
      customHosts: new Set([new URL(cloud.url).hostname]),
      authProvider: (done) => done(null, 'eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ4In0.'),
    });
    const e = await graphError(forged.api('/users').get());
    expect(e.statusCode).toBe(401);
    expect(e.code).toBe('InvalidAuthenticationToken');
  });
});

describe('tenant isolation', () => {
  let a: TestTenant;
  let b: TestTenant;
  let clientA: Client;
  let clientB: Client;
  let userA: { id: string; userPrincipalName: string };
  let userB: { id: string; userPrincipalName: string };
  let groupA: { id: string };
  let groupB: { id: string };

  beforeAll(async () => {
    a = await cloud.createTenant('iso-a');
    b = await cloud.createTenant('iso-b');
    clientA = await clientFor(a);
    clientB = await clientFor(b);
    userA = await clientA.api('/users').post(newUser(a.tenant, 'alice', { displayName: 'Shared Name' }));
    userB = await clientB.api('/users').post(newUser(b.tenant, 'bert', { displayName: 'Shared Name', jobTitle: 'Original' }));
    groupA = await clientA.api('/groups').post({ displayName: 'Group A', mailEnabled: false, mailNickname: 'ga', securityEnabled: true });
    groupB = await clientB.api('/groups').post({ displayName: 'Group B', mailEnabled: false, mailNickname: 'gb', securityEnabled: true });
    await cloud.svc.domains.add(cliActor(b.tenant.id), 'iso-b.example');
    await cloud.svc.domains.verify(cliActor(b.tenant.id), 'iso-b.example', { force: true });
  });

  /** B's user and group are as they were. */
  async function bUntouched() {
    const u = await clientB.api(`/users/${userB.id}`).select('jobTitle,displayName').get();
    expect(u).toMatchObject({ id: userB.id, jobTitle: 'Original', displayName: 'Shared Name' });
    expect((await clientB.api(`/groups/${groupB.id}`).get()).displayName).toBe('Group B');
    expect((await clientB.api(`/groups/${groupB.id}/members`).get()).value).toEqual([]);
  }

  it("lists and filters only the token's own tenant", async () => {
    const users = await clientA.api('/users').filter("displayName eq 'Shared Name'").get();
    expect(users.value.map((u: any) => u.id)).toEqual([userA.id]);
    const byUpn = await clientA.api('/users').filter(`userPrincipalName eq '${userB.userPrincipalName}'`).get();
    expect(byUpn.value).toEqual([]);
    const groups = await clientA.api('/groups').get();
    expect(groups.value.map((g: any) => g.id)).toEqual([groupA.id]);
    const domains = await clientA.api('/domains').get();
    expect(domains.value.map((d: any) => d.id)).toEqual([a.tenant.initial_domain]);
    const count = await clientA.api('/users/$count').header('ConsistencyLevel', 'eventual').responseType(ResponseType.TEXT).get();
    expect(Number(count)).toBe(1);
  });

  it("answers 404 for B's objects addressed by id or UPN, and changes nothing", async () => {
    for (const p of [
      () => clientA.api(`/users/${userB.id}`).get(),
      () => clientA.api(`/users/${userB.userPrincipalName}`).get(),
      () => clientA.api(`/users/${userB.id}`).patch({ jobTitle: 'Hijacked' }),
      () => clientA.api(`/users/${userB.id}`).delete(),
      () => clientA.api(`/users/${userB.id}/manager`).get(),
      () => clientA.api(`/groups/${groupB.id}`).get(),
      () => clientA.api(`/groups/${groupB.id}`).patch({ displayName: 'Hijacked' }),
      () => clientA.api(`/groups/${groupB.id}`).delete(),
      () => clientA.api(`/groups/${groupB.id}/members`).get(),
      () => clientA.api(`/groups/${groupB.id}/members/$ref`).post({ '@odata.id': `${cloud.url}/v1.0/directoryObjects/${userA.id}` }),
      () => clientA.api(`/directoryObjects/${userB.id}`).get(),
      () => clientA.api(`/domains/iso-b.example`).get(),
      () => clientA.api(`/domains/iso-b.example`).delete(),
      () => clientA.api(`/domains/${b.tenant.initial_domain}/verificationDnsRecords`).get(),
    ]) {
      const e = await graphError(p());
      expect(e.statusCode, e.message).toBe(404);
    }
    await bUntouched();
  });

  it("cannot reference B's objects from A's objects", async () => {
    const add = await graphError(clientA.api(`/groups/${groupA.id}/members/$ref`).post({ '@odata.id': `${cloud.url}/v1.0/directoryObjects/${userB.id}` }));
    expect(add.statusCode).toBe(404);
    const mgr = await graphError(clientA.api(`/users/${userA.id}/manager/$ref`).put({ '@odata.id': `${cloud.url}/v1.0/users/${userB.id}` }));
    expect(mgr.statusCode).toBe(404);
    const bind = await graphError(
      clientA.api('/groups').post({ displayName: 'Binder', mailEnabled: false, mailNickname: 'binder', securityEnabled: true, 'members@odata.bind': [`${cloud.url}/v1.0/directoryObjects/${userB.id}`] }),
    );
    expect(bind.statusCode).toBe(404);
    expect((await clientA.api(`/groups/${groupA.id}/members`).get()).value).toEqual([]);
    expect((await clientA.api('/groups').filter("displayName eq 'Binder'").get()).value).toEqual([]);
    await bUntouched();
  });

  it("cannot restore, read or purge B's recycle bin", async () => {
    const doomed = await clientB.api('/users').post(newUser(b.tenant, 'doomed'));
    await clientB.api(`/users/${doomed.id}`).delete();
    for (const p of [
      () => clientA.api(`/directory/deletedItems/${doomed.id}`).get(),
      () => clientA.api(`/directory/deletedItems/${doomed.id}/restore`).post({}),
      () => clientA.api(`/directory/deletedItems/${doomed.id}`).delete(),
    ])
      expect((await graphError(p())).statusCode).toBe(404);
    expect((await clientA.api('/directory/deletedItems/microsoft.graph.user').get()).value).toEqual([]);
    expect((await clientB.api(`/directory/deletedItems/${doomed.id}`).get()).id).toBe(doomed.id);
  });

  it("cannot verify a domain verified in B, nor use B's domain in a UPN", async () => {
    const added = await clientA.api('/domains').post({ id: 'iso-b.example' });
    expect(added.isVerified).toBe(false);
    const records = await clientA.api('/domains/iso-b.example/verificationDnsRecords').get();
    dns.set('iso-b.example', [records.value[0].text as string]);
    const e = await graphError(clientA.api('/domains/iso-b.example/verify').post({}));
    expect(e.statusCode).toBe(400);
    expect(e.message).toMatch(/another tenant/);
    expect((await clientA.api('/domains/iso-b.example').get()).isVerified).toBe(false);
    expect((await clientB.api('/domains/iso-b.example').get()).isVerified).toBe(true);
    expect(records.value[0].text).toMatch(new RegExp(`^${TXT_PREFIX}`));

    const upn = await graphError(clientA.api('/users').post(newUser(a.tenant, 'sneaky', { userPrincipalName: 'sneaky@iso-b.example' })));
    expect(upn.statusCode).toBe(400);
    expect(upn.message).toMatch(/not a verified domain/);
    await clientA.api('/domains/iso-b.example').delete();
  });

  it("keeps $batch inside the caller's tenant, even with B's token on an inner request", async () => {
    const tokenB = (await credential(b.tenant.id, await b.credentials()).getToken(SCOPE)).token;
    const res = await runBatch(clientA, [
      step('get', 'GET', `/users/${userB.id}`),
      step('patch', 'PATCH', `/users/${userB.id}`, { jobTitle: 'Hijacked' }),
      step('del', 'DELETE', `/groups/${groupB.id}`),
      step('ref', 'POST', `/groups/${groupB.id}/members/$ref`, { '@odata.id': `${cloud.url}/v1.0/directoryObjects/${userA.id}` }),
      {
        id: 'smuggled',
        request: new Request(`${cloud.url}/users?$select=id`, { method: 'GET', headers: { authorization: `Bearer ${tokenB}` } }),
      },
    ]);
    for (const id of ['get', 'patch', 'del', 'ref']) expect(res.getResponseById(id).status, id).toBe(404);
    const smuggled = res.getResponseById('smuggled');
    expect(smuggled.status).toBe(200);
    expect((await bodyOf(smuggled)).value.map((u: any) => u.id)).toEqual([userA.id]);
    await bUntouched();
  });

  it("refuses B's delta token and sees none of B's changes in its own delta", async () => {
    const roundB = await iterateAll(clientB, await clientB.api('/users/delta').get());
    const e = await graphError(clientA.api(roundB.deltaLink!).get());
    expect(e.statusCode).toBe(400);
    const roundA = await iterateAll(clientA, await clientA.api('/users/delta').get());
    await clientB.api(`/users/${userB.id}`).patch({ jobTitle: 'Changed in B' });
    const nextA = await iterateAll(clientA, await clientA.api(roundA.deltaLink!).get());
    expect(nextA.items).toEqual([]);
    await clientB.api(`/users/${userB.id}`).patch({ jobTitle: 'Original' });
  });

  it("shows only its own tenant in organization and audit logs", async () => {
    const e = await graphError(clientA.api(`/organization/${b.tenant.id}`).get());
    expect([400, 404]).toContain(e.statusCode);
    expect(e.body).not.toMatch(new RegExp(b.tenant.name));
    const audits = await clientA.api('/auditLogs/directoryAudits').top(999).get();
    const targets = JSON.stringify(audits.value);
    expect(targets).toContain(userA.id);
    expect(targets).not.toContain(userB.id);
    expect(targets).not.toContain(groupB.id);
  });
});
