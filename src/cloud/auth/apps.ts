// App registrations: a client id and a secret for the OAuth2 client-credentials flow,
// scoped to one tenant with one role. The secret is shown once and stored only as a hash.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { badRequest, notFound } from '../../shared/errors.ts';
import type { AppTable } from '../store/schema.ts';
import { recordAudit } from '../services/audit.ts';
import { requireAdmin, type Actor, type AppRole, type Deps } from '../services/context.ts';

export const APP_ROLES: readonly AppRole[] = ['read', 'readwrite', 'sync'];

/**
 * Secrets are 256 random bits, so a single SHA-256 is enough to make a stolen database
 * useless (nothing to brute-force), and keeps the token endpoint fast. Passwords chosen
 * by people use scrypt instead (services/passwords.ts).
 */
const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('base64');

export const appToJson = (a: AppTable) => ({
  clientId: a.client_id,
  name: a.name,
  role: a.role,
  secretHint: a.secret_hint,
  createdDateTime: a.created_at,
  secretCreatedDateTime: a.secret_created_at,
});

export function createAppService(deps: Deps) {
  const { db, clock } = deps;
  const newSecret = () => `nbs_${randomBytes(32).toString('base64url')}`;

  async function load(tenantId: string, clientId: string): Promise<AppTable> {
    const a = await db.selectFrom('apps').selectAll().where('tenant_id', '=', tenantId).where('client_id', '=', clientId.toLowerCase()).executeTakeFirst();
    if (!a) throw notFound(`App '${clientId}' was not found in this tenant. nimbus app list --tenant T shows the tenant's apps.`);
    return a;
  }

  return {
    load,

    async create(actor: Actor, name: string, role: string): Promise<{ app: AppTable; secret: string }> {
      requireAdmin(actor, 'register an app');
      if (!name || name.length > 256) throw badRequest('Invalid app name: give 1-256 characters.', 'name');
      if (!APP_ROLES.includes(role as AppRole)) throw badRequest(`Invalid role '${role}': use one of ${APP_ROLES.join(', ')}.`, 'role');
      const secret = newSecret();
      const now = clock.now().toISOString();
      const app: AppTable = {
        tenant_id: actor.tenantId,
        client_id: randomUUID(),
        name,
        role,
        secret_hash: hashSecret(secret),
        secret_hint: secret.slice(0, 7),
        created_at: now,
        secret_created_at: now,
      };
      await db.insertInto('apps').values(app).execute();
      await recordAudit(db, deps, actor, { category: 'ApplicationManagement', activity: 'Add application', operationType: 'Add', result: 'success', targets: [{ id: app.client_id, displayName: name, type: 'Application', modifiedProperties: [{ displayName: 'role', oldValue: null, newValue: role }] }] });
      return { app, secret };
    },

    list: (tenantId: string) => db.selectFrom('apps').selectAll().where('tenant_id', '=', tenantId).orderBy('name').execute(),

    async remove(actor: Actor, clientId: string): Promise<void> {
      requireAdmin(actor, 'delete an app');
      const a = await load(actor.tenantId, clientId);
      await db.deleteFrom('apps').where('client_id', '=', a.client_id).execute();
      await recordAudit(db, deps, actor, { category: 'ApplicationManagement', activity: 'Delete application', operationType: 'Delete', result: 'success', targets: [{ id: a.client_id, displayName: a.name, type: 'Application' }] });
    },

    async rotate(actor: Actor, clientId: string): Promise<{ app: AppTable; secret: string }> {
      requireAdmin(actor, "change an app's secret");
      const a = await load(actor.tenantId, clientId);
      const secret = newSecret();
      const now = clock.now().toISOString();
      await db.updateTable('apps').set({ secret_hash: hashSecret(secret), secret_hint: secret.slice(0, 7), secret_created_at: now }).where('client_id', '=', a.client_id).execute();
      await recordAudit(db, deps, actor, { category: 'ApplicationManagement', activity: 'Update application - Certificates and secrets management', operationType: 'Update', result: 'success', targets: [{ id: a.client_id, displayName: a.name, type: 'Application' }] });
      return { app: await load(actor.tenantId, a.client_id), secret };
    },

    /** The app if the secret matches, else undefined (never says which part was wrong to a caller). */
    async authenticate(tenantId: string, clientId: string, secret: string): Promise<{ app?: AppTable; reason?: 'unknown_client' | 'bad_secret' }> {
      const a = await db.selectFrom('apps').selectAll().where('client_id', '=', clientId.toLowerCase()).executeTakeFirst();
      if (a?.tenant_id !== tenantId) return { reason: 'unknown_client' };
      const want = Buffer.from(a.secret_hash, 'base64');
      const got = createHash('sha256').update(secret).digest();
      return want.length === got.length && timingSafeEqual(want, got) ? { app: a } : { reason: 'bad_secret' };
    },
  };
}

export type AppService = ReturnType<typeof createAppService>;
