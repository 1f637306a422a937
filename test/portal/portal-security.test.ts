// The portal's security rules over real HTTP: sessions and cookies, CSRF on every
// state-changing request, the sign-in lockout, tenant isolation (an administrator sees only
// their tenant, through pages and the live endpoint), and operators seeing every tenant.
import { Agent, fetch as ufetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/shared/clock.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { createOperatorService } from '../../src/portal/operators.ts';
import { startCloud, type TestCloud } from '../helpers/cloud.ts';
import { ADMIN_PASSWORD, createAdmin, PortalClient, textOf } from './helpers.ts';

let cloud: TestCloud;
const clock = new ManualClock('2026-03-01T09:00:00.000Z');
let a: { upn: string; id: string };
let b: { upn: string; id: string };
let secretUserB: string;
let tenantA: string;
let tenantB: string;

beforeAll(async () => {
  cloud = await startCloud({ clock });
  const ta = await cloud.createTenant('alpha');
  const tb = await cloud.createTenant('bravo');
  tenantA = ta.tenant.id;
  tenantB = tb.tenant.id;
  a = await createAdmin(cloud, ta.tenant);
  b = await createAdmin(cloud, tb.tenant);
  const u = await cloud.svc.users.create(cliActor(tb.tenant.id), {
    accountEnabled: true,
    displayName: 'Bravo Secret Person',
    mailNickname: 'secret',
    userPrincipalName: `secret@${tb.tenant.initial_domain}`,
    passwordProfile: { password: ADMIN_PASSWORD, forceChangePasswordNextSignIn: false },
  });
  secretUserB = u.id as string;
  await cloud.svc.domains.add(cliActor(tb.tenant.id), 'bravo-only.example');
  await createOperatorService(cloud.svc.deps).create('ops', ADMIN_PASSWORD, 'Service operator');
});

afterAll(async () => {
  await cloud?.close();
});

describe('sessions and cookies', () => {
  it('sends pages to the sign-in form without a session, and refuses state changes', async () => {
    const c = new PortalClient(cloud.url);
    const r = await c.get('/portal/t/alpha/users');
    expect(r.status).toBe(303);
    expect(r.location).toBe('/portal/sign-in?next=%2Fportal%2Ft%2Falpha%2Fusers');
    const post = await c.request('POST', '/portal/t/alpha/domains', { name: 'evil.example' });
    expect(post.status).toBe(401);
    expect((await cloud.svc.domains.list(tenantA)).map((d) => d.name)).not.toContain('evil.example');
    const live = await c.get('/portal/t/alpha/sync/live');
    expect(live.status).toBe(401);
  });

  it('sets an HttpOnly, SameSite=Strict session cookie and never stores the token itself', async () => {
    const c = new PortalClient(cloud.url);
    const r = await c.signIn(a.upn, ADMIN_PASSWORD);
    expect(r.status).toBe(303);
    const session = r.cookies.find((x) => x.startsWith('nimbus_session='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).not.toMatch(/Secure/); // plain HTTP: a Secure cookie would never come back
    const token = session.split(';')[0]!.split('=')[1]!;
    const rows = await cloud.svc.db.selectFrom('portal_sessions').select('token_hash').execute();
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.map((x) => x.token_hash)).not.toContain(token);
    const page = await c.get('/portal/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('alpha');
  });

  it('refuses a forged or missing session cookie', async () => {
    const c = new PortalClient(cloud.url);
    c.cookies.set('nimbus_session', 'forged-token-value');
    expect((await c.get('/portal/')).status).toBe(303);
  });

  it('ends the session at sign-out and after the idle timeout', async () => {
    const c = new PortalClient(cloud.url);
    await c.signIn(a.upn, ADMIN_PASSWORD);
    const stolen = new Map(c.cookies);
    expect((await c.post('/portal/sign-out')).status).toBe(303);
    const replay = new PortalClient(cloud.url);
    replay.cookies = stolen;
    expect((await replay.get('/portal/')).status).toBe(303);

    const idle = new PortalClient(cloud.url);
    await idle.signIn(a.upn, ADMIN_PASSWORD);
    clock.advance(61 * 60_000);
    expect((await idle.get('/portal/')).status).toBe(303);
  });

  it('ends an administrator’s sessions when the Global Administrator role is taken away', async () => {
    const t = (await cloud.svc.tenants.get(tenantA));
    const extra = await createAdmin(cloud, t, 'temp');
    const c = new PortalClient(cloud.url);
    expect((await c.signIn(extra.upn, ADMIN_PASSWORD)).status).toBe(303);
    expect((await c.get('/portal/')).status).toBe(200);
    await cloud.svc.directory.unassignRole(cliActor(tenantA), '62e90394-69f5-4237-9190-012177145e10', extra.id);
    expect((await c.get('/portal/')).status).toBe(303);
  });

  it('marks cookies Secure over HTTPS, with the __Host- prefix', async () => {
    const tls = await startCloud({ https: true });
    try {
      const t = await tls.createTenant('secure');
      const adm = await createAdmin(tls, t.tenant);
      const dispatcher = new Agent({ connect: { ca: tls.cert! } });
      const form = await ufetch(`${tls.url}/portal/sign-in`, { dispatcher });
      const signin = form.headers.getSetCookie().join('\n');
      expect(signin).toMatch(/^__Host-nimbus_signin=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Secure/);
      const token = /name="_signin" value="([^"]+)"/.exec(await form.text())![1]!;
      const r = await ufetch(`${tls.url}/portal/sign-in`, {
        dispatcher,
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: `__Host-nimbus_signin=${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _signin: token, name: adm.upn, password: ADMIN_PASSWORD, next: '/portal/' }).toString(),
      });
      expect(r.status).toBe(303);
      const session = r.headers.getSetCookie().find((x) => x.startsWith('__Host-nimbus_session='))!;
      expect(session).toMatch(/HttpOnly/);
      expect(session).toMatch(/SameSite=Strict/);
      expect(session).toMatch(/Secure/);
    } finally {
      await tls.close();
    }
  });
});

describe('CSRF', () => {
  let c: PortalClient;
  beforeAll(async () => {
    c = new PortalClient(cloud.url);
    expect((await c.signIn(a.upn, ADMIN_PASSWORD)).status).toBe(303);
  });

  it('refuses a state change without the CSRF token, or with another session’s token', async () => {
    const none = await c.request('POST', '/portal/t/alpha/domains', { name: 'nocsrf.example' });
    expect(none.status).toBe(403);
    expect(textOf(none.text)).toContain('security token (CSRF)');
    const other = new PortalClient(cloud.url);
    await other.signIn(a.upn, ADMIN_PASSWORD);
    const wrong = await c.request('POST', '/portal/t/alpha/domains', { _csrf: other.csrf, name: 'wrongcsrf.example' });
    expect(wrong.status).toBe(403);
    const names = (await cloud.svc.domains.list(tenantA)).map((d) => d.name);
    expect(names).not.toContain('nocsrf.example');
    expect(names).not.toContain('wrongcsrf.example');
  });

  it('refuses a request from another origin even with the token', async () => {
    const r = await c.post('/portal/t/alpha/domains', { name: 'crossorigin.example' }, { origin: 'https://evil.example' });
    expect(r.status).toBe(403);
    expect((await cloud.svc.domains.list(tenantA)).map((d) => d.name)).not.toContain('crossorigin.example');
  });

  it('accepts the same request with the token, from the same origin', async () => {
    const r = await c.post('/portal/t/alpha/domains', { name: 'withcsrf.example' }, { origin: cloud.url });
    expect(r.status).toBe(303);
    expect((await cloud.svc.domains.list(tenantA)).map((d) => d.name)).toContain('withcsrf.example');
  });

  it('refuses a sign-in form posted without its sign-in token (login CSRF)', async () => {
    const fresh = new PortalClient(cloud.url);
    const r = await fresh.request('POST', '/portal/sign-in', { name: a.upn, password: ADMIN_PASSWORD, next: '/portal/' });
    expect(r.status).toBe(403);
    expect(r.cookies.some((x) => x.startsWith('nimbus_session='))).toBe(false);
  });

  it('sends sign-in only to portal paths (no open redirect)', async () => {
    const fresh = new PortalClient(cloud.url);
    const page = await fresh.get('/portal/sign-in?next=//evil.example/x');
    expect(page.text).toContain('name="next" value="/portal/"');
  });
});

describe('tenant isolation', () => {
  let c: PortalClient;
  beforeAll(async () => {
    c = new PortalClient(cloud.url);
    expect((await c.signIn(a.upn, ADMIN_PASSWORD)).status).toBe(303);
  });

  it('lists only the administrator’s own directory', async () => {
    const page = textOf((await c.get('/portal/')).text);
    expect(page).toContain('alpha.onnimbus.net');
    expect(page).not.toContain('bravo');
  });

  it('answers every page and the live endpoint of another tenant with the same 404, by name or id', async () => {
    for (const ref of ['bravo', tenantB, 'bravo.onnimbus.net']) {
      for (const path of ['users', 'groups', 'domains', 'sync', 'sync/live', 'deleted', 'audit', `users/${secretUserB}`]) {
        const r = await c.get(`/portal/t/${ref}/${path}`);
        expect(r.status, `${ref}/${path}`).toBe(404);
        expect(r.text).not.toContain('Bravo Secret Person');
        expect(r.text).not.toContain('bravo-only.example');
      }
    }
    const nonexistent = await c.get('/portal/t/no-such-tenant/users');
    expect(nonexistent.status).toBe(404);
    expect(textOf(nonexistent.text)).toContain("Directory 'no-such-tenant' was not found, or you may not see it");
  });

  it('does not show another tenant’s object through its own tenant’s URL', async () => {
    const r = await c.get(`/portal/t/alpha/users/${secretUserB}`);
    expect(r.status).toBe(404);
    expect(r.text).not.toContain('Bravo Secret Person');
    const g = await c.get(`/portal/t/alpha/groups/${secretUserB}`);
    expect(g.status).toBe(404);
  });

  it('refuses state changes on another tenant', async () => {
    const before = (await cloud.svc.domains.list(tenantB)).map((d) => d.name);
    const r = await c.post(`/portal/t/bravo/domains`, { name: 'hijack.example' });
    expect(r.status).toBe(404);
    const rm = await c.post(`/portal/t/bravo/domains/bravo-only.example/remove`);
    expect(rm.status).toBe(404);
    const act = await c.post(`/portal/t/bravo/sync/activation`, { dirsync: 'activated', confirmed: 'yes' });
    expect(act.status).toBe(404);
    const sync = await c.post(`/portal/t/bravo/sync/requests`, { kind: 'sync-now' });
    expect(sync.status).toBe(404);
    expect((await cloud.svc.domains.list(tenantB)).map((d) => d.name)).toEqual(before);
    expect((await cloud.svc.organization.status(tenantB)).onPremisesSyncEnabled).toBeNull();
    expect(await cloud.svc.db.selectFrom('sync_requests').select('id').where('tenant_id', '=', tenantB).execute()).toEqual([]);
  });

  it('keeps searches inside the tenant', async () => {
    const r = await c.get('/portal/t/alpha/users?q=Bravo');
    expect(r.status).toBe(200);
    expect(r.text).not.toContain('Bravo Secret Person');
    expect(textOf(r.text)).toContain('0 users');
  });

  it('lets the other tenant’s administrator see their own data', async () => {
    const cb = new PortalClient(cloud.url);
    expect((await cb.signIn(b.upn, ADMIN_PASSWORD)).status).toBe(303);
    const r = await cb.get('/portal/t/bravo/users');
    expect(r.status).toBe(200);
    expect(r.text).toContain('Bravo Secret Person');
    expect((await cb.get('/portal/t/alpha/users')).status).toBe(404);
  });

  it('lets an operator see every tenant', async () => {
    const op = new PortalClient(cloud.url);
    expect((await op.signIn('ops', ADMIN_PASSWORD)).status).toBe(303);
    const list = textOf((await op.get('/portal/')).text);
    expect(list).toContain('alpha.onnimbus.net');
    expect(list).toContain('bravo.onnimbus.net');
    expect((await op.get('/portal/t/bravo/users')).text).toContain('Bravo Secret Person');
    expect((await op.get('/portal/t/alpha/users')).status).toBe(200);
  });
});

describe('lockout after repeated failed sign-ins', () => {
  it('locks a name after 5 failures, refuses even the right password while locked, and unlocks after 15 minutes', async () => {
    const t = (await cloud.svc.tenants.get(tenantA));
    const victim = await createAdmin(cloud, t, 'victim');
    const c = new PortalClient(cloud.url);
    for (let i = 1; i <= 4; i++) {
      const r = await c.signIn(victim.upn, 'wrong-password');
      expect(r.status).toBe(401);
      expect(textOf(r.text)).toContain(`${5 - i} more failed attempt`);
    }
    const fifth = await c.signIn(victim.upn, 'wrong-password');
    expect(fifth.status).toBe(429);
    expect(textOf(fifth.text)).toContain(`Too many failed sign-ins for '${victim.upn}'`);
    const right = await c.signIn(victim.upn, ADMIN_PASSWORD);
    expect(right.status).toBe(429);
    expect(right.cookies.some((x) => x.startsWith('nimbus_session='))).toBe(false);
    // Another name is not affected.
    expect((await new PortalClient(cloud.url).signIn(a.upn, ADMIN_PASSWORD)).status).toBe(303);
    clock.advance(16 * 60_000);
    const later = await c.signIn(victim.upn, ADMIN_PASSWORD);
    expect(later.status).toBe(303);
    // The tenant's audit log holds the administrator's sign-ins: five failures (the last one
    // locking the name), then the success after the lock.
    const entries = await cloud.svc.db
      .selectFrom('audit_logs')
      .select(['category', 'activity', 'result', 'result_reason', 'target_resources'])
      .where('tenant_id', '=', tenantA)
      .where('category', '=', 'Authentication')
      .orderBy('at')
      .execute();
    const mine = entries.filter((e) => e.target_resources.includes(victim.upn));
    expect(mine.map((e) => e.result)).toEqual(['failure', 'failure', 'failure', 'failure', 'failure', 'success']);
    expect(mine[4]!.result_reason).toMatch(/sign-in locked until/);
    expect(mine.every((e) => e.activity === 'Sign in to the admin portal')).toBe(true);
    const other = await cloud.svc.db.selectFrom('audit_logs').select('target_resources').where('tenant_id', '=', tenantB).where('category', '=', 'Authentication').execute();
    expect(other.some((e) => e.target_resources.includes(victim.upn))).toBe(false);
  });

  it('counts failures for names that do not exist too, with the same message', async () => {
    const c = new PortalClient(cloud.url);
    const r = await c.signIn('nobody@alpha.onnimbus.net', 'whatever');
    expect(r.status).toBe(401);
    expect(textOf(r.text)).toContain('Sign-in failed: the name or the password is wrong');
  });

  it('does not let a user without the Global Administrator role sign in', async () => {
    const c = new PortalClient(cloud.url);
    const r = await c.signIn(`secret@bravo.onnimbus.net`, ADMIN_PASSWORD);
    expect(r.status).toBe(401);
  });
});
