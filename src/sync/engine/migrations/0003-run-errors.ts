// Migration 0003: the per-object errors of each run (the first 100, JSON), kept with the run
// in the history `nimbus sync runs` shows; an index on started_at for the retention prune.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').addColumn('errors', 'text').execute();
  await db.schema.createIndex('runs_started_at').on('runs').column('started_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('runs_started_at').execute();
  await db.schema.alterTable('runs').dropColumn('errors').execute();
}
