// Migration 0006: the imported and desired values move out of `objects` into tables of their
// own, so the row the sync step and the export rewrite for every object is a few hundred bytes
// instead of two kilobytes.
// - objects: the per-object state (scope, hashes, what the cloud decided), an integer key `id`.
// - object_imports (id = objects.id): the imported attributes, written by the import only.
// - object_values (objects.values_id): the desired values and, while they differ from what the
//   cloud last confirmed, the exported ones. The sync step appends these rows in export order,
//   so the export reads them front to back.
// Rows of both go with their object (trigger). The view `objects_full` joins the three, for
// readers that want an object whole (explain, pending, ConnectorSpace.object).
// Measured at 100k users: the export's connector-space work 12 s -> 3 s, because marking 2000
// objects exported rewrote 2000 scattered 2 KB rows (and their pages) per batch.
import { sql, type Kysely } from 'kysely';

const STATE_COLUMNS =
  'anchor, type, dn, dn_key, in_scope, scope_reason, present, seen_run, import_hash, has_refs, dirty, desired_hash, exported_hash, exported_at, cloud_id, match, cloud_upn, provisioning_errors, unresolved, error, error_at';

async function indexes(db: Kysely<unknown>): Promise<void> {
  // The WHERE clauses must stay identical to PENDING_UPSERTS / PENDING_DELETES (space.ts) for SQLite to use them.
  await sql`CREATE INDEX objects_dn_key ON objects (dn_key, in_scope, present, anchor)`.execute(db);
  await sql`CREATE INDEX objects_pending ON objects (anchor) WHERE (present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash) OR (exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0))`.execute(db);
  await sql`CREATE INDEX objects_pending_upserts ON objects (type, dn_key, anchor) WHERE present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash`.execute(db);
  await sql`CREATE INDEX objects_pending_deletes ON objects (anchor) WHERE exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0)`.execute(db);
  await sql`CREATE INDEX objects_unresolved ON objects (anchor) WHERE unresolved IS NOT NULL AND present = 1 AND in_scope = 1`.execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE objects_next (
    id INTEGER PRIMARY KEY,
    -- Source anchor: base64 of ms-DS-ConsistencyGuid, else objectGUID.
    anchor TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    dn TEXT NOT NULL,
    -- Normalized DN, to resolve manager and member references.
    dn_key TEXT NOT NULL,
    in_scope INTEGER NOT NULL,
    scope_reason TEXT,
    -- 0 once a complete import no longer saw it: a delete is pending until the cloud confirms.
    present INTEGER NOT NULL DEFAULT 1,
    seen_run INTEGER NOT NULL,
    import_hash TEXT NOT NULL,
    has_refs INTEGER NOT NULL DEFAULT 0,
    -- 1: the desired values must be recomputed by the next sync step.
    dirty INTEGER NOT NULL DEFAULT 1,
    -- object_values row (desired and exported values), NULL until the first sync step.
    values_id INTEGER,
    desired_hash TEXT,
    -- exported_hash != desired_hash means an export is pending.
    exported_hash TEXT,
    exported_at TEXT,
    cloud_id TEXT,
    -- hard / soft-upn / soft-smtp / soft-proxy / new, as the cloud decided.
    match TEXT,
    cloud_upn TEXT,
    provisioning_errors TEXT,
    unresolved TEXT,
    error TEXT,
    error_at TEXT
  )`.execute(db);
  await sql.raw(`INSERT INTO objects_next (id, ${STATE_COLUMNS}, values_id) SELECT rowid, ${STATE_COLUMNS}, CASE WHEN desired IS NOT NULL OR exported IS NOT NULL THEN rowid END FROM objects`).execute(db);
  // JSON of the imported attributes (in-scope objects only; binary values as base64).
  await sql`CREATE TABLE object_imports (id INTEGER PRIMARY KEY, imported TEXT NOT NULL)`.execute(db);
  await sql`INSERT INTO object_imports (id, imported) SELECT rowid, imported FROM objects WHERE imported IS NOT NULL`.execute(db);
  // desired: what the cloud should hold (JSON); exported: what it last confirmed, kept only
  // while it differs (NULL with objects.exported_hash set means "the desired values").
  await sql`CREATE TABLE object_values (id INTEGER PRIMARY KEY, desired TEXT, exported TEXT)`.execute(db);
  await sql`INSERT INTO object_values (id, desired, exported) SELECT rowid, desired, exported FROM objects WHERE desired IS NOT NULL OR exported IS NOT NULL`.execute(db);
  await sql`DROP TABLE objects`.execute(db);
  await sql`ALTER TABLE objects_next RENAME TO objects`.execute(db);
  await indexes(db);
  // The sync step walks dirty objects in export order (users, then groups; by DN).
  await sql`CREATE INDEX objects_dirty ON objects (type, dn_key, anchor) WHERE dirty = 1`.execute(db);
  await sql`CREATE TRIGGER objects_gone AFTER DELETE ON objects BEGIN
    DELETE FROM object_imports WHERE id = old.id;
    DELETE FROM object_values WHERE id = old.values_id;
  END`.execute(db);
  await sql`CREATE VIEW objects_full AS
    SELECT o.*, i.imported AS imported, v.desired AS desired, v.exported AS exported
    FROM objects o LEFT JOIN object_imports i ON i.id = o.id LEFT JOIN object_values v ON v.id = o.values_id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP VIEW objects_full`.execute(db);
  await sql`DROP TRIGGER objects_gone`.execute(db);
  await sql`CREATE TABLE objects_prev (
    anchor TEXT PRIMARY KEY, type TEXT NOT NULL, dn TEXT NOT NULL, dn_key TEXT NOT NULL, in_scope INTEGER NOT NULL, scope_reason TEXT,
    present INTEGER NOT NULL DEFAULT 1, seen_run INTEGER NOT NULL, import_hash TEXT NOT NULL, imported TEXT, has_refs INTEGER NOT NULL DEFAULT 0,
    dirty INTEGER NOT NULL DEFAULT 1, desired TEXT, desired_hash TEXT, exported TEXT, exported_hash TEXT, exported_at TEXT, cloud_id TEXT,
    match TEXT, cloud_upn TEXT, provisioning_errors TEXT, unresolved TEXT, error TEXT, error_at TEXT)`.execute(db);
  await sql
    .raw(
      `INSERT INTO objects_prev (${STATE_COLUMNS}, imported, desired, exported)
       SELECT ${STATE_COLUMNS.split(', ').map((c) => `o.${c}`).join(', ')}, i.imported, v.desired, v.exported
       FROM objects o LEFT JOIN object_imports i ON i.id = o.id LEFT JOIN object_values v ON v.id = o.values_id ORDER BY o.id`,
    )
    .execute(db);
  await sql`DROP TABLE objects`.execute(db);
  await sql`DROP TABLE object_imports`.execute(db);
  await sql`DROP TABLE object_values`.execute(db);
  await sql`ALTER TABLE objects_prev RENAME TO objects`.execute(db);
  await indexes(db);
  await sql`CREATE INDEX objects_dirty ON objects (dirty) WHERE dirty = 1`.execute(db);
}
