// Migration 0014: the member list each synced group was last given (source anchors), with the
// number of membership rows it left. A sync batch then applies a changed list by its difference
// from the last one: a few added and removed anchors resolved, instead of every member of the
// group resolved and compared with every membership row (25 groups of 2600 members cost ~0.4 s
// in a 1% delta at 20k users). The count is checked first: when the rows changed since (a
// member that arrived later, a member purged), the list is compared whole again, as before.
// A table of its own, not a column of groups: Graph reads groups whole.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sync_member_lists')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('group_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('anchors', 'text', (c) => c.notNull())
    .addColumn('member_count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('sync_member_lists_pk', ['tenant_id', 'group_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('sync_member_lists').execute();
}
