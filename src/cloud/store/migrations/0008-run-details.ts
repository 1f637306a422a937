// Migration 0008: what a reported sync run lists for the portal (JSON, each capped at 1000
// objects plus the total): the deletes a threshold-stopped run would make (for "allow these
// deletes"), the exports a staging run leaves pending, and the deletes a run made.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const column of ['pending_deletes', 'pending_exports', 'deleted']) await db.schema.alterTable('sync_runs').addColumn(column, 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const column of ['pending_deletes', 'pending_exports', 'deleted']) await db.schema.alterTable('sync_runs').dropColumn(column).execute();
}
