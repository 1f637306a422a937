// Migration 0013: the synced objects that hold provisioning errors, in an index of their own.
// Every sync batch that gives up an address (a delete, a changed mail) looks for the objects
// held back by a conflict over it, to heal them; without this index that read every live user
// of the tenant (50 ms per batch at 20k users, in each delta). Partial: it holds only those
// objects, a handful in a healthy tenant. (SQLite and PostgreSQL both index partially.) Its
// columns match every equality of the query, so the planner prefers it to (tenant_id, deleted_at).
import { sql, type Kysely } from 'kysely';

/** The predicate of the partial indexes, written out identically in the query that uses them. */
export const ERRORED = sql<boolean>`on_prem_provisioning_errors <> '[]' AND on_prem_sync_enabled = 1 AND deleted_at IS NULL`;

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) await sql`CREATE INDEX ${sql.id(`${table}_errored`)} ON ${sql.id(table)} (tenant_id, deleted_at, on_prem_sync_enabled) WHERE ${ERRORED}`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) await sql`DROP INDEX ${sql.id(`${table}_errored`)}`.execute(db);
}
