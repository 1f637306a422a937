// Portal sign-in and sessions: tenant administrators (users holding the Global
// Administrator role, signing in with their UPN) and operators (signing in with their name).
// A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the store keeps
// only its SHA-256, so a copy of the database cannot be used to sign in. Each session carries
// its own CSRF token. Repeated failed sign-ins lock the name for a while.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql } from 'kysely';
import { asciiLower } from '../shared/upn.ts';
import type { Actor, Deps } from '../cloud/services/context.ts';
import { recordAudit } from '../cloud/services/audit.ts';
import { GLOBAL_ADMIN } from '../cloud/services/directory.ts';
import { hashPassword, verifyPassword } from '../cloud/services/passwords.ts';
import type { PortalSessionTable } from '../cloud/store/schema.ts';

export interface PortalAuthOptions {
  /** A session ends after this many minutes without a request (default 60). */
  idleMinutes: number;
  /** A session ends this many hours after sign-in whatever happens (default 12). */
  maxHours: number;
  /** Failed sign-ins for one name, within `lockoutMinutes`, that lock it (default 5). */
  lockoutThreshold: number;
  /** How long a locked name stays locked, and the window failures are counted in (default 15). */
  lockoutMinutes: number;
}

export const defaultPortalAuthOptions: PortalAuthOptions = { idleMinutes: 60, maxHours: 12, lockoutThreshold: 5, lockoutMinutes: 15 };

/** Who is signed in. */
export interface PortalPrincipal {
  kind: 'admin' | 'operator';
  /** The admin's user id, or the operator's name. */
  id: string;
  /** UPN or operator name, as shown and written to the audit log. */
  name: string;
  /** The admin's own tenant; null for an operator (who may see every tenant). */
  tenantId: string | null;
  csrf: string;
  tokenHash: string;
}

export type SignInResult = { ok: true; token: string; principal: PortalPrincipal } | { ok: false; locked: boolean; message: string };

const MINUTE_MS = 60_000;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
export const newToken = (bytes = 32) => randomBytes(bytes).toString('base64url');

