// The in-process exporter: calls the cloud directory's sync service directly (same service
// layer as the HTTP endpoint), as the embedded `nimbus start` does.
import { propsOf } from '../../cloud/model/properties.ts';
import type { Actor } from '../../cloud/services/context.ts';
import { createSyncControlService } from '../../cloud/sync/sync-control.ts';
import type { Services } from '../../cloud/services/index.ts';
import { NimbusError } from '../../shared/errors.ts';
import { SyncError } from '../errors.ts';
import type { Exporter } from './exporter.ts';

function translate(err: unknown): never {
  if (err instanceof NimbusError) {
    if (err.code === 'DirectorySyncNotActivated') throw new SyncError('DirectorySyncNotActivated', err.message);
    throw new SyncError('TargetRefused', `The cloud directory refused the export: ${err.message}`, { cause: err });
  }
  throw err;
}

export async function createInProcessExporter(svc: Services, tenant: string): Promise<Exporter> {
  const t = await svc.tenants.resolve(tenant);
  if (!t) throw new SyncError('TargetRefused', `target.tenant: tenant '${tenant}' does not exist in this cloud directory. Create it with nimbus tenant create, or fix the name.`);
  const actor: Actor = { tenantId: t.id, kind: 'app', id: 'in-process-sync-agent', name: 'sync agent (in-process)', role: 'sync' };
  const control = createSyncControlService(svc.deps);
  return {
    // Calls go into the service's transactions in the order made (one connection, FIFO).
    inFlight: 2,
    identity: `in-process:${t.id}`,
    async check() {
      await svc.sync.apply(actor, []).catch(translate);
    },
    async export(items) {
      return svc.sync.apply(actor, items).catch(translate);
    },
    async reportRun(run) {
      await svc.sync.reportRun(actor, run).catch(translate);
    },
    async lookup(type, cloudId) {
      const select = propsOf(type).map((p) => p.name).join(',');
      const notFound = (err: unknown) => {
        if (err instanceof NimbusError && err.kind === 'not_found') return null;
        throw err;
      };
      const live = await (type === 'user' ? svc.users.get(actor, cloudId, select) : svc.groups.get(actor, cloudId, select)).catch(notFound);
      return live ?? (await svc.directory.getDeleted(actor, cloudId, select).catch(notFound));
    },
    acquireLease: (holder, ttlSeconds) => control.acquireLease(actor, { holder, ttlSeconds }).catch(translate),
    async releaseLease(holder) {
      await control.releaseLease(actor, holder).catch(translate);
    },
    pendingRequests: async () => (await control.requests(actor, { status: 'pending', top: 50 }).catch(translate)).reverse(),
    async updateRequest(id, update) {
      await control.updateRequest(actor, id, update).catch(translate);
    },
    async close() {},
  };
}
