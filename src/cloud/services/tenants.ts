// Tenants: creation with a verified initial domain, and resolving a tenant reference
// (id, name, or one of its verified domains) the way Entra resolves `{tenant}` in URLs.
import { randomUUID } from 'node:crypto';
import { badRequest, notFound } from '../../shared/errors.ts';
import { asciiLower } from '../../shared/upn.ts';
import type { TenantTable } from '../store/schema.ts';
import type { Deps } from './context.ts';

const TENANT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const defaultSyncFeatures = {
  blockSoftMatchEnabled: false,
  softMatchOnUpnEnabled: true,
  blockCloudObjectTakeoverThroughHardMatchEnabled: false,
};

export function createTenantService(deps: Deps) {
  const { db, clock, config } = deps;

  async function resolve(ref: string): Promise<TenantTable | undefined> {
    const r = asciiLower(ref.trim());
    if (UUID.test(r)) {
      const byId = await db.selectFrom('tenants').selectAll().where('id', '=', r).executeTakeFirst();
      if (byId) return byId;
    }
    const byName = await db.selectFrom('tenants').selectAll().where('name', '=', r).executeTakeFirst();
    if (byName) return byName;
    // Only verified domains identify a tenant: an unverified one may be claimed by anybody.
    return db
      .selectFrom('domains')
      .innerJoin('tenants', 'tenants.id', 'domains.tenant_id')
      .selectAll('tenants')
      .where('domains.name', '=', r)
      .where('domains.is_verified', '=', 1)
      .executeTakeFirst();
  }

  return {
    resolve,

    async require(ref: string): Promise<TenantTable> {
      const t = await resolve(ref);
      if (!t) throw notFound(`Tenant '${ref}' was not found. Use the tenant's id, its name or one of its verified domains (nimbus tenant list shows them).`, 'TenantNotFound');
      return t;
    },

    async get(id: string): Promise<TenantTable> {
      const t = await db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
      if (!t) throw notFound(`Tenant ${id} was not found.`, 'TenantNotFound');
      return t;
    },

    list: () => db.selectFrom('tenants').selectAll().orderBy('name').execute(),

    async create(name: string, displayName?: string): Promise<TenantTable> {
      const n = name.trim();
      if (!TENANT_NAME.test(n))
        throw badRequest(`Invalid tenant name '${name}': use 1-63 lower-case letters, digits and hyphens, starting with a letter or digit; the initial domain becomes <name>.${config.serviceSuffix}.`, 'name');
      const existing = await db.selectFrom('tenants').select('id').where('name', '=', n).executeTakeFirst();
      if (existing) throw badRequest(`A tenant named '${n}' already exists (id ${existing.id}). Choose another name.`, 'name');
      const now = clock.now().toISOString();
      const t: TenantTable = {
        id: randomUUID(),
        name: n,
        display_name: displayName ?? n,
        initial_domain: `${n}.${config.serviceSuffix}`,
        created_at: now,
        sync_enabled: null,
        sync_last_at: null,
        sync_disabled_at: null,
        sync_features: JSON.stringify(defaultSyncFeatures),
        change_seq: 0,
      };
      await db.transaction().execute(async (trx) => {
        await trx.insertInto('tenants').values(t).execute();
        await trx
          .insertInto('domains')
          .values({
            tenant_id: t.id,
            name: t.initial_domain,
            is_verified: 1,
            is_default: 1,
            is_initial: 1,
            authentication_type: 'Managed',
            verification_code: '',
            created_at: now,
            verified_at: now,
          })
          .execute();
      });
      return t;
    },
  };
}

export type TenantService = ReturnType<typeof createTenantService>;
