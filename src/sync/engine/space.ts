// The connector space: the agent's own SQLite file (separate from the cloud store), migrated
// with Kysely; the per-object hot paths use prepared statements because a run touches every
// one of 100k+ rows and Kysely's per-query compile would dominate.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { SyncError } from '../errors.ts';
import { migrationProvider } from './migrations/index.ts';

/**
 * One object as `objects_full` shows it (migration 0006): the state row of `objects`, its
 * imported attributes (object_imports) and its desired and exported values (object_values).
 */
export interface ObjectRow {
  id: number;
  anchor: string;
  type: 'user' | 'group';
  dn: string;
  dn_key: string;
  in_scope: number;
  scope_reason: string | null;
  present: number;
  seen_run: number;
  import_hash: string;
  imported: string | null;
  has_refs: number;
  /** dnRef of a user's one manager's DN key; NULL for none, several, or not known (read the staged copy). */
  manager_ref: number | null;
  dirty: number;
  values_id: number | null;
  desired: string | null;
  desired_hash: string | null;
  /** NULL with exported_hash set: the desired values (EXPORTED_VALUES reads it). */
  exported: string | null;
  exported_hash: string | null;
  exported_at: string | null;
  cloud_id: string | null;
  match: string | null;
  cloud_upn: string | null;
  provisioning_errors: string | null;
  unresolved: string | null;
  error: string | null;
  error_at: string | null;
}

export interface RunRow {
  id: number;
  kind: string;
  started_at: string;
  ended_at: string | null;
  status: string;
  counts: string | null;
  message: string | null;
  /** The run's first 100 per-object errors, JSON (null before migration 0003 or when none). */
  errors?: string | null;
}

export interface ConnectorSpace {
  readonly sqlite: SQLite.Database;
  readonly file: string;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  object(anchor: string): ObjectRow | undefined;
  runs(limit?: number): RunRow[];
  /** Keeps a run's per-object errors (the first 100) with it in the run history. */
  recordRunErrors(runId: number, errors: readonly unknown[]): void;
  /** Deletes runs started before `cutoff`, except the latest; returns how many went. */
  pruneRuns(cutoff: Date): number;
  /**
   * Copies the WAL's pages into the database file now (as much as no reader holds back), so
   * that a later commit does not stop to do it: the agent calls it when a run has ended.
   */
  checkpoint(): void;
  close(): Promise<void>;
}

/** Per-object errors kept per run in the history. */
export const RUN_ERRORS_KEPT = 100;

/**
 * The objects an export would send: upserts (computed values differ from the last confirmed
 * ones) and deletes (exported, now gone or out of scope). One definition for the export, the
 * threshold count and `nimbus sync pending`; written as migration 0002's partial indexes are,
 * so SQLite uses them.
 */
export const PENDING_UPSERTS = 'present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash';
export const PENDING_DELETES = 'exported_hash IS NOT NULL AND (present = 0 OR in_scope = 0)';

/**
 * How many objects an export may send: pending upserts and deletes, and the dirty objects the
 * sync step has still to compute (any may become an export), each counted once. Three counts,
 * each from its own partial index: one `OR` of the three scanned the whole table, ~45 ms per
 * run at 100k objects even when nothing had changed (a no-change delta's budget is 200 ms).
 */
export const EXPORT_TOTAL = `SELECT (SELECT count(*) FROM objects WHERE ${PENDING_UPSERTS}) + (SELECT count(*) FROM objects WHERE ${PENDING_DELETES}) + (SELECT count(*) FROM objects WHERE dirty = 1 AND NOT (${PENDING_UPSERTS}) AND NOT (${PENDING_DELETES})) AS n`;

/**
 * The values the cloud last confirmed. An export records only their hash and leaves `exported`
 * NULL, meaning "the desired values" (copying a kilobyte of JSON into every row made each row
 * twice as large to rewrite); the sync step keeps the old desired values in `exported` before
 * it replaces them with different ones.
 */
export const EXPORTED_VALUES = 'COALESCE(exported, CASE WHEN exported_hash IS NOT NULL THEN desired END)';

/**
 * Writes what an import staged: the object's row in `objects` and its imported attributes in
 * object_imports (in-scope objects only: out-of-scope ones keep none). An in-scope object is
 * dirty, to be computed by the next sync step.
 */
