// Hot statements of the sync path, compiled once per shape. Kysely builds and compiles a query
// on every call (tens of µs for a 30-column insert, as much as SQLite takes to run it); the
// text for one table and one column list never changes, so it is compiled once, by the dialect
// in use, and run again with new parameters. The first compile checks that the parameters come
// in the order assumed; if not, the statement is built the ordinary way every time.
import { CompiledQuery, type Insertable, type Kysely, type Updateable } from 'kysely';
import type { Database } from './schema.ts';

type Db = Kysely<Database>;
type Table = keyof Database;

const texts = new Map<string, string | null>();
const same = (a: readonly unknown[], b: readonly unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Rows per statement: any number of rows goes in statements of these sizes (greedily), so a
 * table has a handful of statement shapes. One shape per row count filled the statement cache
 * with hundreds of multi-row statements of 1..500 rows (about 60 MB of prepared statements)
 * and prepared them again as they fell out of it.
 */
const ROW_COUNTS = [128, 32, 8, 2, 1] as const;

/**
 * INSERT INTO table (columns) VALUES (...), (...): rows of the same columns; `ignoreConflicts`
 * adds ON CONFLICT DO NOTHING.
 */
export async function insertRows<T extends Table>(db: Db, table: T, rows: readonly Insertable<Database[T]>[], opts: { ignoreConflicts?: boolean } = {}): Promise<void> {
  for (let i = 0; i < rows.length; ) {
    const n = ROW_COUNTS.find((c) => c <= rows.length - i)!;
    await insertShape(db, table, n === rows.length ? rows : rows.slice(i, i + n), opts);
    i += n;
  }
}

async function insertShape<T extends Table>(db: Db, table: T, rows: readonly Insertable<Database[T]>[], opts: { ignoreConflicts?: boolean }): Promise<void> {
  const first = rows[0] as Record<string, unknown>;
  const keys = Object.keys(first);
  const params: unknown[] = [];
  for (const row of rows as readonly Record<string, unknown>[]) for (const k of keys) params.push(row[k]);
  const key = `insert\u0000${table}\u0000${keys.join(',')}\u0000${rows.length}\u0000${opts.ignoreConflicts ? 'ignore' : ''}`;
  const text = texts.get(key);
  if (text) {
    await db.executeQuery(CompiledQuery.raw(text, params));
    return;
  }
  let q = db.insertInto(table).values(rows);
  if (opts.ignoreConflicts) q = q.onConflict((oc) => oc.doNothing());
  if (text === undefined) {
    const c = q.compile();
    texts.set(key, same(c.parameters, params) ? c.sql : null);
  }
  await q.execute();
}

/** INSERT INTO table (row's columns) VALUES (row's values). */
export const insertRow = <T extends Table>(db: Db, table: T, row: Insertable<Database[T]>): Promise<void> => insertRows(db, table, [row]);

/** UPDATE table SET (set's columns) WHERE tenant_id = ? AND id = ?. */
export async function updateObject<T extends 'users' | 'groups'>(db: Db, table: T, tenantId: string, id: string, set: Updateable<Database[T]>): Promise<void> {
  const s = set as Record<string, unknown>;
  const keys = Object.keys(s);
  const params = [...keys.map((k) => s[k]), tenantId, id];
  const key = `update\u0000${table}\u0000${keys.join(',')}`;
  const text = texts.get(key);
  if (text) {
    await db.executeQuery(CompiledQuery.raw(text, params));
    return;
  }
  // (Typed as users: the same columns for this purpose, tenant_id and id, in both tables.)
  const q = (db as unknown as Kysely<Pick<Database, 'users'>>).updateTable(table as 'users').set(set as never).where('tenant_id', '=', tenantId).where('id', '=', id);
  if (text === undefined) {
    const c = q.compile();
    texts.set(key, same(c.parameters, params) ? c.sql : null);
  }
  await q.execute();
}
