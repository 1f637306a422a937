// Migration 0005: resolving a manager or member DN (one lookup per reference, 100k+ in a first
// sync) reads the index alone. With dn_key only, each lookup also fetched the object's row (the
// imported attributes, a kilobyte) to test in_scope and present and read the anchor.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX objects_dn_key`.execute(db);
  await sql`CREATE INDEX objects_dn_key ON objects (dn_key, in_scope, present, anchor)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX objects_dn_key`.execute(db);
  await sql`CREATE INDEX objects_dn_key ON objects (dn_key)`.execute(db);
}
