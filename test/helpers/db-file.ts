// A SQLite database as its file alone holds it: a copy of the file without its WAL, which is
// what a checkpoint has copied into the file so far.
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { tempDir } from './temp-dirs.ts';

/** Runs `read` on a copy of `file` alone (its tables too may still be in the WAL only). */
export function readFileAlone<T>(file: string, read: (db: SQLite.Database) => T): T {
  const copies = tempDir('nimbus-db-copy-');
  copyFileSync(file, join(copies, 'copy.db'));
  const db = new SQLite(join(copies, 'copy.db'));
  try {
    return read(db);
  } finally {
    db.close();
    rmSync(copies, { recursive: true, force: true });
  }
}

/** Whether the database holds a table of this name. */
export const hasTable = (db: SQLite.Database, name: string) => db.prepare('SELECT 1 FROM sqlite_master WHERE name = ?').get(name) !== undefined;
