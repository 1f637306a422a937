// The OAuth2 side of Nimbus over plain HTTP: the client-credentials token endpoint, OpenID
// discovery and JWKS, token lifetime on the injectable clock, and how the Graph API treats
// missing, expired, forged and under-privileged tokens. A real server on loopback, no mocks.
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/shared/clock.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

const SCOPE = 'https://graph.microsoft.com/.default';

// The server, the SDK and scrypt share two cores with other suites: allow for a busy machine.
vi.setConfig({ testTimeout: 30_000, hookTimeout: 60_000 });

interface Creds {
  clientId: string;
  clientSecret: string;
}

async function postToken(cloud: TestCloud, tenantRef: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${cloud.url}/${encodeURIComponent(tenantRef)}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

const clientCredentials = (c: Creds, scope = SCOPE) => ({ grant_type: 'client_credentials', client_id: c.clientId, client_secret: c.clientSecret, scope });

async function tokenFor(cloud: TestCloud, tenantRef: string, c: Creds): Promise<string> {
  const r = await postToken(cloud, tenantRef, clientCredentials(c));
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.access_token as string;
}

async function graph(cloud: TestCloud, path: string, init: { token?: string; method?: string; body?: unknown; authorization?: string } = {}) {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.authorization) headers.authorization = init.authorization;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${cloud.url}/v1.0/${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text)) : undefined };
}

/** Graph's error JSON: code, message, innerError with the response's request-id and a date. */
function expectGraphError(r: { status: number; headers: Headers; body: any }, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(r.body.error.code).toBe(code);
  expect(typeof r.body.error.message).toBe('string');
  expect(r.body.error.message.length).toBeGreaterThan(10);
  expect(r.body.error.innerError['request-id']).toBe(r.headers.get('request-id'));
  expect(r.body.error.innerError.date).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
}

