// Test helpers for the admin portal: a tenant administrator (as `nimbus admin create` makes
// one), a signed-in HTTP client that speaks the portal's forms (session cookie + CSRF token),
// an in-process sync agent over an LDIF file, and Debian's Chromium through playwright-core.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { chromium, type Browser } from 'playwright-core';
import { cliActor } from '../../src/cloud/services/context.ts';
import { GLOBAL_ADMIN } from '../../src/cloud/services/directory.ts';
import type { TenantTable } from '../../src/cloud/store/schema.ts';
import { openSyncAgent, type SyncAgent } from '../../src/sync/agent.ts';
import type { SourceConnector } from '../../src/sync/connectors/connector.ts';
import { tempDir } from '../helpers/temp-dirs.ts';
import { configSchema, type SyncConfig } from '../../src/sync/config.ts';
import { createInProcessExporter } from '../../src/sync/engine/exporter-inprocess.ts';
import { AgentMetrics } from '../../src/sync/scheduler/metrics.ts';
import { startScheduler, type CycleResult, type Scheduler } from '../../src/sync/scheduler/scheduler.ts';
import type { TestCloud } from '../helpers/cloud.ts';

export const ADMIN_PASSWORD = 'Portal!Passw0rd';
export const SAMPLE_BASE_DN = 'DC=corp,DC=example,DC=com';

/** A Global Administrator of the tenant, on its initial domain. */
export async function createAdmin(cloud: TestCloud, t: TenantTable, local = 'admin', password = ADMIN_PASSWORD): Promise<{ id: string; upn: string }> {
  const u = await cloud.svc.users.create(cliActor(t.id), {
    accountEnabled: true,
    displayName: `Admin ${local} of ${t.name}`,
    mailNickname: local,
    userPrincipalName: `${local}@${t.initial_domain}`,
    passwordProfile: { password, forceChangePasswordNextSignIn: false },
  });
  await cloud.svc.directory.assignRole(cliActor(t.id), GLOBAL_ADMIN, u.id as string);
  return { id: u.id as string, upn: u.userPrincipalName as string };
}

export interface PortalResponse {
  status: number;
  location: string | null;
  text: string;
  cookies: string[];
}

/** A browser-less portal client: keeps cookies, reads the CSRF token off pages. */
export class PortalClient {
  cookies = new Map<string, string>();
  csrf = '';
  constructor(readonly base: string) {}

  private cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(method: string, path: string, form?: Record<string, string>, headers: Record<string, string> = {}): Promise<PortalResponse> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      redirect: 'manual',
      headers: { ...(this.cookies.size ? { cookie: this.cookieHeader() } : {}), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...headers },
      ...(form ? { body: new URLSearchParams(form).toString() } : {}),
    });
    const cookies = res.headers.getSetCookie();
    for (const c of cookies) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const k = pair!.slice(0, i);
      const v = pair!.slice(i + 1);
      if (/Max-Age=0/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    const text = await res.text();
    const m = /name="_csrf" value="([^"]+)"/.exec(text);
    if (m) this.csrf = m[1]!;
    return { status: res.status, location: res.headers.get('location'), text, cookies };
  }

  get = (path: string) => this.request('GET', path);
  /** A form POST carrying this session's CSRF token (unless the form already has one). */
  post = (path: string, form: Record<string, string> = {}, headers: Record<string, string> = {}) => this.request('POST', path, { _csrf: this.csrf, ...form }, headers);

  /** Signs in through the sign-in form; returns the POST's response. */
  async signIn(name: string, password: string): Promise<PortalResponse> {
    const page = await this.get('/portal/sign-in');
    const token = /name="_signin" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
    const r = await this.request('POST', '/portal/sign-in', { _signin: token, next: '/portal/', name, password });
    if (r.status === 303) await this.get('/portal/'); // picks up the CSRF token
    return r;
  }
}

/** Text of an HTML page without tags, whitespace collapsed (for "the page says" checks). */
export const textOf = (html: string) => html.replace(/<script[\s\S]*?<\/script>/g, '').replace(/<[^>]+>/g, ' ').replace(/&#39;/g, "'").replace(/&amp;/g, '&').replace(/\s+/g, ' ');

/** The sync agent's config for an LDIF file, exporting in-process (as `nimbus start` does). */
export function ldifConfig(tenant: string, ldif: string, sync: Record<string, unknown> = {}): SyncConfig {
  const raw = configSchema.parse({
    source: { type: 'ldif', path: ldif, baseDn: SAMPLE_BASE_DN },
    target: { type: 'nimbus', url: 'http://127.0.0.1', tenant, clientId: 'embedded' },
    sync: { dataDir: join(tempDir('nimbus-portal-agent-'), 'agent'), interval: '1h', cloudPoll: '250ms', changePoll: '0s', ...sync },
  });
  return { ...raw, file: 'environment', secrets: {} };
}

export async function openAgent(cloud: TestCloud, config: SyncConfig, wrapConnector?: (c: SourceConnector) => SourceConnector): Promise<SyncAgent> {
  return openSyncAgent(config, { exporter: await createInProcessExporter(cloud.svc, config.target.tenant), ...(wrapConnector ? { wrapConnector } : {}) });
}

/** The agent's scheduler with the in-process exporter as its control channel (lease, requests). */
export async function startAgent(cloud: TestCloud, config: SyncConfig, opts: { wrapConnector?: (c: SourceConnector) => SourceConnector; onCycle?: (c: CycleResult) => void } = {}): Promise<Scheduler> {
  const control = await createInProcessExporter(cloud.svc, config.target.tenant);
  return startScheduler({
    config,
    reload: () => config,
    logger: pino({ level: 'silent' }),
    metrics: new AgentMetrics({ version: 'test', source: 'ldif', tenant: config.target.tenant }),
    openAgent: (c) => openAgent(cloud, c, opts.wrapConnector),
    openControl: () => control,
    leaseTtlMs: 3000,
    ...(opts.onCycle ? { onCycle: opts.onCycle } : {}),
  });
}

/** A connector whose full import waits until `open()` is called (to watch a run in progress). */
export function gatedConnector(inner: SourceConnector): { connector: SourceConnector; open: () => void; entered: Promise<void> } {
  let open!: () => void;
  let enteredResolve!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const entered = new Promise<void>((r) => (enteredResolve = r));
  const connector: SourceConnector = Object.create(inner) as SourceConnector;
  connector.fullImport = async function* (signal?: AbortSignal) {
    enteredResolve();
    await gate;
    yield* inner.fullImport(signal);
  };
  return { connector, open, entered };
}

export const CHROMIUM = '/usr/bin/chromium';

/** Debian's Chromium, headless, with the flags this machine's closed network needs. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: the portal's browser tests need Debian's chromium. Run npm run test-servers:install as root (npm test does it), or apt-get install chromium.`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}
