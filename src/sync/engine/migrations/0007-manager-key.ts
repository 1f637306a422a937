// Migration 0007: each user's manager as a DN key (`manager_key`), indexed with the objects
// that hold references (objects_refs), so that a delta finds the users whose manager was
// renamed, moved, deleted or changed scope from the index instead of reading every user's staged
// copy (170 ms at 20k users, each 1% delta). NULL where a user has no manager, more than one
// `manager` value, or one spelled otherwise: a delta reads those whole, as it reads groups.
import { sql, type Kysely } from 'kysely';
import { normalizeDn } from '../scope.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE objects ADD COLUMN manager_key TEXT`.execute(db);
  // The users staged before it: read in pages, not all at once (a space holds 100k+).
  for (let after = 0; ; ) {
    const { rows } = await sql<{ id: number; manager: string | null; n: number | null }>`
      SELECT o.id, json_extract(i.imported, '$.manager[0]') AS manager, json_array_length(i.imported, '$.manager') AS n
      FROM objects o JOIN object_imports i ON i.id = o.id
      WHERE o.type = 'user' AND o.has_refs = 1 AND o.id > ${after} ORDER BY o.id LIMIT 5000`.execute(db);
    if (!rows.length) break;
    for (const r of rows) if (r.manager !== null && r.n === 1) await sql`UPDATE objects SET manager_key = ${normalizeDn(r.manager)} WHERE id = ${r.id}`.execute(db);
    after = rows.at(-1)!.id;
  }
  await sql`CREATE INDEX objects_refs ON objects (manager_key) WHERE has_refs = 1`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX objects_refs`.execute(db);
  await sql`ALTER TABLE objects DROP COLUMN manager_key`.execute(db);
}
