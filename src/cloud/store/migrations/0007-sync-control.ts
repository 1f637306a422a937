// Migration 0007: what lets the cloud directory steer the sync agent: the export lease (one
// agent exports per tenant at a time) and administrators' requests ("sync now", "allow these
// deletes") that the agent picks up.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_leases')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('holder', 'varchar(256)', (c) => c.notNull())
    .addColumn('agent', 'varchar(256)', (c) => c.notNull())
    .addColumn('acquired_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('renewed_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('sync_requests')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('kind', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('requested_by', 'varchar(256)', (c) => c.notNull())
    .addColumn('requested_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('claimed_by', 'varchar(256)')
    .addColumn('claimed_at', 'varchar(32)')
    .addColumn('completed_at', 'varchar(32)')
    .addColumn('run_id', 'varchar(64)')
    .addColumn('result', 'varchar(48)')
    .execute();
  await db.schema.createIndex('sync_requests_tenant_status').on('sync_requests').columns(['tenant_id', 'status', 'requested_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sync_requests').execute();
  await db.schema.dropTable('sync_leases').execute();
}
