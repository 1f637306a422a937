// HTTP surface of the cloud side of sync: the export endpoint the agent calls with a sync
// token, and Graph's onPremisesSynchronization features (the per-tenant match switches).
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../../shared/errors.ts';
import { actorOf, baseUrl, sendCollection, sendEntity } from '../graph/http.ts';
import type { Services } from '../services/index.ts';
import { syncControlRoutes } from './sync-control-routes.ts';
import { MAX_SYNC_BODY_BYTES } from './sync-wire.ts';

export function syncRoutes(app: FastifyInstance, svc: Services) {
  const base = (req: Parameters<typeof baseUrl>[0]) => baseUrl(req, svc.config.publicUrl);

  /** POST /sync/v1/objects {"objects": [...]} -> {"results": [...], "counts": {...}} */
  app.post('/sync/v1/objects', { bodyLimit: MAX_SYNC_BODY_BYTES }, async (req, reply) => {
    const actor = actorOf(req);
    const items = svc.sync.parseBatch(req.body);
    const results = await svc.sync.apply(actor, items);
    const counts: Record<string, number> = {};
    for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
    return reply.send({ results, counts });
  });

  /** POST /sync/v1/runs: the agent reports a run at its start and its end. */
  app.post('/sync/v1/runs', async (req, reply) => {
    await svc.sync.reportRun(actorOf(req), req.body);
    return reply.code(204).send();
  });

  /** GET /sync/v1/runs?top=N: reported runs, newest first, and whether one is running. */
  app.get<{ Querystring: { top?: string } }>('/sync/v1/runs', async (req, reply) => {
    const top = req.query.top === undefined ? 20 : Number(req.query.top);
    if (!Number.isInteger(top) || top < 1 || top > 200) throw badRequest(`Invalid top '${req.query.top}': give 1-200.`, 'top');
    return reply.send(await svc.sync.runs(actorOf(req).tenantId, top));
  });

  syncControlRoutes(app, svc);

  const syncObject = async (tenantId: string) => ({
    id: tenantId,
    features: await svc.sync.features(tenantId),
    configuration: { accidentalDeletionPrevention: { synchronizationPreventionType: 'enabledForCount', alertThreshold: 500 } },
  });

  app.get('/v1.0/directory/onPremisesSynchronization', async (req, reply) =>
    sendCollection(req, reply, base(req), 'directory/onPremisesSynchronization', { items: [await syncObject(actorOf(req).tenantId)] }),
  );
  app.get<{ Params: { id: string } }>('/v1.0/directory/onPremisesSynchronization/:id', async (req, reply) => {
    const actor = actorOf(req);
    if (req.params.id.toLowerCase() !== actor.tenantId) throw badRequest(`onPremisesSynchronization '${req.params.id}' is not this tenant's; use ${actor.tenantId}.`);
    return sendEntity(reply, base(req), 'directory/onPremisesSynchronization/$entity', await syncObject(actor.tenantId));
  });
  app.patch<{ Params: { id: string } }>('/v1.0/directory/onPremisesSynchronization/:id', async (req, reply) => {
    const actor = actorOf(req);
    if (req.params.id.toLowerCase() !== actor.tenantId) throw badRequest(`onPremisesSynchronization '${req.params.id}' is not this tenant's; use ${actor.tenantId}.`);
    const body = (req.body ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(body)) if (k !== 'features') throw badRequest(`Property '${k}' cannot be changed here; send {"features": {...}}.`, k);
    if (typeof body.features !== 'object' || body.features === null) throw badRequest("Send {\"features\": {\"blockSoftMatchEnabled\": true, ...}}.", 'features');
    await svc.sync.setFeatures(actor, body.features);
    return reply.code(204).send();
  });
}
