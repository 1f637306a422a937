// Migration 0005: directReports pages (manager_id = ?, ordered by id) read an index range
// instead of walking every user of the tenant in id order.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('users_manager_id').on('users').columns(['tenant_id', 'manager_id', 'id']).execute();
  await db.schema.dropIndex('users_manager').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('users_manager').on('users').columns(['tenant_id', 'manager_id']).execute();
  await db.schema.dropIndex('users_manager_id').execute();
}
