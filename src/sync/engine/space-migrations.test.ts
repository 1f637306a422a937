// Connector-space migrations. 0006 (the imported and desired values out of `objects`) keeps what a
// space made before it holds, both ways: state, imported attributes, desired and exported
// values; and an object's values go with it when it is deleted. 0007 numbers each user's manager;
// 0008 drops an index no query reads, and the pending queries keep theirs. And the export's
// total (space.ts) is counted from indexes.
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationProvider } from './migrations/index.ts';
import { REFERRERS, REFERRERS_INDEX } from './run.ts';
import { EXPORT_TOTAL, PENDING_DELETES, PENDING_UPSERTS } from './space.ts';
import { dnRef } from './scope.ts';

let sqlite: SQLite.Database | undefined;
let db: Kysely<unknown> | undefined;
afterEach(async () => db?.destroy());

const cols = 'anchor, type, dn, dn_key, in_scope, scope_reason, present, seen_run, import_hash, imported, has_refs, dirty, desired, desired_hash, exported, exported_hash, cloud_id, unresolved';
const rows = [
  // Exported, with a pending change (the exported values kept beside the new desired ones).
  ['a1', 'user', 'CN=A,DC=x', 'cn=a,dc=x', 1, null, 1, 7, 'h1', '{"cn":["A"]}', 1, 0, '{"displayName":"A2"}', 'd2', '{"displayName":"A"}', 'd1', 'id-a', null],
  // Computed, never exported.
  ['b2', 'group', 'CN=B,DC=x', 'cn=b,dc=x', 1, null, 1, 7, 'h2', '{"cn":["B"]}', 1, 0, '{"displayName":"B"}', 'd3', null, null, null, '["a1"]'],
  // Out of scope: no attributes, no values.
  ['c3', 'user', 'CN=C,DC=y', 'cn=c,dc=y', 0, 'outside the included OUs', 1, 7, '', null, 0, 0, null, null, null, null, null, null],
] as const;

async function seeded() {
  sqlite = new SQLite(':memory:');
  db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  const migrator = new Migrator({ db, provider: migrationProvider });
  expect((await migrator.migrateTo('0005-dn-covering-index')).error).toBeUndefined();
  const insert = sqlite.prepare(`INSERT INTO objects (${cols}) VALUES (${cols.split(', ').map(() => '?').join(', ')})`);
  for (const r of rows) insert.run(...r);
  return { sqlite, migrator };
}

const whole = (s: SQLite.Database, from: string) => s.prepare(`SELECT ${cols} FROM ${from} ORDER BY anchor`).all();

