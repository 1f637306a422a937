// Migration 0010: resolving a source anchor (a sync batch's managers and members, up to 100k
// per first sync) reads the index alone. With (tenant_id, immutable_id) only, each lookup also
// fetched the object's row (a kilobyte, at a random place in the table) for id and deleted_at.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) {
    await db.schema.createIndex(`${table}_anchor`).on(table).columns(['tenant_id', 'immutable_id', 'deleted_at', 'id']).execute();
    await db.schema.dropIndex(`${table}_immutable_id`).execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) {
    await db.schema.createIndex(`${table}_immutable_id`).on(table).columns(['tenant_id', 'immutable_id']).execute();
    await db.schema.dropIndex(`${table}_anchor`).execute();
  }
}
