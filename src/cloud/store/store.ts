// Opens the cloud directory store: Kysely over better-sqlite3 (the embedded default)
// in a data folder, migrated to the latest schema before use.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type SqliteDatabase } from 'kysely';
import { NimbusError } from '../../shared/errors.ts';
import { migrationProvider } from './migrations/index.ts';
import type { Database } from './schema.ts';

export type Store = Kysely<Database>;

export interface StoreOptions {
  /** Data folder; the SQLite file is `<dataDir>/nimbus.db`. Use ':memory:' for a throw-away store. */
  dataDir: string;
  /** How long the store must go without a write before its WAL is checkpointed (ms; default 1000; 0: only SQLite's automatic checkpoint). */
  idleCheckpointMs?: number;
}

/** Resolves the data folder: explicit flag, then NIMBUS_DATA, then ./.nimbus. */
export function resolveDataDir(flag?: string): string {
  return resolve(flag ?? process.env.NIMBUS_DATA ?? '.nimbus');
}

export async function openStore(opts: StoreOptions): Promise<Store> {
  let file = ':memory:';
  if (opts.dataDir !== ':memory:') {
    try {
      mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new NimbusError(
        'unavailable',
        'DataFolderUnavailable',
        `Cannot create the data folder ${opts.dataDir}: ${(err as Error).message}. Pass --data DIR or set NIMBUS_DATA to a writable folder.`,
      );
    }
    file = join(opts.dataDir, 'nimbus.db');
  }
  const sqlite = new SQLite(file);
  // WAL lets readers (Graph GETs) run while a writer commits; NORMAL sync is durable with WAL
  // across process crashes (only an OS crash can lose the last commits).
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('cache_size = -65536');
  // Checkpoint the WAL every ~200 MB instead of every 4 MB: a sync batch dirties thousands of
  // index pages, and each checkpoint writes and syncs them into the database file again; the
  // same pages rewritten by ten batches are checkpointed once. The file is cut back to 64 MB
  // after a checkpoint.
  sqlite.pragma('wal_autocheckpoint = 50000');
  sqlite.pragma('journal_size_limit = 67108864');
  // Savepoint journals in memory: the sync apply runs each object under a savepoint, and with
  // temp files SQLite spills every object's sub-journal (the pages it touched) to disk.
  sqlite.pragma('temp_store = MEMORY');
  const cached = withStatementCache(sqlite);
  const database = file === ':memory:' || opts.idleCheckpointMs === 0 ? cached : withIdleCheckpoint(sqlite, cached, opts.idleCheckpointMs ?? 1000);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  await migrate(db);
  return db;
}

/**
 * Checkpoints the WAL once the store has gone `quietMs` without a write, so that the automatic
 * checkpoint (every ~200 MB of WAL) does not land inside a commit: in delta rounds of 1000
 * changed users against 20k, one round in ~13 took 530-715 ms instead of ~170 ms, copying the
 * last rounds' pages. The store has one connection, so a checkpoint still holds it, but while
 * nothing writes, and for one round's pages. Writes during a first sync keep it from running.
 */
export function withIdleCheckpoint(sqlite: SQLite.Database, inner: SqliteDatabase, quietMs: number): SqliteDatabase {
  let lastWrite = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(() => {
      timer = undefined;
      const waited = performance.now() - lastWrite;
      // A write since, or a transaction still open (a service awaiting other work inside one):
      // wait again. The transaction's commit is a write, so it counts as the last one.
      if (waited < quietMs || sqlite.inTransaction) return arm(Math.max(quietMs - waited, 10));
      try {
        sqlite.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        // Nothing is lost: the pages stay in the WAL, and the automatic checkpoint copies them.
      }
    }, ms);
    timer.unref();
  };
  return {
    close() {
      clearTimeout(timer);
      inner.close();
    },
    prepare(sql: string) {
      const stmt = inner.prepare(sql);
      if (!stmt.reader) {
        lastWrite = performance.now();
        if (timer === undefined) arm(quietMs);
      }
      return stmt;
    },
  };
}

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs as much as running a
 * small query. Statements are reusable, and Kysely runs one query at a time per
 * connection, so a bounded LRU of prepared statements is safe and halves the cost.
 */
export function withStatementCache(sqlite: SQLite.Database, max = 500): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (stmt) {
        cache.delete(sql);
      } else {
        stmt = sqlite.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, stmt);
      return stmt;
    },
  };
}

export async function migrate(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new NimbusError(
      'unavailable',
      'MigrationFailed',
      `Database migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}. The store was left at its previous version; check the data folder is not from a newer Nimbus.`,
    );
  }
}
