// The organization resource and directory sync activation: null (never) -> true (activated)
// -> false (deactivated: synced objects become cloud-managed, re-activation blocked for a while).
import { HOUR_MS } from '../../shared/clock.ts';
import { badRequest } from '../../shared/errors.ts';
import type { TenantTable } from '../store/schema.ts';
import { recordAudit } from './audit.ts';
import { requireAdmin, type Actor, type Deps } from './context.ts';
import { nextSeq } from './objects.ts';

export const syncState = (t: TenantTable): boolean | null => (t.sync_enabled === null ? null : t.sync_enabled === 1);

export function createOrganizationService(deps: Deps) {
  const { db, clock, config } = deps;

  async function tenant(id: string) {
    return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  async function toGraph(t: TenantTable) {
    const domains = await db.selectFrom('domains').selectAll().where('tenant_id', '=', t.id).where('is_verified', '=', 1).orderBy('name').execute();
    return {
      id: t.id,
      displayName: t.display_name,
      createdDateTime: t.created_at,
      tenantType: 'AAD',
      countryLetterCode: null,
      onPremisesSyncEnabled: syncState(t),
      onPremisesLastSyncDateTime: t.sync_last_at,
      verifiedDomains: domains.map((d) => ({
        capabilities: 'Email, OfficeCommunicationsOnline',
        isDefault: d.is_default === 1,
        isInitial: d.is_initial === 1,
        name: d.name,
        type: d.authentication_type,
      })),
    };
  }

  /** When directory sync may be activated again after a deactivation, or null. */
  function blockedUntil(t: TenantTable): Date | null {
    if (t.sync_enabled !== 0 || !t.sync_disabled_at) return null;
    const until = new Date(new Date(t.sync_disabled_at).getTime() + config.syncReactivationBlockHours * HOUR_MS);
    return until > clock.now() ? until : null;
  }

  return {
    get: async (tenantId: string) => toGraph(await tenant(tenantId)),
    blockedUntil,

    async status(tenantId: string) {
      const t = await tenant(tenantId);
      const until = blockedUntil(t);
      return {
        tenant: t.name,
        onPremisesSyncEnabled: syncState(t),
        onPremisesLastSyncDateTime: t.sync_last_at,
        deactivatedDateTime: t.sync_disabled_at,
        reactivationBlockedUntil: until ? until.toISOString() : null,
        status: t.sync_enabled === 1 ? (t.sync_last_at ? `activated; last sync ${t.sync_last_at}` : 'activated; synchronization has never run') : t.sync_enabled === 0 ? 'deactivated' : 'never activated',
      };
    },

    /**
     * Activates or deactivates directory sync. The caller has confirmed (CLI prompt or --yes,
     * or an administrator's PATCH), because activation lets sync take over cloud objects.
     */
    async setDirSync(actor: Actor, enabled: boolean): Promise<{ changed: boolean; converted: number }> {
      requireAdmin(actor, 'change directory synchronization');
      const t = await tenant(actor.tenantId);
      const target = [{ id: t.id, displayName: t.display_name, type: 'Company', modifiedProperties: [{ displayName: 'DirSyncEnabled', oldValue: String(syncState(t)), newValue: String(enabled) }] }];
      const audit = (result: 'success' | 'failure', reason?: string) =>
        recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Set DirSyncEnabled flag', operationType: 'Update', result, ...(reason ? { reason } : {}), targets: target });
      if (enabled) {
        if (t.sync_enabled === 1) return { changed: false, converted: 0 };
        const until = blockedUntil(t);
        if (until) {
          const reason = `Directory synchronization was deactivated at ${t.sync_disabled_at}; it can be activated again after ${until.toISOString()} (${config.syncReactivationBlockHours} hours after deactivation, while synced objects are converted to cloud objects).`;
          await audit('failure', reason);
          throw badRequest(reason, 'onPremisesSyncEnabled');
        }
        await db.updateTable('tenants').set({ sync_enabled: 1 }).where('id', '=', t.id).execute();
        await audit('success');
        return { changed: true, converted: 0 };
      }
      if (t.sync_enabled !== 1) {
        if (t.sync_enabled === null) {
          const reason = 'Directory synchronization has never been activated for this tenant, so there is nothing to deactivate.';
          await audit('failure', reason);
          throw badRequest(reason, 'onPremisesSyncEnabled');
        }
        return { changed: false, converted: 0 };
      }
      let converted = 0;
      await db.transaction().execute(async (trx) => {
        const seq = await nextSeq(trx, t.id);
        const now = clock.now().toISOString();
        // Synced objects become cloud-managed and lose their on-premises attributes (as
        // Entra does); the anchor stays so a later re-activation can hard-match them.
        const u = await trx
          .updateTable('users')
          .set({
            on_prem_sync_enabled: 0,
            on_prem_distinguished_name: null,
            on_prem_sam_account_name: null,
            on_prem_user_principal_name: null,
            on_prem_domain_name: null,
            on_prem_provisioning_errors: '[]',
            seq,
          })
          .where('tenant_id', '=', t.id)
          .where('on_prem_sync_enabled', '=', 1)
          .executeTakeFirst();
        const g = await trx
          .updateTable('groups')
          .set({ on_prem_sync_enabled: 0, on_prem_sam_account_name: null, on_prem_domain_name: null, on_prem_net_bios_name: null, on_prem_provisioning_errors: '[]', seq })
          .where('tenant_id', '=', t.id)
          .where('on_prem_sync_enabled', '=', 1)
          .executeTakeFirst();
        converted = Number(u.numUpdatedRows) + Number(g.numUpdatedRows);
        await trx.updateTable('tenants').set({ sync_enabled: 0, sync_disabled_at: now }).where('id', '=', t.id).execute();
      });
      await audit('success', `${converted} synced objects converted to cloud-managed objects`);
      return { changed: true, converted };
    },
  };
}

export type OrganizationService = ReturnType<typeof createOrganizationService>;
