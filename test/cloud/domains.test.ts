// Custom domains through the Graph API, verified against a real DNS server on loopback
// through the real resolver: add, verify (before and after the TXT record is published),
// one tenant per verified domain, subdomains, default, remove, invalid names, UPNs on
// unverified domains, and tenant resolution by verified domains only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTxtLookup } from '../../src/cloud/dns.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

let dns: TestDnsServer;
let cloud: TestCloud;
let a: TestTenant;
let b: TestTenant;
let ta: string;
let tb: string;

beforeAll(async () => {
  dns = await startDnsServer();
  cloud = await startCloud({ lookupTxt: createTxtLookup([dns.address], 2000) });
  a = await cloud.createTenant('dom-a');
  b = await cloud.createTenant('dom-b');
  ta = await a.token();
  tb = await b.token();
});

afterAll(async () => {
  await cloud?.close();
  await dns?.close();
});

async function txtRecordOf(token: string, domain: string): Promise<string> {
  const r = await cloud.graph(token, `domains/${domain}/verificationDnsRecords`);
  expect(r.status).toBe(200);
  expect(r.body.value).toHaveLength(1);
  const rec = r.body.value[0];
  expect(rec.recordType).toBe('Txt');
  expect(rec.label).toBe(domain);
  return rec.text as string;
}

async function tokenAt(tenantRef: string, creds: { clientId: string; clientSecret: string }) {
  const res = await cloud.app.inject({
    method: 'POST',
    url: `/${tenantRef}/oauth2/v2.0/token`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: creds.clientId, client_secret: creds.clientSecret, scope: 'https://graph.microsoft.com/.default' }).toString(),
  });
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, any> };
}

