// Graph routes for tenant-level resources: domains, organization (directory sync switch),
// the recycle bin (directory/deletedItems), directory roles, directoryObjects, audit logs.
import type { FastifyInstance } from 'fastify';
import { badRequest, notFound } from '../../../shared/errors.ts';
import type { ObjectType } from '../../model/properties.ts';
import { domainToGraph, verificationRecords } from '../../services/domains.ts';
import type { Services } from '../../services/index.ts';
import { findObject, refId } from '../../services/objects.ts';
import { actorOf, baseUrl, queryOptions, sendCollection, sendEntity } from '../http.ts';
import { parseTop } from '../../services/query.ts';
import { toGraph, parseSelect } from '../../model/properties.ts';

export function directoryRoutes(app: FastifyInstance, svc: Services) {
  const base = (req: Parameters<typeof baseUrl>[0]) => baseUrl(req, svc.config.publicUrl);
  type P = { Params: { id: string } };

  // ---- domains ----
  app.get('/v1.0/domains', async (req, reply) => {
    queryOptions(req, []);
    const ds = await svc.domains.list(actorOf(req).tenantId);
    return sendCollection(req, reply, base(req), 'domains', { items: ds.map(domainToGraph) });
  });
  app.post('/v1.0/domains', async (req, reply) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') throw badRequest("The request body must be a JSON object with 'id', the domain name.");
    for (const k of Object.keys(body)) if (!['id', '@odata.type'].includes(k)) throw badRequest(`Property '${k}' cannot be set when adding a domain; send only 'id'.`, k);
    const d = await svc.domains.add(actorOf(req), body.id as string);
    return sendEntity(reply, base(req), 'domains/$entity', domainToGraph(d), 201);
  });
  app.get<P>('/v1.0/domains/:id', async (req, reply) => sendEntity(reply, base(req), 'domains/$entity', domainToGraph(await svc.domains.get(actorOf(req).tenantId, req.params.id))));
  app.patch<P>('/v1.0/domains/:id', async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(body)) if (k !== 'isDefault') throw badRequest(`Property '${k}' of a domain cannot be changed here; only isDefault can.`, k);
    if (body.isDefault !== true) throw badRequest("Set 'isDefault' to true on the domain that should become the default.", 'isDefault');
    await svc.domains.setDefault(actorOf(req), req.params.id);
    return reply.code(204).send();
  });
  app.delete<P>('/v1.0/domains/:id', async (req, reply) => {
    await svc.domains.remove(actorOf(req), req.params.id);
    return reply.code(204).send();
  });
  app.get<P>('/v1.0/domains/:id/verificationDnsRecords', async (req, reply) => {
    const d = await svc.domains.get(actorOf(req).tenantId, req.params.id);
    return sendCollection(req, reply, base(req), `domains('${d.name}')/verificationDnsRecords`, { items: verificationRecords(d) });
  });
  app.post<P>('/v1.0/domains/:id/verify', async (req, reply) =>
    sendEntity(reply, base(req), 'domains/$entity', domainToGraph(await svc.domains.verify(actorOf(req), req.params.id))),
  );

  // ---- organization ----
  app.get('/v1.0/organization', async (req, reply) => sendCollection(req, reply, base(req), 'organization', { items: [await svc.organization.get(actorOf(req).tenantId)] }));
  app.get<P>('/v1.0/organization/:id', async (req, reply) => {
    const actor = actorOf(req);
    if (req.params.id.toLowerCase() !== actor.tenantId) throw badRequest(`Organization '${req.params.id}' is not this tenant's; use ${actor.tenantId}.`);
    return sendEntity(reply, base(req), 'organization/$entity', await svc.organization.get(actor.tenantId));
  });
  app.patch<P>('/v1.0/organization/:id', async (req, reply) => {
    const actor = actorOf(req);
    if (req.params.id.toLowerCase() !== actor.tenantId) throw badRequest(`Organization '${req.params.id}' is not this tenant's; use ${actor.tenantId}.`);
    const body = (req.body ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(body)) if (k !== 'onPremisesSyncEnabled') throw badRequest(`Property '${k}' of the organization cannot be changed; only onPremisesSyncEnabled can.`, k);
    if (typeof body.onPremisesSyncEnabled !== 'boolean') throw badRequest("Invalid value for property 'onPremisesSyncEnabled': expected true (activate) or false (deactivate).", 'onPremisesSyncEnabled');
    // An administrator's PATCH is the explicit confirmation the API asks for.
    await svc.organization.setDirSync(actor, body.onPremisesSyncEnabled);
    return reply.code(204).send();
  });

  // ---- recycle bin ----
  const deletedList = (type: ObjectType) => async (req: Parameters<typeof actorOf>[0], reply: Parameters<typeof sendCollection>[1]) => {
    const q = queryOptions(req, ['$filter', '$select', '$orderby', '$top', '$skiptoken']);
    const page = await svc.directory.listDeleted(actorOf(req), type, { filter: q.$filter, select: q.$select, orderby: q.$orderby, top: q.$top, skiptoken: q.$skiptoken });
    page.items = page.items.map((i) => ({ '@odata.type': `#microsoft.graph.${type}`, ...i }));
    return sendCollection(req, reply, base(req), `directory/deletedItems/microsoft.graph.${type}`, page);
  };
  app.get('/v1.0/directory/deletedItems/microsoft.graph.user', deletedList('user'));
  app.get('/v1.0/directory/deletedItems/microsoft.graph.group', deletedList('group'));
  app.get<P>('/v1.0/directory/deletedItems/:id', async (req, reply) => {
    const q = queryOptions(req, ['$select']);
    return sendEntity(reply, base(req), 'directoryObjects/$entity', await svc.directory.getDeleted(actorOf(req), req.params.id, q.$select));
  });
  app.post<P>('/v1.0/directory/deletedItems/:id/restore', async (req, reply) =>
    sendEntity(reply, base(req), 'directoryObjects/$entity', await svc.directory.restore(actorOf(req), req.params.id)),
  );
  app.delete<P>('/v1.0/directory/deletedItems/:id', async (req, reply) => {
    await svc.directory.purge(actorOf(req), req.params.id);
    return reply.code(204).send();
  });

  // ---- directory roles ----
  app.get('/v1.0/directoryRoles', async (req, reply) => sendCollection(req, reply, base(req), 'directoryRoles', { items: svc.directory.roles() }));
  app.get<P>('/v1.0/directoryRoles/:id', async (req, reply) => sendEntity(reply, base(req), 'directoryRoles/$entity', svc.directory.role(roleKey(req.params.id))));
  app.get<P>('/v1.0/directoryRoles/:id/members', async (req, reply) =>
    sendCollection(req, reply, base(req), 'directoryObjects', { items: await svc.directory.roleMembers(actorOf(req), roleKey(req.params.id)) }),
  );
  app.post<P>('/v1.0/directoryRoles/:id/members/$ref', async (req, reply) => {
    await svc.directory.assignRole(actorOf(req), roleKey(req.params.id), refId(req.body));
    return reply.code(204).send();
  });
  app.delete<{ Params: { id: string; memberId: string } }>('/v1.0/directoryRoles/:id/members/:memberId/$ref', async (req, reply) => {
    await svc.directory.unassignRole(actorOf(req), roleKey(req.params.id), req.params.memberId);
    return reply.code(204).send();
  });

  // ---- directoryObjects ----
  app.get<P>('/v1.0/directoryObjects/:id', async (req, reply) => {
    queryOptions(req, []);
    const o = await findObject(svc.db, actorOf(req).tenantId, req.params.id.toLowerCase());
    if (!o) throw notFound(`Resource '${req.params.id}' does not exist or one of its queried reference-property objects are not present.`);
    return sendEntity(reply, base(req), 'directoryObjects/$entity', { '@odata.type': `#microsoft.graph.${o.type}`, ...toGraph(o.row, parseSelect(o.type, undefined)) });
  });

  // ---- audit logs ----
  app.get('/v1.0/auditLogs/directoryAudits', async (req, reply) => {
    const q = queryOptions(req, ['$top', '$skiptoken']);
    const top = parseTop(q.$top, 100);
    const before = q.$skiptoken !== undefined ? Number(Buffer.from(q.$skiptoken, 'base64url').toString()) : undefined;
    if (before !== undefined && !Number.isInteger(before)) throw badRequest('Invalid $skiptoken: the token is malformed. Start again from the first page.', '$skiptoken');
    const page = await svc.audit.list(actorOf(req).tenantId, { top, ...(before !== undefined ? { before } : {}) });
    return sendCollection(req, reply, base(req), 'auditLogs/directoryAudits', {
      items: page.items,
      nextSkiptoken: page.next !== undefined ? Buffer.from(String(page.next)).toString('base64url') : undefined,
    });
  });
}

/** `directoryRoles(roleTemplateId='...')` or a plain id. */
function roleKey(id: string): string {
  const m = /roleTemplateId='([^']+)'/i.exec(id);
  return m ? m[1]! : id;
}
