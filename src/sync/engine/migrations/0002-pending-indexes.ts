// Migration 0002: partial indexes holding only the rows the export phase counts (pending
// exports, pending deletes, unresolved references), so a no-change delta reads a few index
// entries instead of scanning the whole connector space. The WHERE clauses must stay
// identical to the queries in engine/run.ts for SQLite to use them.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX objects_pending ON objects (anchor) WHERE (present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash) OR (exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0))`.execute(db);
  await sql`CREATE INDEX objects_pending_upserts ON objects (type, anchor) WHERE present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash`.execute(db);
  await sql`CREATE INDEX objects_pending_deletes ON objects (anchor) WHERE exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0)`.execute(db);
  await sql`CREATE INDEX objects_unresolved ON objects (anchor) WHERE unresolved IS NOT NULL AND present = 1 AND in_scope = 1`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const i of ['objects_pending', 'objects_pending_upserts', 'objects_pending_deletes', 'objects_unresolved']) await sql`DROP INDEX IF EXISTS ${sql.id(i)}`.execute(db);
}