describe('the test DNS server', () => {
  it('answers TXT queries from its map and NXDOMAIN otherwise, through the real resolver', async () => {
    const lookup = createTxtLookup([dns.address], 2000);
    dns.publish('probe.example', 'hello=world');
    dns.publish('probe.example', 'second');
    expect((await lookup('probe.example')).sort()).toEqual(['hello=world', 'second']);
    dns.unpublish('probe.example');
    await expect(lookup('probe.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(dns.queries).toContain('probe.example');
  });
});

describe('adding and verifying a domain', () => {
  it('adds an unverified domain with a TXT record to publish', async () => {
    const r = await cloud.graph(ta, 'domains', { method: 'POST', body: { id: 'Contoso.Example' } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ id: 'contoso.example', isVerified: false, isDefault: false, isInitial: false, authenticationType: 'Managed' });
    const text = await txtRecordOf(ta, 'contoso.example');
    expect(text).toMatch(/^nimbus-verification=[0-9a-f]{24}$/);
    const list = await cloud.graph(ta, 'domains');
    expect(list.body.value.map((d: any) => d.id).sort()).toEqual(['contoso.example', 'dom-a.onnimbus.net']);
  });

  it('refuses to verify before the record is published, with a message saying what it expected', async () => {
    const text = await txtRecordOf(ta, 'contoso.example');
    const r = await cloud.graph(ta, 'domains/contoso.example/verify', { method: 'POST' });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('Request_BadRequest');
    expect(r.body.error.message).toContain("Domain verification failed for 'contoso.example'");
    expect(r.body.error.message).toContain(text);
    expect(r.body.error.message).toContain('no TXT records were found');
    expect((await cloud.graph(ta, 'domains/contoso.example')).body.isVerified).toBe(false);
  });

  it('names the records it found when only a wrong one is published', async () => {
    dns.publish('contoso.example', 'v=spf1 -all');
    const r = await cloud.graph(ta, 'domains/contoso.example/verify', { method: 'POST' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("found only: 'v=spf1 -all'");
    expect((await cloud.graph(ta, 'domains/contoso.example')).body.isVerified).toBe(false);
  });

  it('verifies once the record is published (alongside others), and verifying again is harmless', async () => {
    dns.publish('contoso.example', await txtRecordOf(ta, 'contoso.example'));
    const r = await cloud.graph(ta, 'domains/contoso.example/verify', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: 'contoso.example', isVerified: true, isDefault: false });
    const again = await cloud.graph(ta, 'domains/contoso.example/verify', { method: 'POST' });
    expect(again.status).toBe(200);
    expect(again.body.isVerified).toBe(true);
    const org = await cloud.graph(ta, 'organization');
    expect(org.body.value[0].verifiedDomains.map((d: any) => d.name)).toContain('contoso.example');
  });

  it('refuses to verify in tenant B a domain verified in tenant A, even with B’s own record published', async () => {
    const add = await cloud.graph(tb, 'domains', { method: 'POST', body: { id: 'contoso.example' } });
    expect(add.status).toBe(201);
    expect(add.body.isVerified).toBe(false);
    const textB = await txtRecordOf(tb, 'contoso.example');
    expect(textB).not.toBe(await txtRecordOf(ta, 'contoso.example'));
    dns.publish('contoso.example', textB);
    const r = await cloud.graph(tb, 'domains/contoso.example/verify', { method: 'POST' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('already verified in another tenant');
    expect((await cloud.graph(tb, 'domains/contoso.example')).body.isVerified).toBe(false);
    // Tenant A is unaffected.
    expect((await cloud.graph(ta, 'domains/contoso.example')).body.isVerified).toBe(true);
  });

  it('verifies a subdomain of a verified domain automatically, but not one of an unverified domain', async () => {
    const r = await cloud.graph(ta, 'domains', { method: 'POST', body: { id: 'sales.contoso.example' } });
    expect(r.status).toBe(201);
    expect(r.body.isVerified).toBe(true);
    // In tenant B the parent is unverified, so its subdomain is not verified either.
    const rb = await cloud.graph(tb, 'domains', { method: 'POST', body: { id: 'eu.contoso.example' } });
    expect(rb.status).toBe(201);
    expect(rb.body.isVerified).toBe(false);
    // A look-alike that is not a subdomain is not verified.
    const look = await cloud.graph(ta, 'domains', { method: 'POST', body: { id: 'notcontoso.example' } });
    expect(look.status).toBe(201);
    expect(look.body.isVerified).toBe(false);
  });

  it('refuses to add the same domain twice in one tenant', async () => {
    const r = await cloud.graph(ta, 'domains', { method: 'POST', body: { id: 'CONTOSO.example.' } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('already exists');
  });

  it('answers 404 for an unknown domain', async () => {
    const r = await cloud.graph(ta, 'domains/nowhere.example/verify', { method: 'POST' });
    expect(r.status).toBe(404);
    expect(r.body.error.message).toContain('nowhere.example');
  });

  it('lets the read role list but not add or verify domains', async () => {
    const read = await a.token('read');
    expect((await cloud.graph(read, 'domains')).status).toBe(200);
    const add = await cloud.graph(read, 'domains', { method: 'POST', body: { id: 'readonly.example' } });
    expect(add.status).toBe(403);
    expect(add.body.error.code).toBe('Authorization_RequestDenied');
    const v = await cloud.graph(read, 'domains/notcontoso.example/verify', { method: 'POST' });
    expect(v.status).toBe(403);
  });
});

describe('invalid domain names', () => {
  const cases: [unknown, string][] = [
    ['', 'it is empty'],
    ['localhost', 'at least two labels'],
    ['-bad.example', "label '-bad'"],
    ['bad_label.example', "label 'bad_label'"],
    ['a..example', "label ''"],
    [`${'x'.repeat(64)}.example`, 'not a valid DNS label'],
    [`${'abcdefghi.'.repeat(26)}com`, 'longer than 253'],
    ['10.0.0.1', 'top-level label is numeric'],
    ['spaced name.example', 'not a valid DNS label'],
    ['münchen.example', 'not a valid DNS label'],
    ['sneaky.onnimbus.net', 'service suffix'],
    ['onnimbus.net', 'service suffix'],
  ];
  it.each(cases)('refuses %j', async (id, why) => {
    const r = await cloud.graph(ta, 'domains', { method: 'POST', body: { id } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain(why);
    expect(r.body.error.target).toBe('id');
  });

  it('refuses a missing or non-string id and unknown properties', async () => {
    for (const body of [{}, { id: 42 }, { id: null }, { id: ['a.example'] }]) {
      const r = await cloud.graph(ta, 'domains', { method: 'POST', body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.message).toMatch(/'id'/);
    }
    const extra = await cloud.graph(ta, 'domains', { method: 'POST', body: { id: 'ok.example', isVerified: true } });
    expect(extra.status).toBe(400);
    expect(extra.body.error.message).toContain('isVerified');
    expect((await cloud.graph(ta, 'domains/ok.example')).status).toBe(404);
  });
});

describe('default domain', () => {
  it('only a verified domain can become the default, and there is always exactly one', async () => {
    const un = await cloud.graph(ta, 'domains/notcontoso.example', { method: 'PATCH', body: { isDefault: true } });
    expect(un.status).toBe(400);
    expect(un.body.error.message).toContain('not verified');
    const ok = await cloud.graph(ta, 'domains/contoso.example', { method: 'PATCH', body: { isDefault: true } });
    expect(ok.status).toBe(204);
    const list = (await cloud.graph(ta, 'domains')).body.value as any[];
    expect(list.filter((d) => d.isDefault).map((d) => d.id)).toEqual(['contoso.example']);
    expect(list.filter((d) => d.isInitial).map((d) => d.id)).toEqual(['dom-a.onnimbus.net']);
    // A Microsoft 365 group now gets its mail address on the default domain.
    const g = await cloud.graph(ta, 'groups', { method: 'POST', body: { displayName: 'Team', mailEnabled: true, mailNickname: 'team', securityEnabled: false, groupTypes: ['Unified'] } });
    expect(g.status).toBe(201);
    expect(g.body.mail).toBe('team@contoso.example');
    expect((await cloud.graph(ta, `groups/${g.body.id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('refuses isDefault false or other properties', async () => {
    expect((await cloud.graph(ta, 'domains/contoso.example', { method: 'PATCH', body: { isDefault: false } })).status).toBe(400);
    const r = await cloud.graph(ta, 'domains/contoso.example', { method: 'PATCH', body: { isVerified: true } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('isVerified');
  });
});

describe('removing a domain', () => {
  it('refuses the initial domain and the default domain', async () => {
    const init = await cloud.graph(ta, 'domains/dom-a.onnimbus.net', { method: 'DELETE' });
    expect(init.status).toBe(400);
    expect(init.body.error.message).toContain('initial domain');
    const def = await cloud.graph(ta, 'domains/contoso.example', { method: 'DELETE' });
    expect(def.status).toBe(400);
    expect(def.body.error.message).toContain('default domain');
    expect((await cloud.graph(ta, 'domains/contoso.example', { method: 'PATCH', body: { isDefault: true } })).status).toBe(204);
    // Back to the initial domain as default for the rest of the file.
    expect((await cloud.graph(ta, 'domains/dom-a.onnimbus.net', { method: 'PATCH', body: { isDefault: true } })).status).toBe(204);
  });

  it('is refused while a user’s UPN or mail uses it, and allowed after', async () => {
    const t = a.tenant;
    const u = await cloud.graph(ta, 'users', { method: 'POST', body: newUser(t, 'dora', { userPrincipalName: 'Dora@Sales.Contoso.Example' }) });
    expect(u.status).toBe(201);
    let r = await cloud.graph(ta, 'domains/sales.contoso.example', { method: 'DELETE' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('dora@sales.contoso.example');
    // UPN moves away, mail still on the domain: still refused.
    expect((await cloud.graph(ta, `users/${u.body.id}`, { method: 'PATCH', body: { userPrincipalName: `dora@${t.initial_domain}`, mail: 'dora.m@sales.contoso.example' } })).status).toBe(204);
    r = await cloud.graph(ta, 'domains/sales.contoso.example', { method: 'DELETE' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('dora.m@sales.contoso.example');
    // Mail moves away too: now it can go.
    expect((await cloud.graph(ta, `users/${u.body.id}`, { method: 'PATCH', body: { mail: `dora@${t.initial_domain}` } })).status).toBe(204);
    r = await cloud.graph(ta, 'domains/sales.contoso.example', { method: 'DELETE' });
    expect(r.status).toBe(204);
    expect((await cloud.graph(ta, 'domains/sales.contoso.example')).status).toBe(404);
  });

  it('is refused while a deleted user in the recycle bin still has a UPN on it', async () => {
    const u = await cloud.graph(ta, 'users', { method: 'POST', body: newUser(a.tenant, 'ned', { userPrincipalName: 'ned@contoso.example' }) });
    expect(u.status).toBe(201);
    expect((await cloud.graph(ta, `users/${u.body.id}`, { method: 'DELETE' })).status).toBe(204);
    const r = await cloud.graph(ta, 'domains/contoso.example', { method: 'DELETE' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('ned@contoso.example (deleted)');
    expect((await cloud.graph(ta, `directory/deletedItems/${u.body.id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('once removed in tenant A, the domain can be verified in tenant B', async () => {
    expect((await cloud.graph(ta, 'domains/contoso.example', { method: 'DELETE' })).status).toBe(204);
    dns.unpublish('contoso.example');
    dns.publish('contoso.example', await txtRecordOf(tb, 'contoso.example'));
    const r = await cloud.graph(tb, 'domains/contoso.example/verify', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body.isVerified).toBe(true);
  });
});

describe('users and unverified domains', () => {
  it('refuses a UPN on an unverified domain of the tenant, and on a domain of another tenant', async () => {
    const un = await cloud.graph(ta, 'users', { method: 'POST', body: newUser(a.tenant, 'uma', { userPrincipalName: 'uma@notcontoso.example' }) });
    expect(un.status).toBe(400);
    expect(un.body.error.target).toBe('userPrincipalName');
    expect(un.body.error.message).toContain("'notcontoso.example' is not a verified domain of this tenant");
    // contoso.example is now verified in B, not in A.
    const other = await cloud.graph(ta, 'users', { method: 'POST', body: newUser(a.tenant, 'uma', { userPrincipalName: 'uma@contoso.example' }) });
    expect(other.status).toBe(400);
    expect(other.body.error.target).toBe('userPrincipalName');
    // Changing an existing user's UPN to an unverified domain is refused as well.
    const ok = await cloud.graph(ta, 'users', { method: 'POST', body: newUser(a.tenant, 'uma') });
    expect(ok.status).toBe(201);
    const p = await cloud.graph(ta, `users/${ok.body.id}`, { method: 'PATCH', body: { userPrincipalName: 'uma@notcontoso.example' } });
    expect(p.status).toBe(400);
    expect(p.body.error.target).toBe('userPrincipalName');
    expect((await cloud.graph(ta, `users/${ok.body.id}`)).body.userPrincipalName).toBe(`uma@${a.tenant.initial_domain}`);
  });
});

describe('tenant resolution by domain', () => {
  it('issues tokens at /{verified domain}/oauth2/v2.0/token, never at an unverified one', async () => {
    const credsA = await a.credentials();
    const credsB = await b.credentials();
    // contoso.example is verified in B: it identifies tenant B.
    const okB = await tokenAt('contoso.example', credsB);
    expect(okB.status).toBe(200);
    expect(typeof okB.body.access_token).toBe('string');
    const me = await cloud.graph(okB.body.access_token as string, 'organization');
    expect(me.body.value[0].id).toBe(b.tenant.id);
    // A's credentials at B's domain: not an app of that tenant.
    const wrong = await tokenAt('contoso.example', credsA);
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('unauthorized_client');
    // notcontoso.example is only unverified (in A): it identifies no tenant.
    const un = await tokenAt('notcontoso.example', credsA);
    expect(un.status).toBe(400);
    expect(un.body.error_codes).toEqual([90002]);
    // eu.contoso.example is unverified in B too.
    expect((await tokenAt('eu.contoso.example', credsB)).status).toBe(400);
    // The initial domain, the name and the id work.
    for (const ref of [a.tenant.initial_domain, a.tenant.name, a.tenant.id, a.tenant.initial_domain.toUpperCase()]) {
      const r = await tokenAt(ref, credsA);
      expect(r.status, ref).toBe(200);
    }
  });

  it('publishes OpenID metadata for a verified domain only', async () => {
    const ok = await cloud.app.inject({ method: 'GET', url: '/contoso.example/v2.0/.well-known/openid-configuration' });
    expect(ok.statusCode).toBe(200);
    expect(JSON.parse(ok.body).issuer).toContain(b.tenant.id);
    const un = await cloud.app.inject({ method: 'GET', url: '/notcontoso.example/v2.0/.well-known/openid-configuration' });
    expect(un.statusCode).toBe(400);
  });
});

describe('resolver from configuration', () => {
  it('verifies through the dnsServers setting as well', async () => {
    const c2 = await startCloud({ config: { dnsServers: [dns.address] } });
    try {
      const t = await c2.createTenant('cfg');
      const tok = await t.token();
      expect((await c2.graph(tok, 'domains', { method: 'POST', body: { id: 'fabrikam.example' } })).status).toBe(201);
      const fail = await c2.graph(tok, 'domains/fabrikam.example/verify', { method: 'POST' });
      expect(fail.status).toBe(400);
      const text = (await c2.graph(tok, 'domains/fabrikam.example/verificationDnsRecords')).body.value[0].text as string;
      dns.publish('fabrikam.example', text);
      const ok = await c2.graph(tok, 'domains/fabrikam.example/verify', { method: 'POST' });
      expect(ok.status).toBe(200);
      expect(ok.body.isVerified).toBe(true);
    } finally {
      await c2.close();
    }
  });
});
