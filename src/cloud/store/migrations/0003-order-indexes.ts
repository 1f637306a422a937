// Migration 0003: indexes for $orderby, which sorts names case-insensitively (lower(...), then
// id), so ordered pages stay keyset reads instead of a sort of the whole tenant per page.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups'] as const) {
    await db.schema
      .createIndex(`${table}_display_name_lower`)
      .on(table)
      .expression(sql`tenant_id, lower(display_name), id`)
      .execute();
  }
  await db.schema
    .createIndex('users_upn_lower_id')
    .on('users')
    .expression(sql`tenant_id, lower(upn), id`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('users_upn_lower_id').ifExists().execute();
  for (const table of ['users', 'groups'] as const) await db.schema.dropIndex(`${table}_display_name_lower`).ifExists().execute();
}
