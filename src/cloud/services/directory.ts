// Deleting and restoring: soft delete into the recycle bin (restorable for the configured
// days, 30 by default), restore, permanent delete, and the purge of expired items. Also
// directory roles (Global Administrator and friends) and their members.
import { sql } from 'kysely';
import { DAY_MS } from '../../shared/clock.ts';
import { badRequest, notFound, type NimbusError } from '../../shared/errors.ts';
import { asciiLower } from '../../shared/upn.ts';
import { parseSelect, toGraph, type ObjectType } from '../model/properties.ts';
import { recordAudit } from './audit.ts';
import { isSync, requireAdmin, requireWrite, type Actor, type Deps } from './context.ts';
import { addressClaims, conflictError, findConflicts, findObject, nextSeq, refId, releaseAddresses } from './objects.ts';
import { listObjects, tableOf, type ListParams } from './query.ts';

/** Built-in directory roles (Entra role template ids). */
export const DIRECTORY_ROLES = [
  { id: '62e90394-69f5-4237-9190-012177145e10', displayName: 'Global Administrator', description: 'Can manage all aspects of the directory.' },
  { id: 'fe930be7-5e62-47db-91af-98c3a49a38b1', displayName: 'User Administrator', description: 'Can manage all aspects of users and groups.' },
  { id: 'f2ef992c-3afb-46b9-b7cf-a126ee74c451', displayName: 'Global Reader', description: 'Can read everything that a Global Administrator can, but not update anything.' },
  { id: 'd29b2b05-8046-44ba-8758-1e26182fcf32', displayName: 'Directory Synchronization Accounts', description: 'Only used by directory synchronization.' },
] as const;
export const GLOBAL_ADMIN = DIRECTORY_ROLES[0].id;

const typeName = (t: ObjectType) => (t === 'user' ? 'User' : 'Group');