export function importWriter(db: SQLite.Database) {
  const insertRow = db.prepare<[string, string, string, string, number, string | null, number, string, number, number | null, number]>(
    'INSERT INTO objects (anchor, type, dn, dn_key, in_scope, scope_reason, present, seen_run, import_hash, has_refs, manager_ref, dirty) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)',
  );
  const updateRow = db.prepare<[string, string, string, number, string | null, number, string, number, number | null, number, number]>(
    'UPDATE objects SET type = ?, dn = ?, dn_key = ?, in_scope = ?, scope_reason = ?, present = 1, seen_run = ?, import_hash = ?, has_refs = ?, manager_ref = ?, dirty = ? WHERE id = ?',
  );
  const putImported = db.prepare<[number, string]>('INSERT INTO object_imports (id, imported) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET imported = excluded.imported');
  const dropImported = db.prepare<[number]>('DELETE FROM object_imports WHERE id = ?');
  const setImported = (id: number, staged: string | null) => void (staged === null ? dropImported.run(id) : putImported.run(id, staged));
  type Staged = [type: string, dn: string, dnKey: string, inScope: number, reason: string | null, runId: number, hash: string, staged: string | null, hasRefs: number, managerRef: number | null];
  return {
    /** A new object; returns its id. */
    insert(anchor: string, ...[type, dn, dnKey, inScope, reason, runId, hash, staged, hasRefs, managerRef]: Staged): number {
      const id = Number(insertRow.run(anchor, type, dn, dnKey, inScope, reason, runId, hash, hasRefs, managerRef, inScope).lastInsertRowid);
      if (staged !== null) putImported.run(id, staged);
      return id;
    },
    update(id: number, ...[type, dn, dnKey, inScope, reason, runId, hash, staged, hasRefs, managerRef]: Staged): void {
      updateRow.run(type, dn, dnKey, inScope, reason, runId, hash, hasRefs, managerRef, inScope, id);
      setImported(id, staged);
    },
    /** Replaces (or, for null, drops) the imported attributes alone. */
    setImported,
  };
}

/**
 * Indexes an import into an empty connector space does without: nothing reads them until the
 * import ends, and entry by entry, in the source's order, their new keys land all over their
 * pages, which every commit writes again. Built once at the end from the finished table, the
 * first import of 100k objects took ~2 s less (of ~10 s).
 */
const DEFERRED_INDEXES = ['objects_dn_key', 'objects_dirty'];
/** Meta key holding the dropped indexes' definitions until they are built again ('' once they are). */
const DEFERRED_KEY = 'import.deferredIndexes';

/**
 * Drops DEFERRED_INDEXES, keeping their definitions in meta in the same commit, so whatever
 * ends the import (its end, an error, a killed process) finds them there: see restoreIndexes.
 */
