// Graph delta responses for users and groups: @odata.nextLink while a round has more
// pages, @odata.deltaLink at its end (see Graph's "Use delta query" documentation).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ObjectType } from '../../model/properties.ts';
import type { Services } from '../../services/index.ts';
import { actorOf, queryOptions } from '../http.ts';

export async function deltaResponse(req: FastifyRequest, reply: FastifyReply, svc: Services, type: ObjectType, base: string) {
  const q = queryOptions(req, ['$select', '$skiptoken', '$deltatoken']);
  const prefer = String(req.headers.prefer ?? '');
  const m = /odata\.maxpagesize=(\d+)/i.exec(prefer);
  const pageSize = m ? Math.min(999, Math.max(1, Number(m[1]))) : 100;
  const params = { select: q.$select, skiptoken: q.$skiptoken, deltatoken: q.$deltatoken, pageSize };
  const actor = actorOf(req);
  const r = type === 'user' ? await svc.users.delta(actor, params) : await svc.groups.delta(actor, params);
  const path = `${base}/v1.0/${type === 'user' ? 'users' : 'groups'}/delta`;
  const body: Record<string, unknown> = { '@odata.context': `${base}/v1.0/$metadata#${type === 'user' ? 'users' : 'groups'}(${q.$select ?? '*'})` };
  if (r.next) body['@odata.nextLink'] = `${path}?$skiptoken=${r.next}`;
  if (r.delta) body['@odata.deltaLink'] = `${path}?$deltatoken=${r.delta}`;
  body.value = r.items;
  if (m) reply.header('preference-applied', `odata.maxpagesize=${pageSize}`);
  return reply.send(body);
}