describe('connector-space migration 0006', () => {
  it('moves imported and desired values into their own tables and back, keeping every value', async () => {
    const { sqlite, migrator } = await seeded();
    const before = whole(sqlite, 'objects');
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    // The state row holds no values; the view shows the object whole, as before.
    const columns = (sqlite.prepare("SELECT name FROM pragma_table_info('objects')").all() as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain('imported');
    expect(columns).not.toContain('desired');
    expect(whole(sqlite, 'objects_full')).toEqual(before);
    expect(sqlite.prepare('SELECT count(*) AS n FROM object_imports').get()).toEqual({ n: 2 });
    expect(sqlite.prepare('SELECT count(*) AS n FROM object_values').get()).toEqual({ n: 2 });
    // The sync step's and the export's reads use the partial indexes.
    const plan = (q: string) => (sqlite.prepare(`EXPLAIN QUERY PLAN ${q}`).all() as { detail: string }[]).map((r) => r.detail).join(' ');
    expect(plan("SELECT id FROM objects WHERE dirty = 1 AND type = 'user' ORDER BY dn_key, anchor")).toMatch(/INDEX objects_dirty/);
    expect(plan("SELECT id FROM objects WHERE type = 'user' AND present = 1 AND in_scope = 1 AND desired_hash IS NOT NULL AND exported_hash IS NOT desired_hash ORDER BY dn_key, anchor")).toMatch(/INDEX objects_pending_upserts/);

    expect((await migrator.migrateTo('0005-dn-covering-index')).error).toBeUndefined();
    expect(whole(sqlite, 'objects')).toEqual(before);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(whole(sqlite, 'objects_full')).toEqual(before);
  });

  it('drops an object\'s imported attributes and values with it', async () => {
    const { sqlite, migrator } = await seeded();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    sqlite.prepare("DELETE FROM objects WHERE anchor = 'a1'").run();
    expect(sqlite.prepare('SELECT count(*) AS n FROM object_imports').get()).toEqual({ n: 1 });
    expect(sqlite.prepare('SELECT count(*) AS n FROM object_values').get()).toEqual({ n: 1 });
    expect(whole(sqlite, 'objects_full').map((r) => (r as { anchor: string }).anchor)).toEqual(['b2', 'c3']);
  });
});

describe('connector-space migration 0007', () => {
  it("gives each user staged before it its one manager's DN key as a number, and leaves the rest to be read whole", async () => {
    const { sqlite, migrator } = await seeded();
    expect((await migrator.migrateTo('0006-narrow-objects')).error).toBeUndefined();
    const add = sqlite.prepare("INSERT INTO objects (anchor, type, dn, dn_key, in_scope, present, seen_run, import_hash, has_refs) VALUES (?, 'user', ?, ?, 1, 1, 7, 'h', 1)");
    const imp = sqlite.prepare('INSERT INTO object_imports (id, imported) VALUES (?, ?)');
    imp.run(Number(add.run('m1', 'CN=M1,DC=x', 'cn=m1,dc=x').lastInsertRowid), JSON.stringify({ manager: ['CN=Boss,  OU=Staff,DC=X'] }));
    imp.run(Number(add.run('m2', 'CN=M2,DC=x', 'cn=m2,dc=x').lastInsertRowid), JSON.stringify({ manager: ['CN=A,DC=x', 'CN=B,DC=x'] }));
    imp.run(Number(add.run('m3', 'CN=M3,DC=x', 'cn=m3,dc=x').lastInsertRowid), JSON.stringify({ Manager: ['CN=C,DC=x'] }));
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const keys = Object.fromEntries((sqlite.prepare('SELECT anchor, manager_ref FROM objects ORDER BY anchor').all() as { anchor: string; manager_ref: number | null }[]).map((r) => [r.anchor, r.manager_ref]));
    expect(keys).toEqual({ a1: null, b2: null, c3: null, m1: dnRef('cn=boss,ou=staff,dc=x'), m2: null, m3: null });
    // A delta's referrers: from the index (built by the first delta), both parts (no scan of every object).
    sqlite.exec(REFERRERS_INDEX);
    const plan = (sqlite.prepare(`EXPLAIN QUERY PLAN ${REFERRERS}`).all(JSON.stringify([dnRef('cn=boss,ou=staff,dc=x')])) as { detail: string }[]).map((r) => r.detail);
    expect(plan.filter((d) => /USING INDEX objects_refs/.test(d))).toHaveLength(2);
    expect(plan.filter((d) => /^SCAN (o|objects)\b/.test(d))).toEqual([]);
    const referrers = (ids: string) => (sqlite.prepare(REFERRERS).all(ids) as { id: number; imported: string | null }[]).map((r) => `${r.id}:${r.imported === null ? 'key' : 'whole'}`);
    const idOf = (a: string) => (sqlite.prepare('SELECT id FROM objects WHERE anchor = ?').get(a) as { id: number }).id;
    expect(referrers(JSON.stringify([dnRef('cn=boss,ou=staff,dc=x')])).sort()).toEqual([`${idOf('a1')}:whole`, `${idOf('b2')}:whole`, `${idOf('m1')}:key`, `${idOf('m2')}:whole`, `${idOf('m3')}:whole`].sort());
    expect(referrers(JSON.stringify([dnRef('cn=other,dc=x')]))).not.toContain(`${idOf('m1')}:key`);
    expect((await migrator.migrateTo('0006-narrow-objects')).error).toBeUndefined();
    expect((sqlite.prepare("SELECT name FROM pragma_table_info('objects')").all() as { name: string }[]).map((c) => c.name)).not.toContain('manager_ref');
  });
});

describe('connector-space migration 0008', () => {
  it('drops objects_pending; pending upserts and deletes are each counted from their own index, and down restores it', async () => {
    const { sqlite, migrator } = await seeded();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const indexes = () => (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'objects_pending%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(indexes()).toEqual(['objects_pending_deletes', 'objects_pending_upserts']);
    const plan = (where: string) => (sqlite.prepare(`EXPLAIN QUERY PLAN SELECT count(*) FROM objects WHERE ${where}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    expect(plan(PENDING_UPSERTS)).toMatch(/USING (COVERING )?INDEX objects_pending_upserts/);
    expect(plan(PENDING_DELETES)).toMatch(/USING (COVERING )?INDEX objects_pending_deletes/);
    expect(sqlite.prepare(`SELECT count(*) AS n FROM objects WHERE ${PENDING_UPSERTS}`).get()).toEqual({ n: 2 });
    expect((await migrator.migrateTo('0007-manager-ref')).error).toBeUndefined();
    expect(indexes()).toEqual(['objects_pending', 'objects_pending_deletes', 'objects_pending_upserts']);
  });
});

describe('the export total', () => {
  it('counts each pending upsert, pending delete and dirty object once, from their indexes (no scan of the table)', async () => {
    const { sqlite, migrator } = await seeded();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    // Seeded: a1 and b2 pending upserts, c3 out of scope and never exported. Added: a dirty object,
    // a dirty object that is also a pending upsert, a pending delete, and one in step with the cloud.
    const add = sqlite.prepare('INSERT INTO objects (anchor, type, dn, dn_key, in_scope, present, seen_run, import_hash, dirty, desired_hash, exported_hash) VALUES (?, ?, ?, ?, 1, ?, 7, ?, ?, ?, ?)');
    add.run('d4', 'user', 'CN=D,DC=x', 'cn=d,dc=x', 1, 'h', 1, null, null);
    add.run('e5', 'user', 'CN=E,DC=x', 'cn=e,dc=x', 1, 'h', 1, 'd5', 'd4');
    add.run('f6', 'group', 'CN=F,DC=x', 'cn=f,dc=x', 0, 'h', 0, 'd6', 'd6');
    add.run('g7', 'user', 'CN=G,DC=x', 'cn=g,dc=x', 1, 'h', 0, 'd7', 'd7');
    const scanned = sqlite.prepare(`SELECT count(*) AS n FROM objects WHERE (${PENDING_UPSERTS}) OR (${PENDING_DELETES}) OR (dirty = 1)`).get();
    expect(sqlite.prepare(EXPORT_TOTAL).get()).toEqual({ n: 5 });
    expect(scanned).toEqual({ n: 5 });
    const plan = (sqlite.prepare(`EXPLAIN QUERY PLAN ${EXPORT_TOTAL}`).all() as { detail: string }[]).map((r) => r.detail);
    expect(plan.filter((d) => /^SCAN objects USING (COVERING )?INDEX objects_(pending_upserts|pending_deletes|dirty)\b/.test(d))).toHaveLength(3);
    expect(plan.filter((d) => /^SCAN objects$/.test(d))).toEqual([]);
  });
});
