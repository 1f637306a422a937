// The HTTP server: the cloud directory's Graph API under /v1.0, OAuth2 endpoints and the sync
// endpoints (cloud/), the admin portal (portal/), /healthz. It stands above both, so neither
// imports the other. Routes are thin; everything goes through cloud/services/index.ts.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { NimbusError, unauthenticated } from './shared/errors.ts';
import { authRoutes } from './cloud/auth/routes.ts';
import { graphErrorHandler, sendGraphError } from './cloud/graph/errors.ts';
import { batchRoutes } from './cloud/graph/routes/batch.ts';
import { directoryRoutes } from './cloud/graph/routes/directory.ts';
import { groupRoutes } from './cloud/graph/routes/groups.ts';
import { userRoutes } from './cloud/graph/routes/users.ts';
import { syncRoutes } from './cloud/sync/sync-routes.ts';
import { registerPortal, type PortalOptions } from './portal/routes.ts';
import type { Services } from './cloud/services/index.ts';
import type { AppRole } from './cloud/services/context.ts';

export interface ServerOptions {
  logger?: FastifyServerOptions['logger'];
  https?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** The admin portal under /portal (session and lockout settings, live-update interval). */
  portal?: PortalOptions;
}

export async function buildServer(svc: Services, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 4 * 1024 * 1024,
    genReqId: () => crypto.randomUUID(),
    requestIdHeader: false,
    // Graph ids and segments are case-insensitive; keep routes matchable in any case.
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: 2048 },
    // Errors the router raises before any route runs (a malformed %-escape, an overlong id)
    // get Graph's error shape too.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      void sendGraphError(req, reply, 400, 'Request_BadRequest', `Invalid request URL: ${err.message}. Check the URL's percent-encoding and the length of its ids.`);
    },
    ...(opts.https ? { https: opts.https } : {}),
  } as FastifyServerOptions);

  // JSON bodies: an empty body is allowed (POST .../verify, .../restore); a broken one is a
  // Graph 400 that says where it broke.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new NimbusError('bad_request', 'Request_BadRequest', `Invalid JSON in the request body: ${(err as Error).message}. Send a JSON object.`), undefined);
    }
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('request-id', req.id);
    const crid = req.headers['client-request-id'];
    if (typeof crid === 'string') reply.header('client-request-id', crid);
  });

  app.setErrorHandler(graphErrorHandler);
  app.setNotFoundHandler((req, reply) => {
    const seg = req.url.split('?')[0]!.split('/').filter(Boolean).slice(1).join('/');
    return sendGraphError(req, reply, 400, 'Request_BadRequest', `Invalid request: resource not found for the segment '${seg || req.url}' (${req.method}). Check the URL against the Microsoft Graph v1.0 API.`);
  });

  // Authentication for the Graph API: a bearer token issued by this directory. The token's
  // tenant is the only tenant the request can see.
  app.addHook('preHandler', async (req) => {
    // The matched route counts too: the router decodes percent-escapes, so /v1%2E0/users
    // reaches the /v1.0/users handler although the raw URL does not start with /v1.0/.
    const route = req.routeOptions.url ?? '';
    const needsToken = (p: string) => p.startsWith('/v1.0/') || p.startsWith('/sync/');
    if (!needsToken(req.url.toLowerCase()) && !needsToken(route.toLowerCase())) return;
    const h = req.headers.authorization;
    if (!h) throw unauthenticated('Access token is empty. Send Authorization: Bearer <token> from /{tenant}/oauth2/v2.0/token.');
    const m = /^Bearer\s+(\S+)$/i.exec(h);
    if (!m) throw unauthenticated('Access token validation failure: the Authorization header must be "Bearer <token>".');
    const claims = await svc.tokens.verify(m[1]!);
    const appRow = await svc.db.selectFrom('apps').select(['client_id', 'name', 'role', 'tenant_id']).where('client_id', '=', claims.appid).executeTakeFirst();
    if (appRow?.tenant_id !== claims.tid) throw unauthenticated('Access token validation failure: the app that requested this token no longer exists.');
    req.actor = { tenantId: claims.tid, kind: 'app', id: appRow.client_id, name: appRow.name, role: appRow.role as AppRole };
  });

  app.get('/healthz', async () => {
    await svc.db.selectFrom('tenants').select('id').limit(1).execute();
    return { status: 'ok' };
  });

  authRoutes(app, svc);
  userRoutes(app, svc);
  groupRoutes(app, svc);
  directoryRoutes(app, svc);
  batchRoutes(app);
  syncRoutes(app, svc);
  registerPortal(app, svc, opts.portal);
  await app.ready();
  return app;
}
