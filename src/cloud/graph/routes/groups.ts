// Graph routes for /v1.0/groups: CRUD, delta, members and members/$ref.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services/index.ts';
import { actorOf, baseUrl, queryOptions, sendCollection, sendEntity, wantsCount } from '../http.ts';
import { deltaResponse } from './delta.ts';

const LIST = ['$filter', '$select', '$orderby', '$top', '$skiptoken', '$count'];

export function groupRoutes(app: FastifyInstance, svc: Services) {
  const base = (req: Parameters<typeof baseUrl>[0]) => baseUrl(req, svc.config.publicUrl);
  type P = { Params: { id: string } };

  app.get('/v1.0/groups', async (req, reply) => {
    const q = queryOptions(req, LIST);
    const page = await svc.groups.list(actorOf(req), { filter: q.$filter, select: q.$select, orderby: q.$orderby, top: q.$top, skiptoken: q.$skiptoken, count: wantsCount(req, q) });
    return sendCollection(req, reply, base(req), 'groups', page);
  });

  app.get('/v1.0/groups/$count', async (req, reply) => {
    const q = queryOptions(req, ['$filter']);
    wantsCount(req, { $count: 'true' });
    return reply.type('text/plain').send(String(await svc.groups.count(actorOf(req), q.$filter)));
  });

  app.get('/v1.0/groups/delta', async (req, reply) => deltaResponse(req, reply, svc, 'group', base(req)));
  app.get('/v1.0/groups/delta()', async (req, reply) => deltaResponse(req, reply, svc, 'group', base(req)));

  app.post('/v1.0/groups', async (req, reply) => sendEntity(reply, base(req), 'groups/$entity', await svc.groups.create(actorOf(req), req.body), 201));

  app.get<P>('/v1.0/groups/:id', async (req, reply) => {
    const q = queryOptions(req, ['$select']);
    return sendEntity(reply, base(req), 'groups/$entity', await svc.groups.get(actorOf(req), req.params.id, q.$select));
  });

  app.patch<P>('/v1.0/groups/:id', async (req, reply) => {
    await svc.groups.update(actorOf(req), req.params.id, req.body);
    return reply.code(204).send();
  });

  app.delete<P>('/v1.0/groups/:id', async (req, reply) => {
    const g = await svc.groups.load(actorOf(req).tenantId, req.params.id);
    await svc.directory.remove(actorOf(req), 'group', g.id);
    return reply.code(204).send();
  });

  app.get<P>('/v1.0/groups/:id/members', async (req, reply) => {
    const q = queryOptions(req, ['$top', '$skiptoken']);
    return sendCollection(req, reply, base(req), 'directoryObjects', await svc.groups.members(actorOf(req), req.params.id, { top: q.$top, skiptoken: q.$skiptoken }));
  });

  app.post<P>('/v1.0/groups/:id/members/$ref', async (req, reply) => {
    await svc.groups.addMember(actorOf(req), req.params.id, req.body);
    return reply.code(204).send();
  });

  app.delete<{ Params: { id: string; memberId: string } }>('/v1.0/groups/:id/members/:memberId/$ref', async (req, reply) => {
    await svc.groups.removeMember(actorOf(req), req.params.id, req.params.memberId);
    return reply.code(204).send();
  });

  app.get<P>('/v1.0/groups/:id/memberOf', async (req, reply) => {
    const q = queryOptions(req, ['$select', '$top', '$skiptoken']);
    const g = await svc.groups.load(actorOf(req).tenantId, req.params.id);
    const page = await svc.groups.memberOf(actorOf(req), g.id, { select: q.$select, top: q.$top, skiptoken: q.$skiptoken });
    page.items = page.items.map((i) => ({ '@odata.type': '#microsoft.graph.group', ...i }));
    return sendCollection(req, reply, base(req), 'directoryObjects', page);
  });
}
