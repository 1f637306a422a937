// Migration 0001: the initial cloud directory schema (portable SQL for SQLite and PostgreSQL).
import { sql, type CreateTableBuilder, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('display_name', 'varchar(256)', (c) => c.notNull())
    .addColumn('initial_domain', 'varchar(255)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('sync_enabled', 'integer')
    .addColumn('sync_last_at', 'varchar(32)')
    .addColumn('sync_disabled_at', 'varchar(32)')
    .addColumn('sync_features', 'text', (c) => c.notNull())
    .addColumn('change_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema
    .createTable('domains')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('is_verified', 'integer', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull())
    .addColumn('is_initial', 'integer', (c) => c.notNull())
    .addColumn('authentication_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('verification_code', 'varchar(64)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('verified_at', 'varchar(32)')
    .addPrimaryKeyConstraint('domains_pk', ['tenant_id', 'name'])
    .execute();
  // A domain name can be verified in one tenant only.
  await db.schema
    .createIndex('domains_verified_name')
    .on('domains')
    .column('name')
    .unique()
    .where(sql.ref('is_verified'), '=', 1)
    .execute();

  const objectColumns = (name: string, t: CreateTableBuilder<string, never>) =>
    t
      .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
      .addColumn('id', 'varchar(36)', (c) => c.notNull())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
      .addColumn('deleted_at', 'varchar(32)')
      .addColumn('display_name', 'varchar(256)')
      .addColumn('mail', 'varchar(256)')
      .addColumn('mail_nickname', 'varchar(64)')
      .addColumn('proxy_addresses', 'text', (c) => c.notNull())
      .addColumn('immutable_id', 'varchar(64)')
      .addColumn('on_prem_sync_enabled', 'integer')
      .addColumn('on_prem_sam_account_name', 'varchar(64)')
      .addColumn('on_prem_security_identifier', 'varchar(256)')
      .addColumn('on_prem_domain_name', 'varchar(256)')
      .addColumn('on_prem_last_sync_at', 'varchar(32)')
      .addColumn('on_prem_provisioning_errors', 'text', (c) => c.notNull())
      .addColumn('extra', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint(`${name}_pk`, ['tenant_id', 'id']);

  await objectColumns('users', db.schema.createTable('users'))
    .addColumn('upn', 'varchar(113)', (c) => c.notNull())
    .addColumn('account_enabled', 'integer', (c) => c.notNull())
    .addColumn('given_name', 'varchar(64)')
    .addColumn('surname', 'varchar(64)')
    .addColumn('job_title', 'varchar(128)')
    .addColumn('department', 'varchar(64)')
    .addColumn('company_name', 'varchar(64)')
    .addColumn('employee_id', 'varchar(16)')
    .addColumn('user_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('usage_location', 'varchar(2)')
    .addColumn('on_prem_distinguished_name', 'varchar(1024)')
    .addColumn('on_prem_user_principal_name', 'varchar(256)')
    .addColumn('manager_id', 'varchar(36)')
    .addColumn('password_hash', 'varchar(256)')
    .execute();

  await objectColumns('groups', db.schema.createTable('groups'))
    .addColumn('description', 'varchar(1024)')
    .addColumn('mail_enabled', 'integer', (c) => c.notNull())
    .addColumn('security_enabled', 'integer', (c) => c.notNull())
    .addColumn('group_types', 'text', (c) => c.notNull())
    .addColumn('visibility', 'varchar(16)')
    .addColumn('on_prem_net_bios_name', 'varchar(64)')
    .execute();

  for (const table of ['users', 'groups'] as const) {
    await db.schema.createIndex(`${table}_seq`).on(table).columns(['tenant_id', 'seq']).execute();
    await db.schema.createIndex(`${table}_display_name`).on(table).columns(['tenant_id', 'display_name', 'id']).execute();
    await db.schema.createIndex(`${table}_immutable_id`).on(table).columns(['tenant_id', 'immutable_id']).execute();
    await db.schema
      .createIndex(`${table}_mail_lower`)
      .on(table)
      .expression(sql`tenant_id, lower(mail)`)
      .execute();
    await db.schema
      .createIndex(`${table}_nickname_lower`)
      .on(table)
      .expression(sql`tenant_id, lower(mail_nickname)`)
      .execute();
    await db.schema.createIndex(`${table}_deleted_at`).on(table).columns(['tenant_id', 'deleted_at']).execute();
  }
  await db.schema.createIndex('users_upn').on('users').columns(['tenant_id', 'upn', 'id']).execute();
  await db.schema
    .createIndex('users_upn_lower')
    .on('users')
    .expression(sql`tenant_id, lower(upn)`)
    .execute();
  await db.schema.createIndex('users_manager').on('users').columns(['tenant_id', 'manager_id']).execute();

  await db.schema
    .createTable('addresses')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('address', 'varchar(320)', (c) => c.notNull())
    .addColumn('object_id', 'varchar(36)', (c) => c.notNull())
    .addPrimaryKeyConstraint('addresses_pk', ['tenant_id', 'address'])
    .execute();
  await db.schema.createIndex('addresses_object').on('addresses').columns(['tenant_id', 'object_id']).execute();

  await db.schema
    .createTable('memberships')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('group_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('member_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('member_type', 'varchar(8)', (c) => c.notNull())
    .addPrimaryKeyConstraint('memberships_pk', ['tenant_id', 'group_id', 'member_id'])
    .execute();
  await db.schema.createIndex('memberships_member').on('memberships').columns(['tenant_id', 'member_id']).execute();

  await db.schema
    .createTable('membership_changes')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('group_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('member_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('member_type', 'varchar(8)', (c) => c.notNull())
    .addColumn('removed', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('membership_changes_seq')
    .on('membership_changes')
    .columns(['tenant_id', 'group_id', 'seq'])
    .execute();

  await db.schema
    .createTable('removed_objects')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('id', 'varchar(36)', (c) => c.notNull())
    .addColumn('object_type', 'varchar(8)', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('removed_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('removed_objects_seq')
    .on('removed_objects')
    .columns(['tenant_id', 'object_type', 'seq'])
    .execute();

  await db.schema
    .createTable('role_assignments')
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('role_template_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('principal_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addPrimaryKeyConstraint('role_assignments_pk', ['tenant_id', 'role_template_id', 'principal_id'])
    .execute();
  await db.schema
    .createIndex('role_assignments_principal')
    .on('role_assignments')
    .columns(['tenant_id', 'principal_id'])
    .execute();

  await db.schema
    .createTable('apps')
    .addColumn('client_id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'varchar(256)', (c) => c.notNull())
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    .addColumn('secret_hash', 'varchar(256)', (c) => c.notNull())
    .addColumn('secret_hint', 'varchar(8)', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .addColumn('secret_created_at', 'varchar(32)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('apps_tenant').on('apps').columns(['tenant_id', 'name']).execute();

  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'varchar(64)', (c) => c.primaryKey())
    .addColumn('private_jwk', 'text', (c) => c.notNull())
    .addColumn('public_jwk', 'text', (c) => c.notNull())
    .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('audit_logs')
    .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('tenant_id', 'varchar(36)', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('audit_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('at', 'varchar(32)', (c) => c.notNull())
    .addColumn('category', 'varchar(64)', (c) => c.notNull())
    .addColumn('activity', 'varchar(128)', (c) => c.notNull())
    .addColumn('operation_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('result', 'varchar(16)', (c) => c.notNull())
    .addColumn('result_reason', 'text', (c) => c.notNull())
    .addColumn('initiated_by', 'text', (c) => c.notNull())
    .addColumn('target_resources', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_logs_tenant').on('audit_logs').columns(['tenant_id', 'id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'audit_logs',
    'signing_keys',
    'apps',
    'role_assignments',
    'removed_objects',
    'membership_changes',
    'memberships',
    'addresses',
    'groups',
    'users',
    'domains',
    'tenants',
  ]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
