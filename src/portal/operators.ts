// Portal operators (`nimbus operator create`): people who run the Nimbus service and may see
// and administer every tenant in the portal. Passwords are hashed with scrypt like users'.
import { badRequest, notFound } from '../shared/errors.ts';
import { checkPasswordComplexity, hashPassword } from '../cloud/services/passwords.ts';
import type { Deps } from '../cloud/services/context.ts';

/** Operator names never contain '@', so a sign-in name with '@' is always a tenant administrator's UPN. */
export const OPERATOR_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function createOperatorService(deps: Deps) {
  const { db, clock, config } = deps;
  return {
    async create(rawName: string, password: string, displayName?: string) {
      const name = rawName.trim().toLowerCase();
      if (!OPERATOR_NAME.test(name))
        throw badRequest(`Invalid operator name '${rawName}': use 1-64 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (no '@': names with '@' sign in as tenant administrators).`, 'name');
      checkPasswordComplexity(password, 'password');
      const existing = await db.selectFrom('portal_operators').select('name').where('name', '=', name).executeTakeFirst();
      if (existing) throw badRequest(`An operator named '${name}' already exists. Choose another name, or remove it first with nimbus operator remove ${name}.`, 'name');
      const row = { name, display_name: displayName ?? name, password_hash: await hashPassword(password, config.passwordScryptLogN), created_at: clock.now().toISOString() };
      await db.insertInto('portal_operators').values(row).execute();
      return { name: row.name, displayName: row.display_name, createdDateTime: row.created_at };
    },

    async list() {
      const rows = await db.selectFrom('portal_operators').select(['name', 'display_name', 'created_at']).orderBy('name').execute();
      return rows.map((r) => ({ name: r.name, displayName: r.display_name, createdDateTime: r.created_at }));
    },

    /** Removes the operator and ends their portal sessions. */
    async remove(rawName: string): Promise<void> {
      const name = rawName.trim().toLowerCase();
      const r = await db.deleteFrom('portal_operators').where('name', '=', name).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw notFound(`Operator '${rawName}' does not exist. nimbus operator list shows them.`);
      await db.deleteFrom('portal_sessions').where('kind', '=', 'operator').where('principal_id', '=', name).execute();
    },
  };
}

export type OperatorService = ReturnType<typeof createOperatorService>;