/** Constant-time string comparison (CSRF tokens). */
export function sameToken(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The actor a principal acts as inside one tenant (audit log: "user <name>"). */
export const actorFor = (p: PortalPrincipal, tenantId: string): Actor => ({
  tenantId,
  kind: 'user',
  id: p.kind === 'admin' ? p.id : `operator:${p.id}`,
  name: p.kind === 'admin' ? p.name : `operator ${p.name}`,
  role: 'admin',
});

export function createPortalAuth(deps: Deps, opts: Partial<PortalAuthOptions> = {}) {
  const { db, clock, config } = deps;
  const o = { ...defaultPortalAuthOptions, ...opts };
  // Unknown names are checked against a dummy hash, so the answer takes as long as for a real one.
  let dummy: Promise<string> | undefined;
  const dummyHash = () => (dummy ??= hashPassword(newToken(), config.passwordScryptLogN));

  /** The admin behind a UPN: enabled, not deleted, Global Administrator of the tenant whose verified domain the UPN uses. */
  async function adminByUpn(upn: string) {
    const domain = upn.slice(upn.lastIndexOf('@') + 1);
    const tenant = await db
      .selectFrom('domains')
      .select('tenant_id')
      .where('name', '=', domain)
      .where('is_verified', '=', 1)
      .executeTakeFirst();
    if (!tenant) return undefined;
    return db
      .selectFrom('users')
      .innerJoin('role_assignments', (j) =>
        j.onRef('role_assignments.tenant_id', '=', 'users.tenant_id').onRef('role_assignments.principal_id', '=', 'users.id').on('role_assignments.role_template_id', '=', GLOBAL_ADMIN),
      )
      .select(['users.id', 'users.tenant_id', 'users.upn', 'users.password_hash'])
      .where('users.tenant_id', '=', tenant.tenant_id)
      .where(sql<boolean>`lower(users.upn) = ${upn}`)
      .where('users.deleted_at', 'is', null)
      .where('users.account_enabled', '=', 1)
      .executeTakeFirst();
  }

  /** Whether the principal behind a session may still sign in (not deleted, disabled or demoted since). */
  async function stillValid(s: PortalSessionTable): Promise<boolean> {
    if (s.kind === 'operator') return !!(await db.selectFrom('portal_operators').select('name').where('name', '=', s.principal_id).executeTakeFirst());
    const row = await db
      .selectFrom('users')
      .innerJoin('role_assignments', (j) =>
        j.onRef('role_assignments.tenant_id', '=', 'users.tenant_id').onRef('role_assignments.principal_id', '=', 'users.id').on('role_assignments.role_template_id', '=', GLOBAL_ADMIN),
      )
      .select('users.id')
      .where('users.tenant_id', '=', s.tenant_id ?? '')
      .where('users.id', '=', s.principal_id)
      .where('users.deleted_at', 'is', null)
      .where('users.account_enabled', '=', 1)
      .executeTakeFirst();
    return !!row;
  }

  async function recordFailure(key: string): Promise<{ locked: boolean; until?: string; left: number }> {
    return db.transaction().execute(async (trx) => {
      const now = clock.now();
      const windowStart = new Date(now.getTime() - o.lockoutMinutes * MINUTE_MS).toISOString();
      const row = await trx.selectFrom('portal_sign_in_failures').selectAll().where('name', '=', key).executeTakeFirst();
      const fresh = !row || row.first_failed_at < windowStart;
      const failures = fresh ? 1 : row.failures + 1;
      const until = failures >= o.lockoutThreshold ? new Date(now.getTime() + o.lockoutMinutes * MINUTE_MS).toISOString() : null;
      const values = { failures, first_failed_at: fresh ? now.toISOString() : row.first_failed_at, locked_until: until };
      await trx
        .insertInto('portal_sign_in_failures')
        .values({ name: key, ...values })
        .onConflict((oc) => oc.column('name').doUpdateSet(values))
        .execute();
      return until ? { locked: true, until, left: 0 } : { locked: false, left: o.lockoutThreshold - failures };
    });
  }

  const toPrincipal = (s: PortalSessionTable): PortalPrincipal => ({
    kind: s.kind as PortalPrincipal['kind'],
    id: s.principal_id,
    name: s.name,
    tenantId: s.tenant_id,
    csrf: s.csrf_token,
    tokenHash: s.token_hash,
  });

  const lockedMessage = (name: string, until: string) =>
    `Too many failed sign-ins for '${name}': sign-in for this name is locked until ${until} (${o.lockoutMinutes} minutes after the last failure). Wait and try again; an operator can reset a forgotten password with nimbus admin create or nimbus operator create.`;

  return {
    options: o,

    /** Checks a name and password; on success opens a session and returns its token (for the cookie). */
    async signIn(rawName: string, password: string): Promise<SignInResult> {
      const key = asciiLower(rawName.trim());
      if (!key || !password) return { ok: false, locked: false, message: 'Enter your sign-in name (your user principal name, or your operator name) and your password.' };
      const now = clock.now();
      const lock = await db.selectFrom('portal_sign_in_failures').select('locked_until').where('name', '=', key).executeTakeFirst();
      if (lock?.locked_until && lock.locked_until > now.toISOString()) return { ok: false, locked: true, message: lockedMessage(rawName.trim(), lock.locked_until) };

      let found: { kind: 'admin' | 'operator'; id: string; name: string; tenantId: string | null; hash: string | null } | undefined;
      if (key.includes('@')) {
        const a = await adminByUpn(key);
        if (a) found = { kind: 'admin', id: a.id, name: a.upn, tenantId: a.tenant_id, hash: a.password_hash };
      } else {
        const op = await db.selectFrom('portal_operators').selectAll().where('name', '=', key).executeTakeFirst();
        if (op) found = { kind: 'operator', id: op.name, name: op.name, tenantId: null, hash: op.password_hash };
      }
      const good = await verifyPassword(password, found?.hash ?? (await dummyHash()));
      // A tenant administrator's sign-ins, good and bad, go to the tenant's audit log (operators' to the server log).
      const audit = (result: 'success' | 'failure', activity: string, reason?: string) =>
        found?.kind === 'admin' && found.tenantId
          ? recordAudit(db, { clock }, { tenantId: found.tenantId, kind: 'user', id: found.id, name: found.name, role: 'admin' }, {
              category: 'Authentication',
              activity,
              operationType: 'Other',
              result,
              ...(reason ? { reason } : {}),
              targets: [{ id: found.id, displayName: found.name, type: 'User', userPrincipalName: found.name }],
            })
          : Promise.resolve();
      if (!found || !good) {
        const f = await recordFailure(key);
        await audit('failure', 'Sign in to the admin portal', f.locked ? `wrong password; ${o.lockoutThreshold} failures: sign-in locked until ${f.until}` : 'wrong password');
        if (f.locked) return { ok: false, locked: true, message: lockedMessage(rawName.trim(), f.until!) };
        return {
          ok: false,
          locked: false,
          message: `Sign-in failed: the name or the password is wrong, or the account may not use the portal (tenant administrators need the Global Administrator role). ${f.left} more failed attempt${f.left === 1 ? '' : 's'} lock this name for ${o.lockoutMinutes} minutes.`,
        };
      }
      await db.deleteFrom('portal_sign_in_failures').where('name', '=', key).execute();
      await db.deleteFrom('portal_sessions').where('expires_at', '<=', now.toISOString()).execute();
      const token = newToken();
      const row: PortalSessionTable = {
        token_hash: sha256(token),
        kind: found.kind,
        principal_id: found.id,
        tenant_id: found.tenantId,
        name: found.name,
        csrf_token: newToken(24),
        created_at: now.toISOString(),
        last_seen_at: now.toISOString(),
        expires_at: new Date(now.getTime() + o.maxHours * 60 * MINUTE_MS).toISOString(),
      };
      await db.insertInto('portal_sessions').values(row).execute();
      await audit('success', 'Sign in to the admin portal');
      return { ok: true, token, principal: toPrincipal(row) };
    },

    /** The session behind a cookie token, or undefined (unknown, expired, idle too long, or its account changed). */
    async session(token: string | undefined): Promise<PortalPrincipal | undefined> {
      if (!token || token.length > 200) return undefined;
      const hash = sha256(token);
      const s = await db.selectFrom('portal_sessions').selectAll().where('token_hash', '=', hash).executeTakeFirst();
      if (!s) return undefined;
      const now = clock.now();
      const idleEnd = new Date(new Date(s.last_seen_at).getTime() + o.idleMinutes * MINUTE_MS);
      if (s.expires_at <= now.toISOString() || idleEnd <= now || !(await stillValid(s))) {
        await db.deleteFrom('portal_sessions').where('token_hash', '=', hash).execute();
        return undefined;
      }
      // Sliding idle timeout; written at most once a minute.
      if (now.getTime() - new Date(s.last_seen_at).getTime() >= MINUTE_MS)
        await db.updateTable('portal_sessions').set({ last_seen_at: now.toISOString() }).where('token_hash', '=', hash).execute();
      return toPrincipal(s);
    },

    async signOut(p: PortalPrincipal): Promise<void> {
      await db.deleteFrom('portal_sessions').where('token_hash', '=', p.tokenHash).execute();
    },
  };
}

export type PortalAuth = ReturnType<typeof createPortalAuth>;
