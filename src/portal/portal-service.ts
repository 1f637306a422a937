// What the portal's pages show, read through the cloud services: the directories a signed-in
// person may see, a tenant's object counts, and the Directory Integration overview (activation,
// runs the agent reported, the export lease, requests, provisioning errors with the objects in
// conflict). Writes go straight to the services from the routes.
import { sql } from 'kysely';
import type { Services } from '../cloud/services/index.ts';
import type { TenantTable } from '../cloud/store/schema.ts';
import { createSyncControlService, type SyncRequest } from '../cloud/sync/sync-control.ts';
import type { ProvisioningError } from '../cloud/sync/sync-wire.ts';
import { actorFor, type PortalPrincipal } from './sessions.ts';

export interface TenantCounts {
  users: number;
  syncedUsers: number;
  groups: number;
  syncedGroups: number;
  deletedUsers: number;
}

export interface SyncErrorRow {
  objectId: string;
  objectType: 'user' | 'group';
  displayName: string | null;
  userPrincipalName: string | null;
  error: ProvisioningError;
  /** The other object in the conflict, looked up now (it may have been renamed since). */
  conflicting?: { id: string; type: 'user' | 'group'; displayName: string | null; userPrincipalName: string | null };
}

export type RunView = Awaited<ReturnType<Services['sync']['runs']>>['runs'][number];

export function createPortalService(svc: Services) {
  const { db } = svc;
  const control = createSyncControlService(svc.deps);

  async function counts(tenantId: string): Promise<TenantCounts> {
    const u = await db
      .selectFrom('users')
      .select([
        sql<number>`sum(case when deleted_at is null then 1 else 0 end)`.as('live'),
        sql<number>`sum(case when deleted_at is null and on_prem_sync_enabled = 1 then 1 else 0 end)`.as('synced'),
        sql<number>`sum(case when deleted_at is not null then 1 else 0 end)`.as('deleted'),
      ])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    const g = await db
      .selectFrom('groups')
      .select([sql<number>`count(*)`.as('live'), sql<number>`sum(case when on_prem_sync_enabled = 1 then 1 else 0 end)`.as('synced')])
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { users: Number(u.live ?? 0), syncedUsers: Number(u.synced ?? 0), deletedUsers: Number(u.deleted ?? 0), groups: Number(g.live ?? 0), syncedGroups: Number(g.synced ?? 0) };
  }

  /** Objects carrying provisioning errors (newest sync first), each error with the other object named. */
  async function syncErrors(tenantId: string, limit = 100): Promise<{ rows: SyncErrorRow[]; objects: number }> {
    const users = await db
      .selectFrom('users')
      .select(['id', 'display_name', 'upn', 'on_prem_provisioning_errors'])
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null)
      .where('on_prem_provisioning_errors', '!=', '[]')
      .orderBy('display_name')
      .limit(limit)
      .execute();
    const groups = await db
      .selectFrom('groups')
      .select(['id', 'display_name', 'on_prem_provisioning_errors'])
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null)
      .where('on_prem_provisioning_errors', '!=', '[]')
      .orderBy('display_name')
      .limit(limit)
      .execute();
    const rows: SyncErrorRow[] = [];
    for (const u of users)
      for (const e of JSON.parse(u.on_prem_provisioning_errors) as ProvisioningError[]) rows.push({ objectId: u.id, objectType: 'user', displayName: u.display_name, userPrincipalName: u.upn, error: e });
    for (const g of groups)
      for (const e of JSON.parse(g.on_prem_provisioning_errors) as ProvisioningError[]) rows.push({ objectId: g.id, objectType: 'group', displayName: g.display_name, userPrincipalName: null, error: e });
    const ids = [...new Set(rows.map((r) => r.error.conflictingObjectId).filter((x): x is string => !!x))];
    if (ids.length) {
      const cu = await db.selectFrom('users').select(['id', 'display_name', 'upn']).where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
      const cg = await db.selectFrom('groups').select(['id', 'display_name']).where('tenant_id', '=', tenantId).where('id', 'in', ids).execute();
      const byId = new Map<string, NonNullable<SyncErrorRow['conflicting']>>();
      for (const x of cu) byId.set(x.id, { id: x.id, type: 'user', displayName: x.display_name, userPrincipalName: x.upn });
      for (const x of cg) byId.set(x.id, { id: x.id, type: 'group', displayName: x.display_name, userPrincipalName: null });
      for (const r of rows) {
        const c = r.error.conflictingObjectId ? byId.get(r.error.conflictingObjectId) : undefined;
        if (c) r.conflicting = c;
      }
    }
    return { rows, objects: users.length + groups.length };
  }

  return {
    counts,
    syncErrors,

    /** The directories this person may see: an operator every tenant, an administrator their own. */
    async tenantsFor(p: PortalPrincipal): Promise<TenantTable[]> {
      if (p.kind === 'operator') return svc.tenants.list();
      return p.tenantId ? [await svc.tenants.get(p.tenantId)] : [];
    },

    /** Resolves a tenant reference from a URL; undefined when it does not exist or this person may not see it. */
    async tenantFor(p: PortalPrincipal, ref: string): Promise<TenantTable | undefined> {
      const t = await svc.tenants.resolve(ref);
      if (!t) return undefined;
      if (p.kind !== 'operator' && t.id !== p.tenantId) return undefined;
      return t;
    },

    /** Everything the Directory Integration tab shows (also polled by its live parts). */
    async syncOverview(p: PortalPrincipal, tenantId: string) {
      const status = await svc.organization.status(tenantId);
      const { inProgress, runs } = await svc.sync.runs(tenantId, 10);
      const lease = await control.lease(tenantId);
      const requests: SyncRequest[] = await control.requests(actorFor(p, tenantId), { top: 10 });
      const latest = runs.find((r) => !r.inProgress);
      const running = runs.find((r) => r.inProgress);
      // The lists a run carries are snapshots of the latest one (sync-runs.ts keeps only that).
      const staged = runs.find((r) => r.pendingExports);
      const stopped = latest?.status === 'stopped-deletion-threshold-exceeded' ? latest : undefined;
      return {
        status,
        counts: await counts(tenantId),
        inProgress,
        running,
        latest,
        runs,
        lease,
        requests,
        pendingRequests: requests.filter((r) => r.status !== 'done'),
        staged: staged?.pendingExports ? { run: staged, exports: staged.pendingExports } : undefined,
        stopped: stopped?.pendingDeletes ? { run: stopped, deletes: stopped.pendingDeletes } : stopped ? { run: stopped, deletes: undefined } : undefined,
      };
    },

    requestSync: (p: PortalPrincipal, tenantId: string, kind: 'sync-now' | 'allow-deletes') => control.createRequest(actorFor(p, tenantId), { kind }),
  };
}

export type PortalService = ReturnType<typeof createPortalService>;
export type SyncOverview = Awaited<ReturnType<PortalService['syncOverview']>>;
