// Test helper: a real cloud directory (SQLite store in a temp folder, Fastify on a loopback
// port, optionally HTTPS with a self-signed certificate) with tenants and app credentials.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { generate } from 'selfsigned';
import { ManualClock, type Clock } from '../../src/shared/clock.ts';
import type { DirectoryConfig } from '../../src/cloud/config.ts';
import type { TxtLookup } from '../../src/cloud/dns.ts';
import { buildServer } from '../../src/server.ts';
import { cliActor, type AppRole } from '../../src/cloud/services/context.ts';
import { openServices, type Services } from '../../src/cloud/services/index.ts';
import type { TenantTable } from '../../src/cloud/store/schema.ts';

export interface TestTenant {
  tenant: TenantTable;
  /** A bearer token for an app of this tenant with the given role. */
  token(role?: AppRole): Promise<string>;
  credentials(role?: AppRole): Promise<{ clientId: string; clientSecret: string }>;
}

export interface TestCloud {
  svc: Services;
  app: FastifyInstance;
  url: string;
  cert?: string;
  clock: Clock;
  dataDir: string;
  createTenant(name: string): Promise<TestTenant>;
  /** fetch against the server with a bearer token. */
  graph(token: string, path: string, init?: { method?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

export interface TestCloudOptions {
  https?: boolean;
  clock?: Clock;
  config?: Partial<DirectoryConfig>;
  lookupTxt?: TxtLookup;
}

let certCache: { cert: string; key: string } | undefined;
export function testCertificate() {
  certCache ??= (() => {
    const p = generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    return { cert: p.cert, key: p.private };
  })();
  return certCache;
}

export async function startCloud(opts: TestCloudOptions = {}): Promise<TestCloud> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-test-'));
  const clock = opts.clock ?? new ManualClock(new Date());
  const svc = await openServices(dataDir, {
    clock,
    // A low scrypt cost keeps tests quick; production uses 2^15.
    config: { passwordScryptLogN: 10, ...opts.config },
    ...(opts.lookupTxt ? { lookupTxt: opts.lookupTxt } : {}),
  });
  const tls = opts.https ? testCertificate() : undefined;
  const app = await buildServer(svc, { https: tls });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address() as { port: number };
  const url = `${opts.https ? 'https' : 'http'}://127.0.0.1:${addr.port}`;

  const cloud: TestCloud = {
    svc,
    app,
    url,
    ...(tls ? { cert: tls.cert } : {}),
    clock,
    dataDir,
    async createTenant(name) {
      const tenant = await svc.tenants.create(name);
      const creds = new Map<AppRole, { clientId: string; clientSecret: string }>();
      const credentials = async (role: AppRole = 'readwrite') => {
        let c = creds.get(role);
        if (!c) {
          const { app: a, secret } = await svc.apps.create(cliActor(tenant.id), `test-${role}`, role);
          c = { clientId: a.client_id, clientSecret: secret };
          creds.set(role, c);
        }
        return c;
      };
      return {
        tenant,
        credentials,
        async token(role: AppRole = 'readwrite') {
          const c = await credentials(role);
          const a = await svc.apps.load(tenant.id, c.clientId);
          return (await svc.tokens.issue(tenant, a, 'https://graph.microsoft.com', url)).token;
        },
      };
    },
    async graph(token, path, init = {}) {
      const res = await app.inject({
        method: (init.method ?? 'GET') as 'GET',
        url: path.startsWith('/') ? path : `/v1.0/${path}`,
        headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
        ...(init.body !== undefined ? { payload: typeof init.body === 'string' ? init.body : JSON.stringify(init.body), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) } } : {}),
      });
      const ct = String(res.headers['content-type'] ?? '');
      return { status: res.statusCode, body: ct.includes('json') ? (JSON.parse(res.body || 'null') as unknown) : res.body, headers: new Headers(res.headers as Record<string, string>) };
    },
    async close() {
      await app.close();
      await svc.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cloud;
}

/** A valid new-user body on the tenant's initial domain. */
export function newUser(t: TenantTable, nick: string, extra: Record<string, unknown> = {}) {
  return {
    accountEnabled: true,
    displayName: `User ${nick}`,
    mailNickname: nick,
    userPrincipalName: `${nick}@${t.initial_domain}`,
    passwordProfile: { password: 'Str0ng!Passw0rd', forceChangePasswordNextSignIn: false },
    ...extra,
  };
}
