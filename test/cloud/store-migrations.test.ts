// Store migrations that rebuild or re-index tables keep the rows they hold, both ways: a store
// made before 0010/0011 with memberships, change log and synced users in it is migrated to the
// latest schema, read, and taken back down again.
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationProvider } from '../../src/cloud/store/migrations/index.ts';
import { ERRORED } from '../../src/cloud/store/migrations/0013-errored-index.ts';

let db: Kysely<unknown> | undefined;
afterEach(async () => db?.destroy());

const T = '11111111-1111-4111-8111-111111111111';
const G = '01a2114e-0000-7000-8000-000000000001';
const U = ['01a2114e-0000-7000-8000-000000000002', '01a2114e-0000-7000-8000-000000000003'];

async function seeded(): Promise<{ db: Kysely<unknown>; migrator: Migrator }> {
  const sqlite = new SQLite(':memory:');
  sqlite.pragma('foreign_keys = ON');
  db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
  const migrator = new Migrator({ db, provider: migrationProvider });
  const to = await migrator.migrateTo('0009-portal');
  expect(to.error).toBeUndefined();
  await sql`INSERT INTO tenants (id, name, display_name, initial_domain, created_at, sync_features, sync_enabled, change_seq) VALUES (${T}, 't', 'T', 't.onnimbus.com', '2026-11-25T00:00:00Z', '{}', 1, 3)`.execute(db);
  for (const [i, id] of U.entries())
    await sql`INSERT INTO users (tenant_id, id, seq, created_at, upn, display_name, mail_nickname, proxy_addresses, account_enabled, user_type, on_prem_provisioning_errors, extra, immutable_id, on_prem_sync_enabled)
              VALUES (${T}, ${id}, ${i + 1}, '2026-11-25T00:00:00Z', ${`u${i}@t.onnimbus.com`}, ${`U${i}`}, ${`u${i}`}, '[]', 1, 'Member', '[]', '{}', ${`anchor${i}`}, 1)`.execute(db);
  for (const [i, m] of U.entries()) {
    await sql`INSERT INTO memberships (tenant_id, group_id, member_id, member_type) VALUES (${T}, ${G}, ${m}, 'user')`.execute(db);
    await sql`INSERT INTO membership_changes (tenant_id, seq, group_id, member_id, member_type, removed) VALUES (${T}, ${i + 2}, ${G}, ${m}, 'user', 0)`.execute(db);
  }
  await sql`INSERT INTO membership_changes (tenant_id, seq, group_id, member_id, member_type, removed) VALUES (${T}, 3, ${G}, ${U[0]}, 'user', 1)`.execute(db);
  return { db, migrator };
}