describe('token endpoint and Graph authentication', () => {
  let cloud: TestCloud;
  let a: TestTenant;
  let b: TestTenant;
  let credsA: Creds;

  beforeAll(async () => {
    cloud = await startCloud();
    a = await cloud.createTenant('auth-a');
    b = await cloud.createTenant('auth-b');
    credsA = await a.credentials();
  });
  afterAll(async () => cloud?.close());

  describe('POST /{tenant}/oauth2/v2.0/token', () => {
    it('issues a bearer token by tenant id and by tenant name', async () => {
      for (const ref of [a.tenant.id, a.tenant.name]) {
        const r = await postToken(cloud, ref, clientCredentials(credsA));
        expect(r.status).toBe(200);
        expect(r.headers.get('cache-control')).toBe('no-store');
        expect(r.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
        const claims = decodeJwt(r.body.access_token);
        expect(claims.tid).toBe(a.tenant.id);
        expect(claims.appid).toBe(credsA.clientId);
        expect((await graph(cloud, 'organization', { token: r.body.access_token })).body.value[0].id).toBe(a.tenant.id);
      }
    });

    it('resolves the tenant through verified domains only', async () => {
      await cloud.svc.domains.add(cliActor(a.tenant.id), 'verified-a.example');
      await cloud.svc.domains.verify(cliActor(a.tenant.id), 'verified-a.example', { force: true });
      await cloud.svc.domains.add(cliActor(a.tenant.id), 'unverified-a.example');
      expect((await postToken(cloud, 'verified-a.example', clientCredentials(credsA))).status).toBe(200);
      const r = await postToken(cloud, 'unverified-a.example', clientCredentials(credsA));
      expect(r.status).toBe(400);
      expect(r.body.error_codes).toEqual([90002]);
      expect(r.body.access_token).toBeUndefined();
    });

    it('answers a wrong secret with 401 invalid_client, without echoing it', async () => {
      const wrong = `${credsA.clientSecret.slice(0, -2)}zz`;
      const r = await postToken(cloud, a.tenant.id, clientCredentials({ ...credsA, clientSecret: wrong }));
      expect(r.status).toBe(401);
      expect(r.body.error).toBe('invalid_client');
      expect(r.body.error_codes).toEqual([7000215]);
      expect(r.body.error_description).toMatch(/^AADSTS7000215: /);
      expect(JSON.stringify(r.body)).not.toContain(wrong);
      expect(r.body.access_token).toBeUndefined();
    });

    it('answers an unknown client with 400 unauthorized_client', async () => {
      const r = await postToken(cloud, a.tenant.id, clientCredentials({ clientId: randomUUID(), clientSecret: 'nbs_whatever' }));
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('unauthorized_client');
      expect(r.body.error_codes).toEqual([700016]);
    });

    it("refuses an app of another tenant at this tenant's endpoint, even with its right secret", async () => {
      const credsB = await b.credentials();
      const r = await postToken(cloud, a.tenant.id, clientCredentials(credsB));
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('unauthorized_client');
      expect(r.body.access_token).toBeUndefined();
      // ...while at its own tenant's endpoint it works.
      expect(decodeJwt(await tokenFor(cloud, b.tenant.name, credsB)).tid).toBe(b.tenant.id);
    });

    it('answers an unknown tenant with 400', async () => {
      const r = await postToken(cloud, 'no-such-tenant', clientCredentials(credsA));
      expect(r.status).toBe(400);
      expect(r.body.error_description).toMatch(/no-such-tenant/);
    });

    it('requires a scope ending in /.default', async () => {
      for (const scope of ['', 'https://graph.microsoft.com/User.Read', 'openid profile']) {
        const r = await postToken(cloud, a.tenant.id, clientCredentials(credsA, scope));
        expect(r.status, scope).toBe(400);
        expect(r.body.error, scope).toBe('invalid_scope');
      }
      const { scope: _s, ...noScope } = clientCredentials(credsA);
      const r = await postToken(cloud, a.tenant.id, noScope);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_scope');
    });

    it('supports only the client_credentials grant', async () => {
      for (const grant of ['password', 'authorization_code', '']) {
        const r = await postToken(cloud, a.tenant.id, { ...clientCredentials(credsA), grant_type: grant });
        expect(r.status, grant).toBe(400);
        expect(r.body.error, grant).toBe('unsupported_grant_type');
      }
    });

    it('needs both client_id and client_secret', async () => {
      const { client_secret: _c, ...noSecret } = clientCredentials(credsA);
      const r = await postToken(cloud, a.tenant.id, noSecret);
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_request');
    });

    it('accepts client_secret_basic (HTTP Basic authentication)', async () => {
      const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
      const ok = await postToken(cloud, a.tenant.id, { grant_type: 'client_credentials', scope: SCOPE }, { authorization: basic(credsA.clientId, credsA.clientSecret) });
      expect(ok.status).toBe(200);
      expect(decodeJwt(ok.body.access_token).appid).toBe(credsA.clientId);
      expect((await graph(cloud, 'users', { token: ok.body.access_token })).status).toBe(200);
      const bad = await postToken(cloud, a.tenant.id, { grant_type: 'client_credentials', scope: SCOPE }, { authorization: basic(credsA.clientId, 'nbs_wrong') });
      expect(bad.status).toBe(401);
      expect(bad.body.error).toBe('invalid_client');
    });

    it('answers malformed client credentials with 4xx OAuth errors, never a 500', async () => {
      const malformedBasic = await postToken(cloud, a.tenant.id, { grant_type: 'client_credentials', scope: SCOPE }, { authorization: `Basic ${Buffer.from('%zz:%E0%A4%A').toString('base64')}` });
      expect(malformedBasic.status).toBe(401);
      expect(malformedBasic.body.error).toBe('invalid_client');

      for (const body of [
        { grant_type: 'client_credentials', client_id: 123, client_secret: credsA.clientSecret, scope: SCOPE },
        { grant_type: 'client_credentials', client_id: credsA.clientId, client_secret: credsA.clientSecret, scope: 5 },
        { grant_type: 'client_credentials', client_id: [credsA.clientId], client_secret: { s: 1 }, scope: SCOPE },
      ]) {
        const res = await fetch(`${cloud.url}/${a.tenant.id}/oauth2/v2.0/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        expect(res.status, JSON.stringify(body)).toBe(400);
        const err = (await res.json()) as any;
        expect(err.error, JSON.stringify(body)).toMatch(/^invalid_/);
        expect(err.access_token).toBeUndefined();
      }
    });

    it('issues a token for another audience that the Graph API then refuses', async () => {
      const r = await postToken(cloud, a.tenant.id, clientCredentials(credsA, 'api://some-other-api/.default'));
      expect(r.status).toBe(200);
      expect(decodeJwt(r.body.access_token).aud).toBe('api://some-other-api');
      const g = await graph(cloud, 'users', { token: r.body.access_token });
      expectGraphError(g, 401, 'InvalidAuthenticationToken');
      expect(g.body.error.message).toMatch(/aud/);
    });
  });

  describe('OpenID discovery and JWKS', () => {
    it('publishes metadata whose JWKS verifies the issued tokens', async () => {
      const res = await fetch(`${cloud.url}/${a.tenant.name}/v2.0/.well-known/openid-configuration`);
      expect(res.status).toBe(200);
      const meta = (await res.json()) as Record<string, string>;
      expect(meta.issuer).toBe(`${cloud.url}/${a.tenant.id}/v2.0`);
      expect(meta.token_endpoint).toBe(`${cloud.url}/${a.tenant.id}/oauth2/v2.0/token`);
      expect(meta.jwks_uri).toMatch(new RegExp(`^${cloud.url}/`));

      const jwks = (await (await fetch(meta.jwks_uri!)).json()) as { keys: Record<string, unknown>[] };
      expect(jwks.keys.length).toBeGreaterThan(0);
      for (const k of jwks.keys) {
        expect(k).toMatchObject({ kty: 'RSA', use: 'sig', alg: 'RS256' });
        // Only the public half is published.
        for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(k[priv]).toBeUndefined();
      }

      const token = await tokenFor(cloud, a.tenant.name, credsA);
      expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(token).kid);
      const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(meta.jwks_uri!)), {
        issuer: meta.issuer!,
        audience: 'https://graph.microsoft.com',
        algorithms: ['RS256'],
        currentDate: cloud.clock.now(),
      });
      expect(protectedHeader.alg).toBe('RS256');
      expect(payload).toMatchObject({ tid: a.tenant.id, appid: credsA.clientId, sub: credsA.clientId });
      expect(payload.roles).toEqual(expect.arrayContaining(['Directory.ReadWrite.All']));
      expect(payload.exp! - payload.iat!).toBe(3600);
    });

    it('answers metadata for an unknown tenant with 400', async () => {
      const res = await fetch(`${cloud.url}/nobody-here/v2.0/.well-known/openid-configuration`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).error).toBe('invalid_tenant');
    });
  });

  describe('Graph API authentication and authorization', () => {
    it('answers a request without Authorization with 401, Graph error JSON and WWW-Authenticate', async () => {
      const r = await graph(cloud, 'users');
      expectGraphError(r, 401, 'InvalidAuthenticationToken');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect(r.body.value).toBeUndefined();
    });

    it('authenticates Graph routes however their path is spelled', async () => {
      // The router decodes percent-escapes and ignores case: each of these reaches a Graph handler.
      for (const path of ['/V1.0/users', '/v1%2E0/users', '/v1%2e0/organization', '/%761.0/groups']) {
        const res = await fetch(`${cloud.url}${path}`);
        expect(res.status, path).toBe(401);
        expect(((await res.json()) as any).error.code, path).toBe('InvalidAuthenticationToken');
      }
      const batch = await fetch(`${cloud.url}/v1%2E0/$batch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ requests: [{ id: '1', method: 'GET', url: '/users' }] }),
      });
      expect(batch.status).toBe(401);
    });

    it('answers a non-Bearer Authorization header with 401', async () => {
      const r = await graph(cloud, 'users', { authorization: `Basic ${Buffer.from(`${credsA.clientId}:${credsA.clientSecret}`).toString('base64')}` });
      expectGraphError(r, 401, 'InvalidAuthenticationToken');
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer /);
    });

    it('refuses tokens signed by another key, unsigned, or tampered with', async () => {
      const genuine = await tokenFor(cloud, a.tenant.id, credsA);
      expect((await graph(cloud, 'users', { token: genuine })).status).toBe(200);
      const claims = decodeJwt(genuine);
      const header = decodeProtectedHeader(genuine);

      // Same claims and kid, signed with an attacker's key.
      const { privateKey } = await generateKeyPair('RS256');
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: header.kid!, typ: 'JWT' }).sign(privateKey);
      // alg=none.
      const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const unsigned = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
      // The genuine signature over a payload claiming another tenant.
      const [h, , sig] = genuine.split('.');
      const tampered = `${h}.${enc({ ...claims, tid: b.tenant.id })}.${sig}`;

      for (const [what, token] of [['forged', forged], ['unsigned', unsigned], ['tampered', tampered], ['garbage', 'not-a-token']]) {
        const r = await graph(cloud, 'users', { token });
        expect(r.status, what).toBe(401);
        expect(r.body.error.code, what).toBe('InvalidAuthenticationToken');
        expect(r.body.value, what).toBeUndefined();
      }
    });

    it('lets a read-only app read but answers its writes with 403 in Graph shape, changing nothing', async () => {
      const reader = await tokenFor(cloud, a.tenant.id, await a.credentials('read'));
      const target = await cloud.svc.users.create(cliActor(a.tenant.id), newUser(a.tenant, 'readtarget'));
      expect((await graph(cloud, `users/${target.id as string}`, { token: reader })).status).toBe(200);

      const post = await graph(cloud, 'users', { token: reader, method: 'POST', body: newUser(a.tenant, 'byreader') });
      expectGraphError(post, 403, 'Authorization_RequestDenied');
      expect(post.body.error.message).toMatch(/read/);
      expectGraphError(await graph(cloud, `users/${target.id as string}`, { token: reader, method: 'PATCH', body: { jobTitle: 'Nope' } }), 403, 'Authorization_RequestDenied');
      expectGraphError(await graph(cloud, `users/${target.id as string}`, { token: reader, method: 'DELETE' }), 403, 'Authorization_RequestDenied');
      expectGraphError(await graph(cloud, 'domains', { token: reader, method: 'POST', body: { id: 'reader.example' } }), 403, 'Authorization_RequestDenied');

      const after = await cloud.svc.users.get(cliActor(a.tenant.id), target.id as string, 'jobTitle');
      expect(after.jobTitle).toBeNull();
      expect((await graph(cloud, `users/byreader@${a.tenant.initial_domain}`, { token: reader })).status).toBe(404);
    });

    it("stops accepting a deleted app's token at once", async () => {
      const { app, secret } = await cloud.svc.apps.create(cliActor(a.tenant.id), 'short-lived', 'readwrite');
      const creds = { clientId: app.client_id, clientSecret: secret };
      const token = await tokenFor(cloud, a.tenant.id, creds);
      expect((await graph(cloud, 'users', { token })).status).toBe(200);

      await cloud.svc.apps.remove(cliActor(a.tenant.id), app.client_id);
      const r = await graph(cloud, 'users', { token });
      expectGraphError(r, 401, 'InvalidAuthenticationToken');
      expect(r.body.error.message).toMatch(/no longer exists/);
      expect((await postToken(cloud, a.tenant.id, clientCredentials(creds))).status).toBe(400);
    });

    it('invalidates the old secret when the secret is rotated', async () => {
      const { app, secret: oldSecret } = await cloud.svc.apps.create(cliActor(a.tenant.id), 'rotating', 'readwrite');
      await tokenFor(cloud, a.tenant.id, { clientId: app.client_id, clientSecret: oldSecret });
      const { secret: newSecret } = await cloud.svc.apps.rotate(cliActor(a.tenant.id), app.client_id);
      expect(newSecret).not.toBe(oldSecret);

      const old = await postToken(cloud, a.tenant.id, clientCredentials({ clientId: app.client_id, clientSecret: oldSecret }));
      expect(old.status).toBe(401);
      expect(old.body.error).toBe('invalid_client');
      const token = await tokenFor(cloud, a.tenant.id, { clientId: app.client_id, clientSecret: newSecret });
      expect((await graph(cloud, 'users', { token })).status).toBe(200);
    });
  });
});

