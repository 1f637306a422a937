// Migration 0012: fewer B-tree writes per object in a first sync.
// - addresses (UPN, mail and SMTP proxies, three per user) is stored in key order on SQLite
//   (WITHOUT ROWID): one B-tree instead of a table plus its key index.
// - groups.members_since: the change number from which a group's membership changes are in
//   membership_changes. A delta round that started before it gets the group's members whole,
//   as an initial round does. A group the sync path creates gets its first members without a
//   change-log row each (half a million rows in a first sync of 100k users), and members_since
//   set to the change that added them. NULL: every change is in the log (groups made before
//   this migration, and by Graph).
import { SqliteAdapter, sql, type Kysely } from 'kysely';

const isSqlite = (db: Kysely<unknown>) => db.getExecutor().adapter instanceof SqliteAdapter;

async function rebuildAddresses(db: Kysely<unknown>, withoutRowid: boolean): Promise<void> {
  const end = withoutRowid ? sql` WITHOUT ROWID` : sql``;
  await sql`CREATE TABLE addresses_next (
    tenant_id varchar(36) NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    address varchar(320) NOT NULL,
    object_id varchar(36) NOT NULL,
    CONSTRAINT addresses_pk PRIMARY KEY (tenant_id, address))${end}`.execute(db);
  await sql`INSERT INTO addresses_next (tenant_id, address, object_id) SELECT tenant_id, address, object_id FROM addresses`.execute(db);
  await sql`DROP TABLE addresses`.execute(db);
  await sql`ALTER TABLE addresses_next RENAME TO addresses`.execute(db);
  await db.schema.createIndex('addresses_object').on('addresses').columns(['tenant_id', 'object_id']).execute();
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (isSqlite(db)) await rebuildAddresses(db, true);
  await db.schema.alterTable('groups').addColumn('members_since', 'bigint').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The change log gets the rows the sync path left out: each member as added at members_since.
  const ignore = isSqlite(db) ? sql`OR IGNORE ` : sql``;
  await sql`INSERT ${ignore}INTO membership_changes (tenant_id, seq, group_id, member_id, member_type, removed)
    SELECT m.tenant_id, g.members_since, m.group_id, m.member_id, m.member_type, 0
    FROM memberships m JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id WHERE g.members_since IS NOT NULL`.execute(db);
  await db.schema.alterTable('groups').dropColumn('members_since').execute();
  if (isSqlite(db)) await rebuildAddresses(db, false);
}
