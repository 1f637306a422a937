// OAuth2 endpoints in Entra's shape: the client-credentials token endpoint, OpenID
// discovery metadata and the JWKS, under /{tenant}/... where {tenant} is the tenant's id,
// name or a verified domain. MSAL and @azure/identity use them with Nimbus as authority.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services/index.ts';
import { baseUrl } from '../graph/http.ts';

type P = { Params: { tenant: string } };

function oauthError(req: FastifyRequest, reply: FastifyReply, status: number, error: string, code: number, description: string) {
  return reply.code(status).send({
    error,
    error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${req.id}\r\nTimestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: req.id,
    correlation_id: (req.headers['client-request-id'] as string | undefined) ?? req.id,
  });
}

export function authRoutes(app: FastifyInstance, svc: Services) {
  // OAuth2 token requests are form-encoded (RFC 6749 §4.4.2).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 65536 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  const metadata = async (req: FastifyRequest<P>, reply: FastifyReply) => {
    const t = await svc.tenants.resolve(req.params.tenant);
    if (!t) return oauthError(req, reply, 400, 'invalid_tenant', 90002, `Tenant '${req.params.tenant}' not found. Check the tenant id, name or verified domain.`);
    const base = baseUrl(req, svc.config.publicUrl);
    const root = `${base}/${t.id}`;
    return reply.send({
      token_endpoint: `${root}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
      jwks_uri: `${base}/${t.id}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${root}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${root}/oidc/userinfo`,
      authorization_endpoint: `${root}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${root}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${root}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'tid', 'roles', 'appid'],
      tenant_region_scope: null,
      cloud_instance_name: new URL(base).host,
      cloud_graph_host_name: new URL(base).host,
      msgraph_host: new URL(base).host,
    });
  };
  app.get<P>('/:tenant/v2.0/.well-known/openid-configuration', metadata);
  app.get<P>('/:tenant/.well-known/openid-configuration', metadata);

  app.get<P>('/:tenant/discovery/v2.0/keys', async (_req, reply) => reply.send(await svc.tokens.jwks()));
  app.get<P>('/:tenant/discovery/keys', async (_req, reply) => reply.send(await svc.tokens.jwks()));

  app.post<P>('/:tenant/oauth2/v2.0/token', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    // Only string parameters count: a JSON body with numbers or objects is not a valid form.
    const form: Record<string, string | undefined> = {};
    const body: unknown = req.body;
    if (body !== null && typeof body === 'object' && !Array.isArray(body))
      for (const [k, v] of Object.entries(body)) if (typeof v === 'string') form[k] = v;
    let clientId = form.client_id;
    let secret = form.client_secret;
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      // RFC 6749 §2.3.1: form-encoded id and secret, joined by the first ':'.
      const pair = Buffer.from(basic[1]!, 'base64').toString();
      const colon = pair.indexOf(':');
      try {
        clientId = decodeURIComponent(colon < 0 ? pair : pair.slice(0, colon));
        secret = decodeURIComponent(colon < 0 ? '' : pair.slice(colon + 1));
      } catch {
        return oauthError(req, reply, 401, 'invalid_client', 7000216, 'The HTTP Basic credentials are malformed: send base64(urlencode(client_id) ":" urlencode(client_secret)).');
      }
    }
    if (form.grant_type !== 'client_credentials')
      return oauthError(req, reply, 400, 'unsupported_grant_type', 70003, `The grant type '${form.grant_type ?? ''}' is not supported; use client_credentials.`);
    if (!clientId || !secret) return oauthError(req, reply, 400, 'invalid_request', 900144, "The request body must contain 'client_id' and 'client_secret' (or HTTP Basic authentication).");
    const scope = form.scope ?? '';
    if (!scope.endsWith('/.default'))
      return oauthError(req, reply, 400, 'invalid_scope', 1002012, `The scope '${scope}' is not valid; client credentials need a scope ending in '/.default', such as https://graph.microsoft.com/.default.`);
    const t = await svc.tenants.resolve(req.params.tenant);
    if (!t) return oauthError(req, reply, 400, 'invalid_request', 90002, `Tenant '${req.params.tenant}' not found. Check the tenant id, name or verified domain.`);
    const auth = await svc.apps.authenticate(t.id, clientId, secret);
    if (!auth.app) {
      if (auth.reason === 'unknown_client')
        return oauthError(req, reply, 400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${t.name}'. Check the client id and the tenant.`);
      return oauthError(req, reply, 401, 'invalid_client', 7000215, `Invalid client secret provided for application '${clientId}'. Use the secret printed by nimbus app create or rotate-secret.`);
    }
    const audience = scope.slice(0, -'/.default'.length);
    const { token, expiresIn } = await svc.tokens.issue(t, auth.app, audience, baseUrl(req, svc.config.publicUrl));
    return reply.send({ token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token });
  });
}
