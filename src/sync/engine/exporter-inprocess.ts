// The in-process exporter: calls the cloud directory's sync service directly (same service
// layer as the HTTP endpoint), as the embedded `nimbus start` does.
import type { Actor } from '../../cloud/services/context.ts';
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
  return {
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
    async close() {},
  };
}
