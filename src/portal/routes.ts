// The admin portal on the cloud directory's Fastify server, under /portal (and / redirects to
// it). Server-rendered pages; every state-changing request needs the session cookie and the
// session's CSRF token (a hidden form field or the X-CSRF-Token header) and, when the browser
// sends one, an Origin of this server. Errors render as HTML pages, never as Graph JSON.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NimbusError } from '../shared/errors.ts';
import { USER_PROPS } from '../cloud/model/properties.ts';
import { verificationRecords } from '../cloud/services/domains.ts';
import type { Services } from '../cloud/services/index.ts';
import type { TenantTable } from '../cloud/store/schema.ts';
import type { Html } from './html.ts';
import { createPortalService } from './portal-service.ts';
import { actorFor, createPortalAuth, newToken, sameToken, type PortalAuthOptions, type PortalPrincipal } from './sessions.ts';
import * as views from './views.ts';

export interface PortalOptions {
  auth?: Partial<PortalAuthOptions>;
  /** How often the Directory Integration tab polls for live updates, in ms (default 2000). */
  pollMs?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    portalPrincipal?: PortalPrincipal;
  }
  interface FastifyContextConfig {
    /** Portal routes reachable without a session (sign-in page, assets). */
    portalPublic?: boolean;
  }
}

const PAGE = '25';
const ASSET_TYPES: Record<string, string> = { 'portal.css': 'text/css; charset=utf-8', 'portal.js': 'text/javascript; charset=utf-8' };
const ASSETS = new Map<string, { type: string; body: string }>(
  Object.entries(ASSET_TYPES).map(([f, type]) => [f, { type, body: readFileSync(new URL(`./assets/${f}`, import.meta.url), 'utf8') }]),
);

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
};

type Body = Record<string, string>;
type TenantParams = { Params: { tenant: string } };
type TenantIdParams = { Params: { tenant: string; id: string } };
type ListQuery = { Querystring: { q?: string; source?: string; page?: string; before?: string } };

function parseCookies(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (!(k in out)) {
      try {
        out[k] = decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        // A cookie that is not valid %-encoding is not ours; ignore it.
      }
    }
  }
  return out;
}

const isHttps = (req: FastifyRequest) => req.protocol === 'https';
/** Over HTTPS the __Host- prefix makes browsers insist on Secure, Path=/ and no Domain. */
const sessionCookie = (req: FastifyRequest) => (isHttps(req) ? '__Host-nimbus_session' : 'nimbus_session');
const signInCookie = (req: FastifyRequest) => (isHttps(req) ? '__Host-nimbus_signin' : 'nimbus_signin');
const flashCookie = (req: FastifyRequest) => (isHttps(req) ? '__Host-nimbus_flash' : 'nimbus_flash');