export function createDirectoryService(deps: Deps) {
  const { db, clock, config } = deps;
  const retentionStart = () => new Date(clock.now().getTime() - config.recycleBinDays * DAY_MS).toISOString();

  async function findDeleted(tenantId: string, id: string) {
    for (const type of ['user', 'group'] as const) {
      const row = await db
        .selectFrom(tableOf(type))
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('id', '=', asciiLower(id))
        .where('deleted_at', 'is not', null)
        .where('deleted_at', '>', retentionStart())
        .executeTakeFirst();
      if (row) return { type, row: row as unknown as Record<string, unknown> };
    }
    throw notFound(`Deleted item '${id}' was not found in the recycle bin (items are kept ${config.recycleBinDays} days).`);
  }

  async function hardDelete(tenantId: string, type: ObjectType, id: string): Promise<void> {
    await db.transaction().execute(async (trx) => {
      const seq = await nextSeq(trx, tenantId);
      await trx.deleteFrom(tableOf(type)).where('tenant_id', '=', tenantId).where('id', '=', id).execute();
      await releaseAddresses(trx, tenantId, id);
      await trx.deleteFrom('memberships').where('tenant_id', '=', tenantId).where((eb) => eb.or([eb('member_id', '=', id), eb('group_id', '=', id)])).execute();
      await trx.deleteFrom('sync_member_lists').where('tenant_id', '=', tenantId).where('group_id', '=', id).execute();
      await trx.deleteFrom('role_assignments').where('tenant_id', '=', tenantId).where('principal_id', '=', id).execute();
      await trx.updateTable('users').set({ manager_id: null }).where('tenant_id', '=', tenantId).where('manager_id', '=', id).execute();
      await trx.insertInto('removed_objects').values({ tenant_id: tenantId, id, object_type: type, seq, removed_at: clock.now().toISOString() }).execute();
    });
  }

  return {
    /** Soft delete: the object goes to the recycle bin and releases its addresses. */
    async remove(actor: Actor, type: ObjectType, id: string): Promise<void> {
      requireWrite(actor);
      const o = await findObject(db, actor.tenantId, asciiLower(id));
      if (o?.type !== type) throw notFound(`Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
      if (o.row.on_prem_sync_enabled === 1 && !isSync(actor))
        throw badRequest(`Unable to delete ${type} '${o.row.display_name as string}': it is synchronized from on-premises. Delete it there or take it out of the sync scope.`);
      const target = { id: o.row.id as string, displayName: o.row.display_name as string, type: typeName(type), userPrincipalName: (o.row.upn as string | undefined) ?? null };
      await db.transaction().execute(async (trx) => {
        const seq = await nextSeq(trx, actor.tenantId);
        await trx.updateTable(tableOf(type)).set({ deleted_at: clock.now().toISOString(), seq }).where('tenant_id', '=', actor.tenantId).where('id', '=', o.row.id as string).execute();
        await releaseAddresses(trx, actor.tenantId, o.row.id as string);
        await recordAudit(trx, deps, actor, { category: type === 'user' ? 'UserManagement' : 'GroupManagement', activity: `Delete ${type}`, operationType: 'Delete', result: 'success', targets: [target] });
      });
    },

    async listDeleted(actor: Actor, type: ObjectType, q: ListParams) {
      return listObjects(db, actor.tenantId, type, q, { deleted: true, where: sql`deleted_at > ${retentionStart()}` });
    },

    async getDeleted(actor: Actor, id: string, select?: string) {
      const d = await findDeleted(actor.tenantId, id);
      return { '@odata.type': `#microsoft.graph.${d.type}`, ...toGraph(d.row, parseSelect(d.type, select)) };
    },

    async restore(actor: Actor, id: string) {
      requireWrite(actor);
      const d = await findDeleted(actor.tenantId, id);
      const target = { id: d.row.id as string, displayName: d.row.display_name as string, type: typeName(d.type), userPrincipalName: (d.row.upn as string | undefined) ?? null };
      const claims = addressClaims({
        upn: (d.row.upn as string | undefined) ?? null,
        mail: d.row.mail as string | null,
        proxyAddresses: JSON.parse(d.row.proxy_addresses as string) as string[],
      });
      // The failure is audited after the transaction has rolled back: writing through `db`
      // inside it would wait for the transaction's own connection (a deadlock on SQLite).
      let refused: NimbusError | undefined;
      await db.transaction().execute(async (trx) => {
        const conflicts = await findConflicts(trx, actor.tenantId, d.row.id as string, claims);
        if (conflicts[0]) {
          refused = conflictError(conflicts[0]);
          return;
        }
        const seq = await nextSeq(trx, actor.tenantId);
        await trx.updateTable(tableOf(d.type)).set({ deleted_at: null, seq }).where('tenant_id', '=', actor.tenantId).where('id', '=', d.row.id as string).execute();
        if (claims.length) await trx.insertInto('addresses').values(claims.map((c) => ({ tenant_id: actor.tenantId, address: c.address, object_id: d.row.id as string }))).execute();
        await recordAudit(trx, deps, actor, { category: d.type === 'user' ? 'UserManagement' : 'GroupManagement', activity: `Restore ${d.type}`, operationType: 'Restore', result: 'success', targets: [target] });
      });
      if (refused) {
        await recordAudit(db, deps, actor, { category: d.type === 'user' ? 'UserManagement' : 'GroupManagement', activity: `Restore ${d.type}`, operationType: 'Restore', result: 'failure', reason: refused.message, targets: [target] });
        throw refused;
      }
      return { '@odata.type': `#microsoft.graph.${d.type}`, ...toGraph({ ...d.row, deleted_at: null }, parseSelect(d.type, undefined)) };
    },

    async purge(actor: Actor, id: string): Promise<void> {
      requireWrite(actor);
      const d = await findDeleted(actor.tenantId, id);
      await hardDelete(actor.tenantId, d.type, d.row.id as string);
      await recordAudit(db, deps, actor, {
        category: d.type === 'user' ? 'UserManagement' : 'GroupManagement',
        activity: `Hard delete ${d.type}`,
        operationType: 'Delete',
        result: 'success',
        targets: [{ id: d.row.id as string, displayName: d.row.display_name as string, type: typeName(d.type) }],
      });
    },

    /** Permanently deletes items older than the recycle-bin period; returns how many. */
    async purgeExpired(): Promise<number> {
      let n = 0;
      for (const type of ['user', 'group'] as const) {
        const expired = await db.selectFrom(tableOf(type)).select(['tenant_id', 'id']).where('deleted_at', 'is not', null).where('deleted_at', '<=', retentionStart()).execute();
        for (const e of expired) {
          await hardDelete(e.tenant_id, type, e.id);
          n++;
        }
      }
      // Delta tokens older than deltaTokenDays are refused, so older change records are dead weight.
      const cutoff = new Date(clock.now().getTime() - config.deltaTokenDays * DAY_MS).toISOString();
      await db.deleteFrom('removed_objects').where('removed_at', '<', cutoff).execute();
      return n;
    },

    // ---- directory roles -------------------------------------------------------------
    roles() {
      return DIRECTORY_ROLES.map((r) => ({ id: r.id, displayName: r.displayName, description: r.description, roleTemplateId: r.id }));
    },

    role(id: string) {
      const r = DIRECTORY_ROLES.find((x) => x.id === asciiLower(id));
      if (!r) throw notFound(`Directory role '${id}' does not exist. GET /v1.0/directoryRoles lists them.`);
      return { id: r.id, displayName: r.displayName, description: r.description, roleTemplateId: r.id };
    },

    async roleMembers(actor: Actor, roleId: string) {
      const r = this.role(roleId);
      const rows = await db
        .selectFrom('role_assignments')
        .innerJoin('users', (j) => j.onRef('users.id', '=', 'role_assignments.principal_id').onRef('users.tenant_id', '=', 'role_assignments.tenant_id'))
        .selectAll('users')
        .where('role_assignments.tenant_id', '=', actor.tenantId)
        .where('role_assignments.role_template_id', '=', r.id)
        .where('users.deleted_at', 'is', null)
        .orderBy('users.id')
        .execute();
      return rows.map((u) => ({ '@odata.type': '#microsoft.graph.user', ...toGraph(u as unknown as Record<string, unknown>, parseSelect('user', undefined)) }));
    },

    async assignRole(actor: Actor, roleId: string, principalId: string): Promise<void> {
      requireAdmin(actor, 'assign a directory role');
      const r = this.role(roleId);
      const o = await findObject(db, actor.tenantId, asciiLower(principalId));
      if (o?.type !== 'user') throw notFound(`User '${principalId}' does not exist in this tenant.`);
      const exists = await db.selectFrom('role_assignments').select('principal_id').where('tenant_id', '=', actor.tenantId).where('role_template_id', '=', r.id).where('principal_id', '=', o.row.id as string).executeTakeFirst();
      if (exists) throw badRequest(`One or more added object references already exist for the following modified properties: 'members' (the user already holds ${r.displayName}).`, 'members');
      await db.insertInto('role_assignments').values({ tenant_id: actor.tenantId, role_template_id: r.id, principal_id: o.row.id as string, created_at: clock.now().toISOString() }).execute();
      await recordAudit(db, deps, actor, { category: 'RoleManagement', activity: 'Add member to role', operationType: 'Assign', result: 'success', targets: [{ id: o.row.id as string, displayName: o.row.display_name as string, type: 'User', userPrincipalName: o.row.upn as string }, { id: r.id, displayName: r.displayName, type: 'Role' }] });
    },

    async unassignRole(actor: Actor, roleId: string, principalId: string): Promise<void> {
      requireAdmin(actor, 'remove a directory role assignment');
      const r = this.role(roleId);
      const res = await db.deleteFrom('role_assignments').where('tenant_id', '=', actor.tenantId).where('role_template_id', '=', r.id).where('principal_id', '=', asciiLower(principalId)).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw notFound(`User '${principalId}' does not hold the role ${r.displayName}.`);
      await recordAudit(db, deps, actor, { category: 'RoleManagement', activity: 'Remove member from role', operationType: 'Unassign', result: 'success', targets: [{ id: principalId, type: 'User' }, { id: r.id, displayName: r.displayName, type: 'Role' }] });
    },

    /** Role template ids a user holds (used to refuse soft match onto admins, and by the portal). */
    async rolesOf(tenantId: string, userId: string): Promise<string[]> {
      return (await db.selectFrom('role_assignments').select('role_template_id').where('tenant_id', '=', tenantId).where('principal_id', '=', userId).execute()).map((r) => r.role_template_id);
    },
  };
}

export type DirectoryService = ReturnType<typeof createDirectoryService>;
export { refId };
