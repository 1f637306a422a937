// Migration 0001: the connector space (one row per source object: what was last imported,
// the desired cloud values, what the cloud last confirmed, the match decision, errors),
// run history and a small key/value table.
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('objects')
    // Source anchor: base64 of ms-DS-ConsistencyGuid, else objectGUID.
    .addColumn('anchor', 'text', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('dn', 'text', (c) => c.notNull())
    // Normalized DN, to resolve manager and member references.
    .addColumn('dn_key', 'text', (c) => c.notNull())
    .addColumn('in_scope', 'integer', (c) => c.notNull())
    .addColumn('scope_reason', 'text')
    // 0 once a complete import no longer saw it: a delete is pending until the cloud confirms.
    .addColumn('present', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('seen_run', 'integer', (c) => c.notNull())
    .addColumn('import_hash', 'text', (c) => c.notNull())
    // JSON of the imported attributes (in-scope objects only; binary values as base64).
    .addColumn('imported', 'text')
    .addColumn('has_refs', 'integer', (c) => c.notNull().defaultTo(0))
    // 1: the desired values must be recomputed by the next sync step.
    .addColumn('dirty', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('desired', 'text')
    .addColumn('desired_hash', 'text')
    // What the cloud last confirmed; exported_hash != desired_hash means an export is pending.
    .addColumn('exported', 'text')
    .addColumn('exported_hash', 'text')
    .addColumn('exported_at', 'text')
    .addColumn('cloud_id', 'text')
    // hard / soft-upn / soft-smtp / soft-proxy / new, as the cloud decided.
    .addColumn('match', 'text')
    .addColumn('cloud_upn', 'text')
    .addColumn('provisioning_errors', 'text')
    .addColumn('unresolved', 'text')
    .addColumn('error', 'text')
    .addColumn('error_at', 'text')
    .execute();
  await db.schema.createIndex('objects_dn_key').on('objects').column('dn_key').execute();
  // No index on present/seen_run: the planner would pick it over dn_key and the primary key
  // (low-cardinality columns, no statistics), and the once-per-run scans need no index.
  await db.schema.createIndex('objects_dirty').on('objects').column('dirty').where(sql.ref('dirty'), '=', 1).execute();
  await db.schema
    .createTable('runs')
    .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('ended_at', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('counts', 'text')
    .addColumn('message', 'text')
    .execute();
  await db.schema.createTable('meta').addColumn('key', 'text', (c) => c.primaryKey()).addColumn('value', 'text', (c) => c.notNull()).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['meta', 'runs', 'objects']) await db.schema.dropTable(t).execute();
}
