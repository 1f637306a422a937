// HTTP surface of the sync control plane (sync-control.ts): the export lease the agent takes
// and renews, and the requests ("sync now", "allow deletes") administrators make and the
// agent picks up. Same bearer tokens as /sync/v1/objects (see the auth hook in server.ts).
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../../shared/errors.ts';
import { actorOf } from '../graph/http.ts';
import type { Services } from '../services/index.ts';
import { createSyncControlService } from './sync-control.ts';

export function syncControlRoutes(app: FastifyInstance, svc: Services) {
  const control = createSyncControlService(svc.deps);

  /** POST /sync/v1/lease {"holder", "ttlSeconds"} -> the lease, `acquired` says whether the caller holds it. */
  app.post('/sync/v1/lease', async (req, reply) => reply.send(await control.acquireLease(actorOf(req), req.body)));

  /** DELETE /sync/v1/lease?holder=H: a clean shutdown gives the lease up. */
  app.delete<{ Querystring: { holder?: string } }>('/sync/v1/lease', async (req, reply) => {
    if (!req.query.holder) throw badRequest('Give the lease holder: DELETE /sync/v1/lease?holder=<holder id>.', 'holder');
    await control.releaseLease(actorOf(req), req.query.holder);
    return reply.code(204).send();
  });

  /** GET /sync/v1/lease -> {"value": lease or null}. */
  app.get('/sync/v1/lease', async (req, reply) => reply.send({ value: await control.lease(actorOf(req).tenantId) }));

  /** POST /sync/v1/requests {"kind": "sync-now" | "allow-deletes"}: an administrator (readwrite app) asks the agent. */
  app.post('/sync/v1/requests', async (req, reply) => {
    const { request, created } = await control.createRequest(actorOf(req), req.body);
    return reply.code(created ? 201 : 200).send(request);
  });

  /** GET /sync/v1/requests?status=pending&top=N -> {"value": [...]}, newest first. */
  app.get<{ Querystring: { status?: string; top?: string } }>('/sync/v1/requests', async (req, reply) => {
    const top = req.query.top === undefined ? 20 : Number(req.query.top);
    if (!Number.isInteger(top) || top < 1 || top > 200) throw badRequest(`Invalid top '${req.query.top}': give 1-200.`, 'top');
    return reply.send({ value: await control.requests(actorOf(req), { top, ...(req.query.status ? { status: req.query.status } : {}) }) });
  });

  /** PATCH /sync/v1/requests/{id} {"holder", "status": "claimed" | "done" | "pending", "runId"?, "result"?}. */
  app.patch<{ Params: { id: string } }>('/sync/v1/requests/:id', async (req, reply) => reply.send(await control.updateRequest(actorOf(req), req.params.id, req.body)));
}
