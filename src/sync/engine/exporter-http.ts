// The HTTP exporter: OAuth2 client credentials at /{tenant}/oauth2/v2.0/token, then
// POST /sync/v1/objects; trusts target.caFile through an undici Agent, retries 429 and 5xx
// (honouring Retry-After) and network errors with capped exponential backoff.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, fetch, type Response } from 'undici';
import { leaseState, syncRequest } from '../../cloud/sync/sync-control.ts';
import { propsOf } from '../../cloud/model/properties.ts';
import type { Secret, SyncConfig } from '../config.ts';
import { SyncError } from '../errors.ts';
import type { Exporter, PreparedUpsert, SyncItem, SyncResult } from './exporter.ts';

export interface HttpExporterOptions {
  url: string;
  tenant: string;
  clientId: string;
  clientSecret: Secret;
  caFile?: string;
  /** Attempts per request for 429 / 5xx / network errors. Default 6. */
  maxAttempts?: number;
  /** First backoff delay; doubles per attempt, capped at 15 s. Default 250 ms. */
  backoffMs?: number;
  /** Per-request timeout. Default 120 s (a 500-object batch with large groups takes a while). */
  timeoutMs?: number;
}

interface GraphError {
  error?: { code?: string; message?: string };
  error_description?: string;
}

export function createHttpExporter(o: HttpExporterOptions): Exporter {
  const base = o.url.replace(/\/+$/, '');
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, ...(o.caFile ? { connect: { ca: readFileSync(o.caFile, 'utf8') } } : {}) });
  const maxAttempts = o.maxAttempts ?? 6;
  const backoff = o.backoffMs ?? 250;
  const timeoutMs = o.timeoutMs ?? 120_000;
  let token: { value: string; until: number } | undefined;

  /** One request with retries; returns the final response (any status that is not retried). */
  async function send(url: string, init: { method: string; headers: Record<string, string>; body?: string }, attempts = maxAttempts): Promise<Response> {
    let lastErr: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let res: Response | undefined;
      try {
        res = await fetch(url, { ...init, dispatcher, signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        lastErr = err;
      }
      if (res && res.status !== 429 && res.status < 500) return res;
      let wait = Math.min(15_000, backoff * 2 ** (attempt - 1));
      if (res) {
        const ra = Number(res.headers.get('retry-after'));
        if (Number.isFinite(ra) && ra > 0) wait = Math.min(60_000, ra * 1000);
        lastErr = new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
        if (attempt === attempts) return res;
      }
      if (attempt < attempts) await sleep(wait);
    }
    const cause = lastErr as { message?: string; cause?: { code?: string; message?: string } } | undefined;
    const detail = cause?.cause?.code ?? cause?.cause?.message ?? cause?.message ?? String(lastErr);
    throw new SyncError('TargetUnreachable', `Cannot reach the cloud directory at ${base} (${detail}) after ${attempts} attempts. Check target.url, that the server runs, and target.caFile for a private certificate.`, { cause: lastErr });
  }

  async function errorOf(res: Response): Promise<GraphError> {
    try {
      return (await res.json()) as GraphError;
    } catch {
      return {};
    }
  }

  async function accessToken(force = false): Promise<string> {
    if (!force && token && token.until > Date.now()) return token.value;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: o.clientId, client_secret: o.clientSecret.reveal(), scope: 'https://graph.microsoft.com/.default' });
    const res = await send(`${base}/${encodeURIComponent(o.tenant)}/oauth2/v2.0/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString() });
    if (!res.ok) {
      const e = await errorOf(res);
      throw new SyncError('TargetAuthFailed', `The cloud directory refused the sync app's credentials (HTTP ${res.status}): ${e.error_description ?? JSON.stringify(e.error) ?? ''}. Check target.tenant, target.clientId and the client secret file.`);
    }
    const t = (await res.json()) as { access_token: string; expires_in: number };
    // Renew a minute early so a long run never sends an expired token.
    token = { value: t.access_token, until: Date.now() + Math.max(0, t.expires_in - 60) * 1000 };
    return token.value;
  }

  async function post(items: SyncItem[]): Promise<SyncResult[]> {
    return postBody(JSON.stringify({ objects: items }));
  }

  /** The body built around each upsert's stored JSON text, not parsed and serialized again. */
  async function postPrepared(items: PreparedUpsert[]): Promise<SyncResult[]> {
    const objects = items.map((i) => `{"op":"upsert","type":${JSON.stringify(i.type)},"sourceAnchor":${JSON.stringify(i.sourceAnchor)},"attributes":${i.attributesJson}}`);
    return postBody(`{"objects":[${objects.join(',')}]}`);
  }

  async function postBody(body: string): Promise<SyncResult[]> {
    for (let auth = 0; auth < 2; auth++) {
      const res = await send(`${base}/sync/v1/objects`, { method: 'POST', headers: { authorization: `Bearer ${await accessToken(auth > 0)}`, 'content-type': 'application/json' }, body });
      if (res.ok) return ((await res.json()) as { results: SyncResult[] }).results;
      const e = await errorOf(res);
      const msg = e.error?.message ?? `HTTP ${res.status}`;
      if (res.status === 401 && auth === 0) continue;
      if (e.error?.code === 'DirectorySyncNotActivated') throw new SyncError('DirectorySyncNotActivated', msg);
      if (res.status === 401 || res.status === 403) throw new SyncError('TargetAuthFailed', `${msg} (target.clientId ${o.clientId} needs an app with the sync role: nimbus app create --role sync).`);
      throw new SyncError('TargetRefused', `The cloud directory refused the export (HTTP ${res.status}): ${msg}`);
    }
    throw new SyncError('TargetAuthFailed', 'The cloud directory kept refusing the access token; check the clock and the app.');
  }

  /** The agent's control calls (lease, requests): two attempts, so a poll never blocks the agent for long. */
  async function control(method: string, path: string, body?: unknown): Promise<unknown> {
    for (let auth = 0; auth < 2; auth++) {
      const headers: Record<string, string> = { authorization: `Bearer ${await accessToken(auth > 0)}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await send(`${base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) }, 2);
      if (res.status === 401 && auth === 0) continue;
      if (res.status === 204) return undefined;
      if (res.ok) return await res.json();
      const e = await errorOf(res);
      const msg = e.error?.message ?? `HTTP ${res.status}`;
      if (res.status === 401 || res.status === 403) throw new SyncError('TargetAuthFailed', `${msg} (target.clientId ${o.clientId} needs an app with the sync role: nimbus app create --role sync).`);
      throw new SyncError('TargetRefused', `The cloud directory refused ${method} ${path} (HTTP ${res.status}): ${msg}`);
    }
    throw new SyncError('TargetAuthFailed', 'The cloud directory kept refusing the access token; check the clock and the app.');
  }

  return {
    // One batch at a time: two requests on two connections may be applied in either order.
    inFlight: 1,
    identity: `${base}|${o.tenant.toLowerCase()}`,
    async acquireLease(holder, ttlSeconds) {
      return leaseState.parse(await control('POST', '/sync/v1/lease', { holder, ttlSeconds }));
    },
    async releaseLease(holder) {
      await control('DELETE', `/sync/v1/lease?holder=${encodeURIComponent(holder)}`);
    },
    async pendingRequests() {
      const r = (await control('GET', '/sync/v1/requests?status=pending&top=50')) as { value: unknown[] };
      return r.value.map((x) => syncRequest.parse(x)).reverse();
    },
    async updateRequest(id, update) {
      await control('PATCH', `/sync/v1/requests/${encodeURIComponent(id)}`, update);
    },
    async check() {
      await post([]);
    },
    export: post,
    exportPrepared: postPrepared,
    async reportRun(run) {
      const res = await send(`${base}/sync/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${await accessToken()}`, 'content-type': 'application/json' }, body: JSON.stringify(run) });
      if (!res.ok) throw new SyncError('TargetRefused', `The cloud directory refused the run report (HTTP ${res.status}): ${(await errorOf(res)).error?.message ?? ''}`);
    },
    async lookup(type, cloudId) {
      // Graph GET with every property; a soft-deleted object is found in the recycle bin.
      const select = `$select=${propsOf(type).map((p) => p.name).join(',')}`;
      const id = encodeURIComponent(cloudId);
      for (const url of [`${base}/v1.0/${type}s/${id}?${select}`, `${base}/v1.0/directory/deletedItems/${id}?${select}`]) {
        const res = await send(url, { method: 'GET', headers: { authorization: `Bearer ${await accessToken()}` } }, 2);
        if (res.ok) return (await res.json()) as Record<string, unknown>;
        if (res.status === 404) continue;
        const msg = (await errorOf(res)).error?.message ?? `HTTP ${res.status}`;
        if (res.status === 401 || res.status === 403) throw new SyncError('TargetAuthFailed', `The cloud directory refused to show ${type} ${cloudId}: ${msg}`);
        throw new SyncError('TargetRefused', `The cloud directory refused to show ${type} ${cloudId} (HTTP ${res.status}): ${msg}`);
      }
      return null;
    },
    async close() {
      await dispatcher.close();
    },
  };
}

/** The HTTP exporter of a config's `target` (the agent's, the scheduler's control channel, explain's). */
export function httpExporterFor(config: SyncConfig, tuning: Pick<HttpExporterOptions, 'maxAttempts' | 'backoffMs' | 'timeoutMs'> = {}): Exporter {
  return createHttpExporter({
    url: config.target.url,
    tenant: config.target.tenant,
    clientId: config.target.clientId,
    clientSecret: config.secrets.clientSecret!,
    ...(config.target.caFile ? { caFile: config.target.caFile } : {}),
    ...tuning,
  });
}