export function deferIndexes(space: ConnectorSpace): void {
  const db = space.sqlite;
  db.transaction(() => {
    const defs = db.prepare<string[], { name: string; sql: string }>(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN (${DEFERRED_INDEXES.map(() => '?').join(', ')})`).all(...DEFERRED_INDEXES);
    if (defs.length === 0) return;
    space.setMeta(DEFERRED_KEY, JSON.stringify(defs.map((d) => d.sql)));
    for (const d of defs) db.exec(`DROP INDEX "${d.name}"`);
  })();
}

/** Builds the indexes deferIndexes dropped, if any are missing (after the import, or before the run after a killed one). */
export function restoreIndexes(space: ConnectorSpace): void {
  const defs = space.getMeta(DEFERRED_KEY);
  if (!defs) return;
  space.sqlite.transaction(() => {
    for (const def of JSON.parse(defs) as string[]) space.sqlite.exec(def.replace(/^CREATE INDEX /i, 'CREATE INDEX IF NOT EXISTS '));
    space.setMeta(DEFERRED_KEY, '');
  })();
}

/** A per-folder lock so two runs never work on one connector space at once; a dead holder's lock is taken over. */
function lock(dir: string): () => void {
  const file = join(dir, 'sync.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8'));
      let alive = false;
      try {
        if (pid > 0 && pid !== process.pid) {
          process.kill(pid, 0);
          alive = true;
        }
      } catch {
        alive = false;
      }
      if (alive) throw new SyncError('RunInProgress', `Another sync run (process ${pid}) is using ${dir}. Wait for it to finish; if no such process runs, delete ${file}.`);
      rmSync(file, { force: true });
    }
  }
  throw new SyncError('RunInProgress', `Cannot take the lock ${file}; delete it if no sync is running.`);
}

/** Opens (creating and migrating) the connector space in `dataDir`, or in memory for ':memory:'. */
export async function openConnectorSpace(dataDir: string): Promise<ConnectorSpace> {
  let file = ':memory:';
  let unlock = () => {};
  if (dataDir !== ':memory:') {
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new SyncError('ConfigInvalid', `sync.dataDir: cannot create ${dataDir} (${(err as Error).message}). Point sync.dataDir (or NIMBUS_SYNC_DATA_DIR) at a writable folder.`);
    }
    file = join(dataDir, 'connector-space.db');
    unlock = lock(dataDir);
  }
  const sqlite = new SQLite(file);
  // WAL + NORMAL: a commit survives a killed process, which is what a rerun relies on.
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  // 16 MB: the engine walks the space in anchor order and by index, so a bigger cache buys
  // little, while each MB shows in the agent's memory at 100k objects.
  sqlite.pragma('cache_size = -16384');
  // Checkpoint every ~40 MB, not 4 MB: an export batch rewrites hundreds of large rows.
  sqlite.pragma('wal_autocheckpoint = 10000');
  const kdb = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  const { error, results } = await new Migrator({ db: kdb, provider: migrationProvider }).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    unlock();
    sqlite.close();
    throw new SyncError('ConfigInvalid', `The connector space ${file} could not be migrated (${failed?.migrationName ?? ''}: ${error instanceof Error ? error.message : String(error)}). Is it from a newer Nimbus?`);
  }
  const getMeta = sqlite.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  const setMeta = sqlite.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  const object = sqlite.prepare<[string], ObjectRow>(`SELECT *, ${EXPORTED_VALUES} AS exported FROM objects_full WHERE anchor = ?`);
  const runs = sqlite.prepare<[number], RunRow>('SELECT * FROM runs ORDER BY id DESC LIMIT ?');
  const runErrors = sqlite.prepare('UPDATE runs SET errors = ? WHERE id = ?');
  const prune = sqlite.prepare('DELETE FROM runs WHERE started_at < ? AND id < (SELECT max(id) FROM runs)');
  return {
    sqlite,
    file,
    getMeta: (k) => getMeta.get(k)?.value,
    setMeta: (k, v) => void setMeta.run(k, v),
    object: (a) => object.get(a),
    runs: (limit = 20) => runs.all(limit),
    recordRunErrors: (id, errors) => void runErrors.run(errors.length ? JSON.stringify(errors.slice(0, RUN_ERRORS_KEPT)) : null, id),
    pruneRuns: (cutoff) => prune.run(cutoff.toISOString()).changes,
    checkpoint: () => void sqlite.pragma('wal_checkpoint(PASSIVE)'),
    async close() {
      // Kysely's destroy closes the better-sqlite3 handle.
      await kdb.destroy();
      unlock();
    },
  };
}

/**
 * Opens an existing connector space for reading only (`nimbus sync runs|errors|explain`):
 * no run lock and no migration, so it works while a run is going on (WAL readers never block
 * the writer). Undefined when `dataDir` holds no connector space yet.
 */
export function readConnectorSpace(dataDir: string): SQLite.Database | undefined {
  const file = join(dataDir, 'connector-space.db');
  if (!existsSync(file)) return undefined;
  try {
    // Not `readonly: true`: a read-only handle cannot create the WAL index (-shm) when no
    // writer has it open; query_only refuses writes just the same.
    const db = new SQLite(file, { fileMustExist: true });
    db.pragma('query_only = 1');
    db.pragma('busy_timeout = 5000');
    db.prepare('SELECT 1 FROM objects LIMIT 1').get();
    return db;
  } catch (err) {
    throw new SyncError('ConfigInvalid', `The connector space ${file} cannot be read (${(err as Error).message}). Check the file's permissions, or run nimbus sync once to create it.`);
  }
}

/** readConnectorSpace for the commands that need one: a clear error (exit 2) when there is none yet. */
export function requireConnectorSpace(dataDir: string, configFile?: string): SQLite.Database {
  const db = readConnectorSpace(dataDir);
  if (!db)
    throw new SyncError(
      'ConfigInvalid',
      `No connector space in ${dataDir}: nimbus sync has not run with this configuration${configFile ? ` (${configFile})` : ''} yet. Run \`nimbus sync\` (or \`nimbus sync --staging\`: imports and computes, exports nothing) first, or check --config / sync.dataDir.`,
    );
  return db;
}
