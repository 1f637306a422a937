// Migration 0004: runs the sync agent reports to the cloud directory (status, counts,
// errors, whether one is in progress), so the portal can show them wherever the agent runs.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_runs')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('run_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('agent', 'varchar(256)', (c) => c.notNull())
    .addColumn('kind', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(48)', (c) => c.notNull())
    .addColumn('in_progress', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('ended_at', 'varchar(32)')
    .addColumn('counts', 'text', (c) => c.notNull())
    .addColumn('errors', 'text', (c) => c.notNull())
    .addColumn('message', 'text')
    .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_runs_pk', ['tenant_id', 'run_id'])
    .execute();
  await db.schema.createIndex('sync_runs_started').on('sync_runs').columns(['tenant_id', 'started_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sync_runs').execute();
}
