// Graph routes for /v1.0/users: CRUD, delta, manager, directReports, memberOf.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services/index.ts';
import { actorOf, baseUrl, queryOptions, sendCollection, sendEntity, wantsCount, type Query } from '../http.ts';
import { deltaResponse } from './delta.ts';

const LIST = ['$filter', '$select', '$orderby', '$top', '$skiptoken', '$count'];

export function userRoutes(app: FastifyInstance, svc: Services) {
  const base = (req: Parameters<typeof baseUrl>[0]) => baseUrl(req, svc.config.publicUrl);
  type P = { Params: { id: string } };

  app.get('/v1.0/users', async (req, reply) => {
    const q = queryOptions(req, LIST);
    const page = await svc.users.list(actorOf(req), { filter: q.$filter, select: q.$select, orderby: q.$orderby, top: q.$top, skiptoken: q.$skiptoken, count: wantsCount(req, q) });
    return sendCollection(req, reply, base(req), 'users', page);
  });

  app.get('/v1.0/users/$count', async (req, reply) => {
    const q = queryOptions(req, ['$filter']);
    wantsCount(req, { $count: 'true' });
    return reply.type('text/plain').send(String(await svc.users.count(actorOf(req), q.$filter)));
  });

  app.get('/v1.0/users/delta', async (req, reply) => deltaResponse(req, reply, svc, 'user', base(req)));
  app.get('/v1.0/users/delta()', async (req, reply) => deltaResponse(req, reply, svc, 'user', base(req)));

  app.post('/v1.0/users', async (req, reply) => {
    const u = await svc.users.create(actorOf(req), req.body);
    return sendEntity(reply, base(req), 'users/$entity', u, 201);
  });

  app.get<P>('/v1.0/users/:id', async (req, reply) => {
    const q: Query = queryOptions(req, ['$select']);
    return sendEntity(reply, base(req), 'users/$entity', await svc.users.get(actorOf(req), req.params.id, q.$select));
  });

  app.patch<P>('/v1.0/users/:id', async (req, reply) => {
    await svc.users.update(actorOf(req), req.params.id, req.body);
    return reply.code(204).send();
  });

  app.delete<P>('/v1.0/users/:id', async (req, reply) => {
    const u = await svc.users.load(actorOf(req).tenantId, req.params.id);
    await svc.directory.remove(actorOf(req), 'user', u.id);
    return reply.code(204).send();
  });

  app.get<P>('/v1.0/users/:id/manager', async (req, reply) => {
    const q = queryOptions(req, ['$select']);
    return sendEntity(reply, base(req), 'directoryObjects/$entity', await svc.users.getManager(actorOf(req), req.params.id, q.$select));
  });

  app.put<P>('/v1.0/users/:id/manager/$ref', async (req, reply) => {
    await svc.users.setManager(actorOf(req), req.params.id, req.body);
    return reply.code(204).send();
  });

  app.delete<P>('/v1.0/users/:id/manager/$ref', async (req, reply) => {
    await svc.users.getManager(actorOf(req), req.params.id);
    await svc.users.setManager(actorOf(req), req.params.id, null);
    return reply.code(204).send();
  });

  app.get<P>('/v1.0/users/:id/directReports', async (req, reply) => {
    const q = queryOptions(req, ['$select', '$top', '$skiptoken']);
    const page = await svc.users.directReports(actorOf(req), req.params.id, { select: q.$select, top: q.$top, skiptoken: q.$skiptoken });
    page.items = page.items.map((i) => ({ '@odata.type': '#microsoft.graph.user', ...i }));
    return sendCollection(req, reply, base(req), 'directoryObjects', page);
  });

  app.get<P>('/v1.0/users/:id/memberOf', async (req, reply) => {
    const q = queryOptions(req, ['$select', '$top', '$skiptoken']);
    const actor = actorOf(req);
    const u = await svc.users.load(actor.tenantId, req.params.id);
    const page = await svc.groups.memberOf(actor, u.id, { select: q.$select, top: q.$top, skiptoken: q.$skiptoken });
    const items: Record<string, unknown>[] = page.items.map((i) => ({ '@odata.type': '#microsoft.graph.group', ...i }));
    // Directory roles are part of memberOf in Graph; they come on the first page.
    if (!q.$skiptoken) {
      const held = await svc.directory.rolesOf(actor.tenantId, u.id);
      for (const r of svc.directory.roles().filter((x) => held.includes(x.id))) items.push({ '@odata.type': '#microsoft.graph.directoryRole', ...r });
    }
    return sendCollection(req, reply, base(req), 'directoryObjects', { items, nextSkiptoken: page.nextSkiptoken });
  });
}