describe('token lifetime on the injectable clock', () => {
  let cloud: TestCloud;
  const clock = new ManualClock('2026-03-01T08:00:00.000Z');
  beforeAll(async () => {
    cloud = await startCloud({ clock });
  });
  afterAll(async () => cloud?.close());

  it('accepts a token for its hour, then answers 401 with a clear message', async () => {
    const t = await cloud.createTenant('expiry');
    const token = await tokenFor(cloud, t.tenant.id, await t.credentials());
    const claims = decodeJwt(token);
    expect(claims.iat).toBe(Date.parse('2026-03-01T08:00:00.000Z') / 1000);
    expect((await graph(cloud, 'users', { token })).status).toBe(200);

    clock.advance(59 * 60_000);
    expect((await graph(cloud, 'users', { token })).status).toBe(200);

    clock.advance(2 * 60_000);
    const r = await graph(cloud, 'users', { token });
    expectGraphError(r, 401, 'InvalidAuthenticationToken');
    expect(r.body.error.message).toMatch(/expired/);
    expect(r.headers.get('www-authenticate')).toMatch(/^Bearer /);

    // A new token, issued at the new time, works.
    const fresh = await tokenFor(cloud, t.tenant.id, await t.credentials());
    expect(decodeJwt(fresh).iat).toBe(Math.floor(clock.now().getTime() / 1000));
    expect((await graph(cloud, 'users', { token: fresh })).status).toBe(200);
  });
});