const tableSql = async (db: Kysely<unknown>, name: string) => (await sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE name = ${name}`.execute(db)).rows[0]?.sql ?? '';
const memberships = async (db: Kysely<unknown>) => (await sql`SELECT group_id, member_id, member_type FROM memberships ORDER BY member_id`.execute(db)).rows;
const changes = async (db: Kysely<unknown>) => (await sql`SELECT seq, member_id, removed FROM membership_changes ORDER BY seq, member_id`.execute(db)).rows;

describe('store migrations', () => {
  it('0010/0011 keep memberships, their change log and anchor lookups, up and down', async () => {
    const { db, migrator } = await seeded();
    const beforeM = await memberships(db);
    const beforeC = await changes(db);
    expect(beforeM).toHaveLength(2);
    expect(beforeC).toHaveLength(3);

    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(await tableSql(db, 'memberships')).toMatch(/WITHOUT ROWID/i);
    expect(await tableSql(db, 'membership_changes')).toMatch(/WITHOUT ROWID/i);
    expect(await memberships(db)).toEqual(beforeM);
    expect(await changes(db)).toEqual(beforeC);
    // The key still refuses a second copy of a membership, and cascades with the tenant.
    await expect(sql`INSERT INTO memberships (tenant_id, group_id, member_id, member_type) VALUES (${T}, ${G}, ${U[0]}, 'user')`.execute(db)).rejects.toThrow(/UNIQUE/);
    // Anchor lookups read the covering index.
    const plan = (await sql<{ detail: string }>`EXPLAIN QUERY PLAN SELECT id, immutable_id, deleted_at FROM users WHERE tenant_id = ${T} AND immutable_id IN ('anchor0', 'anchor1')`.execute(db)).rows.map((r) => r.detail).join(' ');
    expect(plan).toMatch(/COVERING INDEX users_anchor/);

    expect((await migrator.migrateTo('0009-portal')).error).toBeUndefined();
    expect(await tableSql(db, 'memberships')).not.toMatch(/WITHOUT ROWID/i);
    expect(await memberships(db)).toEqual(beforeM);
    expect(await changes(db)).toEqual(beforeC);
    expect(await tableSql(db, 'membership_changes_seq')).toMatch(/CREATE INDEX/);

    await sql`DELETE FROM tenants WHERE id = ${T}`.execute(db);
    expect(await memberships(db)).toEqual([]);
  });

  it('0012 keeps addresses (clustered by key on SQLite) and, going down, writes the change-log rows members_since stood for', async () => {
    const { db, migrator } = await seeded();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(await tableSql(db, 'addresses')).toMatch(/WITHOUT ROWID/i);
    await sql`INSERT INTO addresses (tenant_id, address, object_id) VALUES (${T}, 'u0@t.onnimbus.com', ${U[0]}), (${T}, 'u1@t.onnimbus.com', ${U[1]})`.execute(db);
    await expect(sql`INSERT INTO addresses (tenant_id, address, object_id) VALUES (${T}, 'u0@t.onnimbus.com', ${U[1]})`.execute(db)).rejects.toThrow(/UNIQUE/);
    const G2 = '01a2114e-0000-7000-8000-000000000009';
    await sql`INSERT INTO groups (tenant_id, id, seq, created_at, display_name, mail_nickname, proxy_addresses, mail_enabled, security_enabled, group_types, on_prem_provisioning_errors, extra, members_since)
              VALUES (${T}, ${G2}, 7, '2026-11-25T00:00:00Z', 'G2', 'g2', '[]', 0, 1, '[]', '[]', '{}', 7)`.execute(db);
    for (const m of U) await sql`INSERT INTO memberships (tenant_id, group_id, member_id, member_type) VALUES (${T}, ${G2}, ${m}, 'user')`.execute(db);
    const addresses = async () => (await sql`SELECT address, object_id FROM addresses ORDER BY address`.execute(db)).rows;
    const before = await addresses();

    expect((await migrator.migrateTo('0011-membership-clustering')).error).toBeUndefined();
    expect(await tableSql(db, 'addresses')).not.toMatch(/WITHOUT ROWID/i);
    expect(await addresses()).toEqual(before);
    const log = (await sql`SELECT seq, member_id, removed FROM membership_changes WHERE group_id = ${G2} ORDER BY member_id`.execute(db)).rows;
    expect(log).toEqual(U.map((m) => ({ seq: 7, member_id: m, removed: 0 })));
  });

  it('0013/0014: the heal after a batch reads the objects with provisioning errors from their own index, not every live user; 0014 adds the member lists, both ways', async () => {
    const { db, migrator } = await seeded();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    await sql`UPDATE users SET on_prem_provisioning_errors = '[{"category":"PropertyConflict"}]' WHERE id = ${U[1]}`.execute(db);
    for (const table of ['users', 'groups']) {
      const q = sql`SELECT immutable_id FROM ${sql.id(table)} WHERE tenant_id = ${T} AND ${ERRORED}`;
      const plan = (await sql<{ detail: string }>`EXPLAIN QUERY PLAN ${q}`.execute(db)).rows.map((r) => r.detail).join(' ');
      expect(plan).toMatch(new RegExp(`INDEX ${table}_errored`));
      if (table === 'users') expect((await q.execute(db)).rows).toEqual([{ immutable_id: 'anchor1' }]);
    }
    expect(await tableSql(db, 'sync_member_lists')).toMatch(/primary key \("tenant_id", "group_id"\)/i);
    expect((await migrator.migrateTo('0012-first-sync-writes')).error).toBeUndefined();
    expect(await tableSql(db, 'users_errored')).toBe('');
    expect(await tableSql(db, 'sync_member_lists')).toBe('');
  });
});