function setCookie(req: FastifyRequest, reply: FastifyReply, name: string, value: string, maxAge?: number): void {
  const parts = [`${name}=${encodeURIComponent(value)}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (isHttps(req)) parts.push('Secure');
  if (maxAge !== undefined) parts.push(`Max-Age=${maxAge}`);
  // Fastify appends set-cookie headers instead of replacing them.
  void reply.header('set-cookie', parts.join('; '));
}

/** Only paths inside the portal may follow sign-in (no open redirect). */
const safeNext = (next: unknown) => (typeof next === 'string' && /^\/portal\/[^/\\]/.test(`${next}x`) && !next.includes('//') && !next.includes('\\') ? next : '/portal/');

function sendPage(reply: FastifyReply, page: Html, status = 200) {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page.value);
}

const versionOf = (h: Html) => createHash('sha256').update(h.value).digest('base64url').slice(0, 16);
const odataString = (s: string) => s.replace(/'/g, "''");

function pageLinks(path: string, params: Record<string, string | undefined>, next: string | undefined, current: string | undefined) {
  const qs = (extra: Record<string, string | undefined>) => {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...params, ...extra })) if (v) u.set(k, v);
    const s = u.toString();
    return s ? `${path}?${s}` : path;
  };
  return { next: next ? qs({ page: next }) : undefined, first: current ? qs({}) : undefined };
}

export function registerPortal(app: FastifyInstance, svc: Services, opts: PortalOptions = {}): void {
  const auth = createPortalAuth(svc.deps, opts.auth);
  const portal = createPortalService(svc);
  const pollMs = opts.pollMs ?? 2000;

  // The address the demo prints opens the portal.
  app.get('/', async (_req, reply) => reply.redirect('/portal/', 302));

  void app.register(
    async (p) => {
      // Form bodies: the server's form parser (auth/routes.ts, for OAuth token requests) gives a flat object.
      p.addHook('onSend', async (_req, reply) => {
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) void reply.header(k, v);
      });

      const flashOf = (req: FastifyRequest, reply: FastifyReply): views.Flash | undefined => {
        const raw = parseCookies(req)[flashCookie(req)];
        if (!raw) return undefined;
        setCookie(req, reply, flashCookie(req), '', 0);
        try {
          const f = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as views.Flash;
          return (f.kind === 'ok' || f.kind === 'error') && typeof f.text === 'string' ? { kind: f.kind, text: f.text.slice(0, 2000) } : undefined;
        } catch {
          return undefined;
        }
      };
      const redirectWith = (req: FastifyRequest, reply: FastifyReply, to: string, flash: views.Flash) => {
        setCookie(req, reply, flashCookie(req), Buffer.from(JSON.stringify(flash)).toString('base64url'), 60);
        return reply.redirect(to, 303);
      };

      // ---- authentication and CSRF, before every route that is not public
      p.addHook('preHandler', async (req, reply) => {
        if (req.routeOptions.config.portalPublic) return;
        const principal = await auth.session(parseCookies(req)[sessionCookie(req)]);
        const unsafe = req.method !== 'GET' && req.method !== 'HEAD';
        if (!principal) {
          if (!unsafe && !req.url.includes('/sync/live')) return reply.redirect(`/portal/sign-in?next=${encodeURIComponent(req.url)}`, 303);
          return sendPage(reply, views.errorPage({}, 401, 'Sign in again', 'Your session has ended or you are not signed in. Sign in again, then repeat what you were doing.'), 401);
        }
        if (unsafe) {
          const origin = req.headers.origin;
          const allowed = [`${req.protocol}://${req.host}`, ...(svc.config.publicUrl ? [svc.config.publicUrl.replace(/\/+$/, '')] : [])];
          const token = (req.body as Body | undefined)?._csrf ?? (req.headers['x-csrf-token'] as string | undefined);
          if ((origin !== undefined && !allowed.includes(origin)) || !sameToken(token, principal.csrf))
            return sendPage(
              reply,
              views.errorPage({ principal }, 403, 'Request refused', "The request did not carry this session's security token (CSRF), or it came from another site. Reload the page and try again."),
              403,
            );
        }
        req.portalPrincipal = principal;
      });

      p.setErrorHandler(async (err, req, reply) => {
        const principal = req.portalPrincipal;
        if (err instanceof NimbusError) return sendPage(reply, views.errorPage({ principal }, err.status, err.kind === 'not_found' ? 'Not found' : 'Request failed', err.message), err.status);
        const status = (err as { statusCode?: number }).statusCode;
        if (status && status >= 400 && status < 500) return sendPage(reply, views.errorPage({ principal }, status, 'Bad request', err instanceof Error ? err.message : String(err)), status);
        req.log.error({ err }, 'portal request failed');
        return sendPage(reply, views.errorPage({ principal }, 500, 'Something went wrong', `The server could not complete the request (request id ${req.id}). Try again; if it keeps failing, the server log has the details under that id.`), 500);
      });
      p.setNotFoundHandler(async (req, reply) => sendPage(reply, views.errorPage({ principal: req.portalPrincipal }, 404, 'Not found', `There is no portal page at ${req.url.split('?')[0]}.`), 404));

      const me = (req: FastifyRequest) => req.portalPrincipal!;
      /** The tenant in the URL, if this person may see it; anything else is the same 404 (no hint that it exists). */
      async function tenantOf(req: FastifyRequest<TenantParams>): Promise<TenantTable> {
        const t = await portal.tenantFor(me(req), req.params.tenant);
        if (!t) throw new NimbusError('not_found', 'TenantNotFound', `Directory '${req.params.tenant}' was not found, or you may not see it. Pick one from your directories.`);
        return t;
      }
      const ctxOf = async (req: FastifyRequest<TenantParams>, reply: FastifyReply, tab: views.Tab) => ({ principal: me(req), tenant: await tenantOf(req), tab, flash: flashOf(req, reply) });

      /** Runs a form action; a NimbusError (the service's own message) comes back as an error flash. */
      async function act(req: FastifyRequest, reply: FastifyReply, back: string, fn: () => Promise<string>) {
        try {
          return await redirectWith(req, reply, back, { kind: 'ok', text: await fn() });
        } catch (err) {
          if (err instanceof NimbusError) return redirectWith(req, reply, back, { kind: 'error', text: err.message });
          throw err;
        }
      }

      // ---- public: assets and sign-in
      p.get<{ Params: { file: string } }>('/assets/:file', { config: { portalPublic: true } }, async (req, reply) => {
        const a = ASSETS.get(req.params.file);
        if (!a) return sendPage(reply, views.errorPage({}, 404, 'Not found', 'No such asset.'), 404);
        return reply.type(a.type).header('cache-control', 'no-cache').send(a.body);
      });

      p.get<{ Querystring: { next?: string } }>('/sign-in', { config: { portalPublic: true } }, async (req, reply) => {
        const token = newToken(24);
        setCookie(req, reply, signInCookie(req), token);
        return sendPage(reply, views.signInPage({ token, next: safeNext(req.query.next) }));
      });

      p.post('/sign-in', { config: { portalPublic: true } }, async (req, reply) => {
        const b = (req.body ?? {}) as Body;
        const expected = parseCookies(req)[signInCookie(req)];
        const next = safeNext(b.next);
        if (!expected || !sameToken(b._signin, expected)) {
          const token = newToken(24);
          setCookie(req, reply, signInCookie(req), token);
          return sendPage(reply, views.signInPage({ token, next, error: 'The sign-in form has expired or came from another site. Sign in again on this page.' }), 403);
        }
        const r = await auth.signIn(b.name ?? '', b.password ?? '');
        if (!r.ok) return sendPage(reply, views.signInPage({ token: expected, next, name: b.name ?? '', error: r.message }), r.locked ? 429 : 401);
        setCookie(req, reply, sessionCookie(req), r.token);
        setCookie(req, reply, signInCookie(req), '', 0);
        req.log.info({ portalUser: r.principal.name, kind: r.principal.kind }, 'portal sign-in');
        return reply.redirect(next, 303);
      });

      p.post('/sign-out', async (req, reply) => {
        await auth.signOut(me(req));
        setCookie(req, reply, sessionCookie(req), '', 0);
        return reply.redirect('/portal/sign-in', 303);
      });

      // ---- directories
      p.get('/', async (req, reply) => {
        const tenants = await portal.tenantsFor(me(req));
        const rows = await Promise.all(tenants.map(async (t) => ({ tenant: t, counts: await portal.counts(t.id), status: (await svc.organization.status(t.id)).status })));
        return sendPage(reply, views.directoriesPage({ principal: me(req), flash: flashOf(req, reply) }, rows));
      });
      p.get<TenantParams>('/t/:tenant', async (req, reply) => reply.redirect(views.tenantPath(await tenantOf(req), 'users'), 303));

      // ---- users
      p.get<TenantParams & ListQuery>('/t/:tenant/users', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'users');
        const q = (req.query.q ?? '').trim().slice(0, 256);
        const source = ['synced', 'cloud'].includes(req.query.source ?? '') ? req.query.source! : 'all';
        const parts: string[] = [];
        if (q) parts.push(`(startswith(displayName,'${odataString(q)}') or startswith(userPrincipalName,'${odataString(q)}'))`);
        if (source === 'synced') parts.push('onPremisesSyncEnabled eq true');
        if (source === 'cloud') parts.push('(onPremisesSyncEnabled eq null or onPremisesSyncEnabled eq false)');
        const page = await svc.users.list(actorFor(me(req), ctx.tenant.id), {
          ...(parts.length ? { filter: parts.join(' and ') } : {}),
          select: 'id,displayName,userPrincipalName,accountEnabled,onPremisesSyncEnabled,onPremisesProvisioningErrors',
          orderby: 'displayName',
          top: PAGE,
          count: true,
          ...(req.query.page ? { skiptoken: req.query.page } : {}),
        });
        const links = pageLinks(views.tenantPath(ctx.tenant, 'users'), { q, source: source === 'all' ? undefined : source }, page.nextSkiptoken, req.query.page);
        return sendPage(reply, views.usersPage(ctx, { q, source }, page, links.next, links.first));
      });

      const userSelect = USER_PROPS.map((x) => x.name).join(',');
      p.get<TenantIdParams>('/t/:tenant/users/:id', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'users');
        const actor = actorFor(me(req), ctx.tenant.id);
        const u = await svc.users.get(actor, req.params.id, userSelect);
        const groups = await svc.groups.memberOf(actor, String(u.id), { top: '100', select: 'id,displayName' });
        return sendPage(reply, views.userPage(ctx, u, groups.items));
      });

      p.post<TenantIdParams>('/t/:tenant/users/:id', async (req, reply) => {
        const t = await tenantOf(req);
        const actor = actorFor(me(req), t.id);
        const back = views.tenantPath(t, `users/${encodeURIComponent(req.params.id)}`);
        return act(req, reply, back, async () => {
          const u = await svc.users.get(actor, req.params.id, userSelect);
          const synced = u.onPremisesSyncEnabled === true;
          const b = (req.body ?? {}) as Body;
          const patch: Record<string, unknown> = {};
          const fields = synced ? ['usageLocation'] : ['displayName', 'givenName', 'surname', 'jobTitle', 'department', 'usageLocation'];
          for (const f of fields) {
            if (!(f in b)) continue;
            const v = b[f]!.trim();
            const next = v === '' && f !== 'displayName' ? null : v;
            if (next !== (u[f] ?? null)) patch[f] = next;
          }
          if (!synced && (b.accountEnabled === 'true' || b.accountEnabled === 'false') && (b.accountEnabled === 'true') !== u.accountEnabled) patch.accountEnabled = b.accountEnabled === 'true';
          if (Object.keys(patch).length === 0) return 'Nothing to save: no value changed.';
          await svc.users.update(actor, String(u.id), patch);
          return `Saved ${Object.keys(patch).join(', ')} of ${String(u.displayName)}.`;
        });
      });

      // ---- groups
      p.get<TenantParams & ListQuery>('/t/:tenant/groups', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'groups');
        const q = (req.query.q ?? '').trim().slice(0, 256);
        const page = await svc.groups.list(actorFor(me(req), ctx.tenant.id), {
          ...(q ? { filter: `startswith(displayName,'${odataString(q)}')` } : {}),
          select: 'id,displayName,mail,mailEnabled,securityEnabled,groupTypes,onPremisesSyncEnabled',
          orderby: 'displayName',
          top: PAGE,
          count: true,
          ...(req.query.page ? { skiptoken: req.query.page } : {}),
        });
        const links = pageLinks(views.tenantPath(ctx.tenant, 'groups'), { q }, page.nextSkiptoken, req.query.page);
        return sendPage(reply, views.groupsPage(ctx, { q }, page, links.next, links.first));
      });

      p.get<TenantIdParams & ListQuery>('/t/:tenant/groups/:id', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'groups');
        const actor = actorFor(me(req), ctx.tenant.id);
        const g = await svc.groups.get(actor, req.params.id);
        const members = await svc.groups.members(actor, String(g.id), { top: '50', ...(req.query.page ? { skiptoken: req.query.page } : {}) });
        const links = pageLinks(views.tenantPath(ctx.tenant, `groups/${String(g.id)}`), {}, members.nextSkiptoken, req.query.page);
        return sendPage(reply, views.groupPage(ctx, g, members.items, links.next, links.first));
      });

      // ---- domains
      p.get<TenantParams>('/t/:tenant/domains', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'domains');
        const rows = await svc.domains.list(ctx.tenant.id);
        const domains = rows.map((d) => ({ name: d.name, isVerified: d.is_verified === 1, isDefault: d.is_default === 1, isInitial: d.is_initial === 1, txt: verificationRecords(d)[0]!.text }));
        return sendPage(reply, views.domainsPage(ctx, domains));
      });
      p.post<TenantParams>('/t/:tenant/domains', async (req, reply) => {
        const t = await tenantOf(req);
        return act(req, reply, views.tenantPath(t, 'domains'), async () => {
          const d = await svc.domains.add(actorFor(me(req), t.id), (req.body as Body | undefined)?.name ?? '');
          return d.is_verified ? `Added ${d.name}; it is verified with its parent domain.` : `Added ${d.name}. Publish the TXT record shown below, then choose Verify.`;
        });
      });
      type DomainParams = { Params: { tenant: string; name: string; action: string } };
      p.post<DomainParams>('/t/:tenant/domains/:name/:action', async (req, reply) => {
        const t = await tenantOf(req);
        const actor = actorFor(me(req), t.id);
        const name = req.params.name;
        return act(req, reply, views.tenantPath(t, 'domains'), async () => {
          switch (req.params.action) {
            case 'verify':
              await svc.domains.verify(actor, name);
              return `Domain ${name} is verified.`;
            case 'default':
              await svc.domains.setDefault(actor, name);
              return `${name} is now the default domain.`;
            case 'remove':
              await svc.domains.remove(actor, name);
              return `Removed ${name}.`;
            default:
              throw new NimbusError('not_found', 'Request_ResourceNotFound', `Unknown domain action '${req.params.action}': use verify, default or remove.`);
          }
        });
      });

      // ---- directory integration
      const live = async (req: FastifyRequest<TenantParams>, t: TenantTable) => {
        const o = await portal.syncOverview(me(req), t.id);
        const errors = await portal.syncErrors(t.id);
        return { o, fragment: views.syncLive({ principal: me(req), tenant: t }, o, errors) };
      };
      p.get<TenantParams>('/t/:tenant/sync', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'sync');
        const { o, fragment } = await live(req, ctx.tenant);
        return sendPage(reply, views.syncPage(ctx, o, fragment, versionOf(fragment), pollMs));
      });
      p.get<TenantParams>('/t/:tenant/sync/live', async (req, reply) => {
        const t = await tenantOf(req);
        const { o, fragment } = await live(req, t);
        return reply.header('cache-control', 'no-store').send({ version: versionOf(fragment), running: o.inProgress, lastSync: o.status.onPremisesLastSyncDateTime, html: fragment.value });
      });
      p.post<TenantParams>('/t/:tenant/sync/activation', async (req, reply) => {
        const ctx = { principal: me(req), tenant: await tenantOf(req) };
        const b = (req.body ?? {}) as Body;
        if (b.dirsync !== 'activated' && b.dirsync !== 'deactivated')
          return redirectWith(req, reply, views.tenantPath(ctx.tenant, 'sync'), { kind: 'error', text: 'Choose Activated or Deactivated, then Save.' });
        const enable = b.dirsync === 'activated';
        if (b.confirmed !== 'yes') return sendPage(reply, views.confirmActivationPage(ctx, enable));
        return act(req, reply, views.tenantPath(ctx.tenant, 'sync'), async () => {
          const r = await svc.organization.setDirSync(actorFor(me(req), ctx.tenant.id), enable);
          if (!r.changed) return `Directory sync was already ${enable ? 'activated' : 'deactivated'}; nothing changed.`;
          return enable
            ? 'Directory sync is activated. The agent can export now (nimbus agent, or Sync now below).'
            : `Directory sync is deactivated; ${r.converted} synced objects are cloud-managed now.`;
        });
      });
      p.post<TenantParams>('/t/:tenant/sync/requests', async (req, reply) => {
        const t = await tenantOf(req);
        const kind = (req.body as Body | undefined)?.kind;
        return act(req, reply, views.tenantPath(t, 'sync'), async () => {
          if (kind !== 'sync-now' && kind !== 'allow-deletes') throw new NimbusError('bad_request', 'Request_BadRequest', `Unknown request '${String(kind)}': use sync-now or allow-deletes.`);
          const { created } = await portal.requestSync(me(req), t.id, kind);
          const what = kind === 'sync-now' ? 'A sync run' : 'A run that makes these deletes';
          return created ? `${what} was requested; the agent picks it up within seconds.` : `${what} was already requested and is waiting for the agent.`;
        });
      });

      // ---- deleted users
      p.get<TenantParams & ListQuery>('/t/:tenant/deleted', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'deleted');
        const page = await svc.directory.listDeleted(actorFor(me(req), ctx.tenant.id), 'user', {
          select: 'id,displayName,userPrincipalName,deletedDateTime,onPremisesSyncEnabled',
          top: PAGE,
          ...(req.query.page ? { skiptoken: req.query.page } : {}),
        });
        const links = pageLinks(views.tenantPath(ctx.tenant, 'deleted'), {}, page.nextSkiptoken, req.query.page);
        return sendPage(reply, views.deletedPage(ctx, page.items, links.next, links.first));
      });
      p.post<TenantIdParams>('/t/:tenant/deleted/:id/restore', async (req, reply) => {
        const t = await tenantOf(req);
        return act(req, reply, views.tenantPath(t, 'deleted'), async () => {
          const r = (await svc.directory.restore(actorFor(me(req), t.id), req.params.id)) as Record<string, unknown>;
          return `Restored ${views.str(r.displayName) || req.params.id}.`;
        });
      });

      // ---- audit log
      p.get<TenantParams & ListQuery>('/t/:tenant/audit', async (req, reply) => {
        const ctx = await ctxOf(req, reply, 'audit');
        const before = req.query.before !== undefined && /^\d{1,15}$/.test(req.query.before) ? Number(req.query.before) : undefined;
        const page = await svc.audit.list(ctx.tenant.id, { top: 50, ...(before !== undefined ? { before } : {}) });
        const path = views.tenantPath(ctx.tenant, 'audit');
        return sendPage(reply, views.auditPage(ctx, page.items, page.next !== undefined ? `${path}?before=${page.next}` : undefined, before !== undefined ? path : undefined));
      });
    },
    { prefix: '/portal' },
  );
}
