// The audit log: every administrative change, who made it, when, and how it ended.
// Exposed as Graph's /auditLogs/directoryAudits.
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { Actor, Deps } from './context.ts';

export interface AuditTarget {
  id: string;
  displayName?: string | null;
  type: string;
  userPrincipalName?: string | null;
  modifiedProperties?: { displayName: string; oldValue: string | null; newValue: string | null }[];
}

export interface AuditEntry {
  category: 'DirectoryManagement' | 'UserManagement' | 'GroupManagement' | 'ApplicationManagement' | 'RoleManagement' | 'Authentication';
  activity: string;
  operationType: 'Add' | 'Update' | 'Delete' | 'Restore' | 'Assign' | 'Unassign' | 'Verify' | 'Other';
  result: 'success' | 'failure';
  reason?: string;
  targets: AuditTarget[];
}

export function initiatedBy(actor: Actor): unknown {
  return actor.kind === 'app'
    ? { app: { appId: actor.id, displayName: actor.name, servicePrincipalId: actor.id, servicePrincipalName: actor.name }, user: null }
    : { app: null, user: { id: actor.id, displayName: actor.name, userPrincipalName: actor.kind === 'user' ? actor.name : null, ipAddress: null } };
}

export async function recordAudit(db: Kysely<Database>, deps: Pick<Deps, 'clock'>, actor: Actor, e: AuditEntry): Promise<void> {
  await db
    .insertInto('audit_logs')
    .values({
      tenant_id: actor.tenantId,
      audit_id: randomUUID(),
      at: deps.clock.now().toISOString(),
      category: e.category,
      activity: e.activity,
      operation_type: e.operationType,
      result: e.result,
      result_reason: e.reason ?? '',
      initiated_by: JSON.stringify(initiatedBy(actor)),
      target_resources: JSON.stringify(e.targets.map((t) => ({ modifiedProperties: [], ...t }))),
    })
    .execute();
}

export function createAuditService(deps: Deps) {
  return {
    record: (actor: Actor, e: AuditEntry) => recordAudit(deps.db, deps, actor, e),

    /** Newest first, keyset-paged by the row id. */
    async list(tenantId: string, opts: { top: number; before?: number }) {
      let q = deps.db.selectFrom('audit_logs').selectAll().where('tenant_id', '=', tenantId);
      if (opts.before !== undefined) q = q.where('id', '<', opts.before);
      const rows = await q.orderBy('id', 'desc').limit(opts.top + 1).execute();
      const page = rows.slice(0, opts.top);
      return {
        items: page.map((r) => ({
          id: r.audit_id,
          category: r.category,
          correlationId: r.audit_id,
          result: r.result,
          resultReason: r.result_reason,
          activityDisplayName: r.activity,
          activityDateTime: r.at,
          loggedByService: 'Core Directory',
          operationType: r.operation_type,
          initiatedBy: JSON.parse(r.initiated_by) as unknown,
          targetResources: JSON.parse(r.target_resources) as unknown,
          additionalDetails: [],
        })),
        next: rows.length > opts.top ? page[page.length - 1]?.id : undefined,
      };
    },
  };
}
