// Shared helpers for Graph routes: the caller's identity on the request, query-option
// checks, collection responses with @odata.nextLink, and the public base URL.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { badRequest, unsupported } from '../../shared/errors.ts';
import type { Actor } from '../services/context.ts';
import type { Page } from '../services/query.ts';

declare module 'fastify' {
  interface FastifyRequest {
    actor?: Actor;
  }
}

export function actorOf(req: FastifyRequest): Actor {
  // The auth hook sets it on every /v1.0 route; a missing actor is a wiring bug.
  if (!req.actor) throw new Error('route reached without authentication');
  return req.actor;
}

export function baseUrl(req: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  return `${req.protocol}://${req.host}`;
}

export type Query = Record<string, string | undefined>;

const KNOWN_OPTIONS = ['$filter', '$select', '$orderby', '$top', '$skiptoken', '$count', '$deltatoken', '$expand', '$search', '$skip', '$format', '$apply', '$levels', '$compute'];

/**
 * Reads the OData system query options a route supports. Anything else starting with `$`
 * is refused with a 400 that names it, never silently ignored (a silently ignored $filter
 * is a wrong answer).
 */
export function queryOptions(req: FastifyRequest, allowed: readonly string[]): Query {
  const raw = (req.query ?? {}) as Record<string, unknown>;
  const out: Query = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!k.startsWith('$')) continue;
    const key = k.toLowerCase();
    if (Array.isArray(v)) throw badRequest(`Query option '${k}' was given more than once; give it once.`, k);
    if (!allowed.includes(key)) {
      if (KNOWN_OPTIONS.includes(key)) throw unsupported(`The query option '${k}' is not supported on this resource. Supported here: ${allowed.join(', ') || 'none'}.`);
      throw badRequest(`Unknown query option '${k}'. OData system query options on this resource: ${allowed.join(', ') || 'none'}.`, k);
    }
    out[key] = String(v);
  }
  return out;
}

export function wantsCount(req: FastifyRequest, q: Query): boolean {
  if (q.$count === undefined) return false;
  if (q.$count !== 'true' && q.$count !== 'false') throw badRequest(`Invalid $count: '${q.$count}'; use true or false.`, '$count');
  if (q.$count === 'false') return false;
  const cl = req.headers.consistencylevel;
  if (typeof cl !== 'string' || cl.toLowerCase() !== 'eventual')
    throw badRequest("$count requires the request header 'ConsistencyLevel: eventual' (an advanced query in Microsoft Graph). Add the header and retry.", '$count');
  return true;
}

/** The current URL with `$skiptoken` (or another paging key) replaced. */
export function linkWith(req: FastifyRequest, base: string, set: Record<string, string>, drop: readonly string[] = []): string {
  const u = new URL(req.url, 'http://x');
  for (const k of [...u.searchParams.keys()]) if (k.toLowerCase() === '$skiptoken' || drop.includes(k.toLowerCase())) u.searchParams.delete(k);
  for (const [k, v] of Object.entries(set)) u.searchParams.set(k, v);
  // Keep `$` readable in links, as Graph does.
  return `${base}${u.pathname}?${u.searchParams.toString().replace(/%24/g, '$')}`;
}

export function sendCollection(req: FastifyRequest, reply: FastifyReply, base: string, context: string, page: Page | { items: unknown[]; nextSkiptoken?: string | undefined; count?: number }) {
  const body: Record<string, unknown> = { '@odata.context': `${base}/v1.0/$metadata#${context}` };
  if (page.count !== undefined) body['@odata.count'] = page.count;
  if (page.nextSkiptoken) body['@odata.nextLink'] = linkWith(req, base, { $skiptoken: page.nextSkiptoken });
  body.value = page.items;
  return reply.send(body);
}

export function sendEntity(reply: FastifyReply, base: string, context: string, entity: Record<string, unknown>, status = 200) {
  return reply.code(status).send({ '@odata.context': `${base}/v1.0/$metadata#${context}`, ...entity });
}
