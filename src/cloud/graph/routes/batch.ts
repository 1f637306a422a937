// Graph JSON batching (POST /v1.0/$batch): up to 20 requests with unique ids, dependsOn
// ordering, one outer 200 with each inner status. Independent requests run concurrently.
import type { FastifyInstance, FastifyRequest, InjectOptions } from 'fastify';
import { badRequest } from '../../../shared/errors.ts';
import { graphErrorBody } from '../errors.ts';

const MAX_REQUESTS = 20;
const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'];

interface BatchItem {
  id: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: unknown;
  dependsOn?: string[];
}

interface BatchResult {
  id: string;
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

function validate(body: unknown): BatchItem[] {
  const reqs = (body as { requests?: unknown } | undefined)?.requests;
  if (!Array.isArray(reqs)) throw badRequest("Invalid batch: the body must be {\"requests\": [...]}.", 'requests');
  if (reqs.length === 0) throw badRequest('Invalid batch: it has no requests.', 'requests');
  if (reqs.length > MAX_REQUESTS) throw badRequest(`Invalid batch: it has ${reqs.length} requests; the limit is ${MAX_REQUESTS}. Split it into several batches.`, 'requests');
  const ids = new Set<string>();
  const items: BatchItem[] = [];
  for (const [i, r] of reqs.entries()) {
    const o = r as Record<string, unknown>;
    if (!o || typeof o !== 'object') throw badRequest(`Invalid batch: request #${i + 1} is not an object.`, 'requests');
    if (typeof o.id !== 'string' || o.id === '') throw badRequest(`Invalid batch: request #${i + 1} needs a string 'id'.`, 'id');
    if (ids.has(o.id)) throw badRequest(`Invalid batch: the id '${o.id}' is used by more than one request; ids must be unique.`, 'id');
    ids.add(o.id);
    const method = typeof o.method === 'string' ? o.method.toUpperCase() : '';
    if (!METHODS.includes(method)) throw badRequest(`Invalid batch: request '${o.id}' has method '${String(o.method)}'; use one of ${METHODS.join(', ')}.`, 'method');
    if (typeof o.url !== 'string' || o.url === '' || /^[a-z]+:\/\//i.test(o.url))
      throw badRequest(`Invalid batch: request '${o.id}' needs a relative 'url' such as /users/{id}.`, 'url');
    // Dot segments would let the URL climb out of /v1.0 once normalised.
    if (/(^|\/)(\.|%2e){1,2}(\/|\?|$)/i.test(o.url)) throw badRequest(`Invalid batch: the url of request '${o.id}' contains '.' or '..' segments; give the plain Graph path.`, 'url');
    if (/^\/?(v1\.0\/)?\$batch/i.test(o.url)) throw badRequest(`Invalid batch: request '${o.id}' is itself a batch; batches cannot be nested.`, 'url');
    if (o.headers !== undefined && (typeof o.headers !== 'object' || o.headers === null)) throw badRequest(`Invalid batch: 'headers' of request '${o.id}' must be an object.`, 'headers');
    if (o.body !== undefined && !['POST', 'PATCH', 'PUT'].includes(method)) throw badRequest(`Invalid batch: request '${o.id}' is a ${method} and cannot have a body.`, 'body');
    if (o.body !== undefined && typeof o.body !== 'string') {
      try {
        JSON.stringify(o.body);
      } catch {
        throw badRequest(`Invalid batch: the body of request '${o.id}' is nested too deeply to be sent on.`, 'body');
      }
    }
    if (o.dependsOn !== undefined && (!Array.isArray(o.dependsOn) || o.dependsOn.some((d) => typeof d !== 'string')))
      throw badRequest(`Invalid batch: 'dependsOn' of request '${o.id}' must be an array of request ids.`, 'dependsOn');
    items.push({ id: o.id, method, url: o.url, ...(o.headers ? { headers: o.headers as Record<string, string> } : {}), ...(o.body !== undefined ? { body: o.body } : {}), ...(o.dependsOn ? { dependsOn: o.dependsOn as string[] } : {}) });
  }
  for (const it of items)
    for (const d of it.dependsOn ?? []) {
      if (!ids.has(d)) throw badRequest(`Invalid batch: request '${it.id}' depends on '${d}', which is not in the batch.`, 'dependsOn');
      if (d === it.id) throw badRequest(`Invalid batch: request '${it.id}' depends on itself.`, 'dependsOn');
    }
  // Cycles are refused before anything runs, so a refused batch has changed nothing.
  const byId = new Map(items.map((i) => [i.id, i]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') throw badRequest(`Invalid batch: the dependsOn chain through '${id}' is circular.`, 'dependsOn');
    state.set(id, 'visiting');
    for (const d of byId.get(id)?.dependsOn ?? []) visit(d);
    state.set(id, 'done');
  };
  for (const it of items) visit(it.id);
  return items;
}

export function batchRoutes(app: FastifyInstance) {
  app.post('/v1.0/$batch', async (req: FastifyRequest, reply) => {
    const items = validate(req.body);
    const byId = new Map(items.map((i) => [i.id, i]));
    const done = new Map<string, Promise<BatchResult>>();
    const visiting = new Set<string>();

    const run = (it: BatchItem): Promise<BatchResult> => {
      const existing = done.get(it.id);
      if (existing) return existing;
      if (visiting.has(it.id)) throw badRequest(`Invalid batch: the dependsOn chain through '${it.id}' is circular.`, 'dependsOn');
      visiting.add(it.id);
      const deps = (it.dependsOn ?? []).map((d) => run(byId.get(d)!));
      const p = Promise.all(deps).then(async (results): Promise<BatchResult> => {
        const failed = results.find((r) => r.status >= 400);
        if (failed) {
          return { id: it.id, status: 424, headers: { 'Content-Type': 'application/json' }, body: graphErrorBody(req, 'FailedDependency', `Request '${it.id}' was not run because request '${failed.id}', which it depends on, failed with status ${failed.status}.`) };
        }
        const headers: Record<string, string> = { ...(it.headers ?? {}) };
        if (req.headers.authorization) headers.authorization = req.headers.authorization;
        if (it.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
        const inject: InjectOptions = {
          method: it.method as InjectOptions['method'],
          url: `/v1.0${it.url.startsWith('/') ? '' : '/'}${it.url}`,
          headers,
          ...(it.body !== undefined ? { payload: typeof it.body === 'string' ? it.body : JSON.stringify(it.body) } : {}),
        };
        const res = await app.inject(inject);
        const ct = String(res.headers['content-type'] ?? '');
        // Graph spells inner response headers 'Content-Type'; the Graph JS SDK's BatchResponseContent
        // looks that key up case-sensitively to decide whether the body is JSON.
        const out: BatchResult = { id: it.id, status: res.statusCode, headers: ct ? { 'Content-Type': ct } : {} };
        if (res.body) out.body = ct.includes('json') ? (JSON.parse(res.body) as unknown) : res.body;
        return out;
      });
      done.set(it.id, p);
      return p;
    };

    for (const it of items) void run(it);
    const responses = await Promise.all(items.map((it) => done.get(it.id)!));
    return reply.send({ responses });
  });
}
