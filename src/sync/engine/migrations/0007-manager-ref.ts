// Migration 0007: each user's manager as a number (`manager_ref`, dnRef of its DN key), so that
// a delta finds the users whose manager was renamed, moved, deleted or changed scope from an
// index (objects_refs) instead of reading every user's staged copy (170 ms at 20k users, each 1%
// delta). NULL where a user has no manager, more than one `manager` value, or one spelled
// otherwise: a delta reads those whole, as it reads groups. The index is built by the first
// delta that needs it (engine/run.ts, REFERRERS_INDEX), in one pass over the rows: kept entry
// by entry through a first full import it cost ~5% of that import at 100k users (a text
// index of the DN keys, ~7 s).
import { sql, type Kysely } from 'kysely';
import { dnRef, normalizeDn } from '../scope.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE objects ADD COLUMN manager_ref INTEGER`.execute(db);
  // The users staged before it: read in pages, not all at once (a space holds 100k+).
  for (let after = 0; ; ) {
    const { rows } = await sql<{ id: number; manager: string | null; n: number | null }>`
      SELECT o.id, json_extract(i.imported, '$.manager[0]') AS manager, json_array_length(i.imported, '$.manager') AS n
      FROM objects o JOIN object_imports i ON i.id = o.id
      WHERE o.type = 'user' AND o.has_refs = 1 AND o.id > ${after} ORDER BY o.id LIMIT 5000`.execute(db);
    if (!rows.length) break;
    for (const r of rows) if (r.manager !== null && r.n === 1) await sql`UPDATE objects SET manager_ref = ${dnRef(normalizeDn(r.manager))} WHERE id = ${r.id}`.execute(db);
    after = rows.at(-1)!.id;
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS objects_refs`.execute(db);
  await sql`ALTER TABLE objects DROP COLUMN manager_ref`.execute(db);
}
