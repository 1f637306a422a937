// Migration 0011: on SQLite, memberships and their change log are stored in key order
// (WITHOUT ROWID), one B-tree each instead of a table plus a separate key index. A first sync
// writes a row to each per membership (half a million at 100k users): two B-trees fewer per
// membership, a third less to write. PostgreSQL keeps its ordinary tables.
import { SqliteAdapter, sql, type Kysely } from 'kysely';

const isSqlite = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof SqliteAdapter;

async function rebuild(db: Kysely<unknown>, withoutRowid: boolean): Promise<void> {
  const end = withoutRowid ? sql` WITHOUT ROWID` : sql``;
  const changesKey = withoutRowid ? sql`, PRIMARY KEY (tenant_id, group_id, seq, member_id)` : sql``;
  await sql`CREATE TABLE memberships_next (
    tenant_id varchar(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id varchar(36) NOT NULL,
    member_id varchar(36) NOT NULL,
    member_type varchar(8) NOT NULL,
    CONSTRAINT memberships_pk PRIMARY KEY (tenant_id, group_id, member_id))${end}`.execute(db);
  await sql`INSERT INTO memberships_next (tenant_id, group_id, member_id, member_type) SELECT tenant_id, group_id, member_id, member_type FROM memberships`.execute(db);
  await sql`DROP TABLE memberships`.execute(db);
  await sql`ALTER TABLE memberships_next RENAME TO memberships`.execute(db);
  await db.schema.createIndex('memberships_member').on('memberships').columns(['tenant_id', 'member_id']).execute();

  await sql`CREATE TABLE membership_changes_next (
    tenant_id varchar(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    group_id varchar(36) NOT NULL,
    member_id varchar(36) NOT NULL,
    member_type varchar(8) NOT NULL,
    removed integer NOT NULL${changesKey})${end}`.execute(db);
  // One change per member and change number (each write takes its own number).
  await sql`INSERT OR IGNORE INTO membership_changes_next (tenant_id, seq, group_id, member_id, member_type, removed) SELECT tenant_id, seq, group_id, member_id, member_type, removed FROM membership_changes ORDER BY tenant_id, group_id, seq`.execute(db);
  await sql`DROP TABLE membership_changes`.execute(db);
  await sql`ALTER TABLE membership_changes_next RENAME TO membership_changes`.execute(db);
  // Without rowid the key serves (tenant_id, group_id, seq) reads itself.
  if (!withoutRowid) await db.schema.createIndex('membership_changes_seq').on('membership_changes').columns(['tenant_id', 'group_id', 'seq']).execute();
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (isSqlite(db)) await rebuild(db, true);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (isSqlite(db)) await rebuild(db, false);
}
