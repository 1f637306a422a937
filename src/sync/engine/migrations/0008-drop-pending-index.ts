// Migration 0008: drops objects_pending (migration 0002), a partial index over pending upserts
// and deletes together. No query reads it: each kind is counted and listed from its own index
// (objects_pending_upserts, objects_pending_deletes), and the export's progress total also
// counts dirty objects, which no index covers. Yet the sync step and the export each wrote it
// for every object, in anchor order, all over its pages.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS objects_pending`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX objects_pending ON objects (anchor) WHERE (present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash) OR (exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0))`.execute(db);
}
