// Migration 0006: references the sync path could not resolve yet (a manager or a member whose
// object is not in the cloud yet) wait here, keyed by the target's source anchor, and are set
// when that object arrives, whatever order the agent exports in. Also drops indexes no query
// uses, each one more page to write per object: users_upn_lower (a prefix of 0003's
// users_upn_lower_id), and the case-sensitive users_upn, users_display_name and
// groups_display_name (names are filtered and sorted on lower(...), 0003's indexes).
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_pending_refs')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('target_anchor', 'varchar(64)', (c) => c.notNull())
    .addColumn('source_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('kind', 'varchar(8)', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_pending_refs_pk', ['tenant_id', 'target_anchor', 'source_id', 'kind'])
    .execute();
  await db.schema.createIndex('sync_pending_refs_source').on('sync_pending_refs').columns(['tenant_id', 'source_id']).execute();
  for (const name of ['users_upn_lower', 'users_upn', 'users_display_name', 'groups_display_name']) await db.schema.dropIndex(name).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('users_upn').on('users').columns(['tenant_id', 'upn', 'id']).execute();
  for (const table of ['users', 'groups']) await db.schema.createIndex(`${table}_display_name`).on(table).columns(['tenant_id', 'display_name', 'id']).execute();
  await db.schema
    .createIndex('users_upn_lower')
    .on('users')
    .expression(sql`tenant_id, lower(upn)`)
    .execute();
  await db.schema.dropTable('sync_pending_refs').execute();
}
