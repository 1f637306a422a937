// Migration 0002: what the cloud side of directory sync remembers per object: the last
// values the agent sent (so duplicate-attribute conflicts can heal without a new export)
// and how the object was matched.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) {
    await db.schema.alterTable(table).addColumn('sync_desired', 'text').execute();
    await db.schema.alterTable(table).addColumn('sync_match', 'varchar(32)').execute();
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['users', 'groups']) {
    await db.schema.alterTable(table).dropColumn('sync_desired').execute();
    await db.schema.alterTable(table).dropColumn('sync_match').execute();
  }
}
