// Table types of the cloud directory store, as Kysely sees them. Portable across SQLite
// and PostgreSQL: booleans are 0/1 integers, times are ISO-8601 text, lists are JSON text.
import type { Generated } from 'kysely';

export interface TenantTable {
  id: string;
  name: string;
  display_name: string;
  initial_domain: string;
  created_at: string;
  /** null = never activated, 1 = activated, 0 = was activated, now off. */
  sync_enabled: number | null;
  sync_last_at: string | null;
  sync_disabled_at: string | null;
  /** JSON of onPremisesDirectorySynchronization features. */
  sync_features: string;
  /** Per-tenant change counter; every write takes the next value (delta queries read it). */
  change_seq: number;
}

export interface DomainTable {
  tenant_id: string;
  name: string;
  is_verified: number;
  is_default: number;
  is_initial: number;
  authentication_type: string;
  verification_code: string;
  created_at: string;
  verified_at: string | null;
}

/** Columns both users and groups have. */
interface DirectoryObjectColumns {
  tenant_id: string;
  id: string;
  seq: number;
  created_at: string;
  deleted_at: string | null;
  display_name: string | null;
  mail: string | null;
  mail_nickname: string | null;
  proxy_addresses: string;
  /** Internal source anchor (users expose it as onPremisesImmutableId). */
  immutable_id: string | null;
  on_prem_sync_enabled: number | null;
  on_prem_sam_account_name: string | null;
  on_prem_security_identifier: string | null;
  on_prem_domain_name: string | null;
  on_prem_last_sync_at: string | null;
  on_prem_provisioning_errors: string;
  /** JSON object of properties that are neither filterable nor sortable. */
  extra: string;
  /** Last attributes the sync agent sent (JSON); lets conflicts heal without a new export. */
  sync_desired?: string | null;
  /** How sync matched the object: hard, soft-upn, soft-smtp, soft-proxy or new. */
  sync_match?: string | null;
}

export interface UserTable extends DirectoryObjectColumns {
  upn: string;
  account_enabled: number;
  given_name: string | null;
  surname: string | null;
  job_title: string | null;
  department: string | null;
  company_name: string | null;
  employee_id: string | null;
  user_type: string;
  usage_location: string | null;
  on_prem_distinguished_name: string | null;
  on_prem_user_principal_name: string | null;
  manager_id: string | null;
  password_hash: string | null;
}

export interface GroupTable extends DirectoryObjectColumns {
  description: string | null;
  mail_enabled: number;
  security_enabled: number;
  group_types: string;
  visibility: string | null;
  on_prem_net_bios_name: string | null;
  /**
   * Membership changes from this change number on are in membership_changes; a delta round
   * from before it gets the members whole (migration 0012). Null: every change is logged.
   */
  members_since: number | null;
}

export interface AddressTable {
  tenant_id: string;
  /** Lower-cased UPN, mail or SMTP address; one case-insensitive space per tenant. */
  address: string;
  object_id: string;
}

export interface MembershipTable {
  tenant_id: string;
  group_id: string;
  member_id: string;
  member_type: string;
}

export interface MembershipChangeTable {
  tenant_id: string;
  seq: number;
  group_id: string;
  member_id: string;
  member_type: string;
  removed: number;
}

export interface RemovedObjectTable {
  tenant_id: string;
  id: string;
  object_type: string;
  seq: number;
  removed_at: string;
}

export interface RoleAssignmentTable {
  tenant_id: string;
  role_template_id: string;
  principal_id: string;
  created_at: string;
}

export interface AppTable {
  tenant_id: string;
  client_id: string;
  name: string;
  role: string;
  secret_hash: string;
  secret_hint: string;
  created_at: string;
  secret_created_at: string;
}

export interface SigningKeyTable {
  kid: string;
  private_jwk: string;
  public_jwk: string;
  created_at: string;
}

export interface AuditTable {
  id: Generated<number>;
  tenant_id: string;
  audit_id: string;
  at: string;
  category: string;
  activity: string;
  operation_type: string;
  result: string;
  result_reason: string;
  initiated_by: string;
  target_resources: string;
}

/** The export lease: the one agent allowed to export to a tenant until expires_at (migration 0007). */
export interface SyncLeaseTable {
  tenant_id: string;
  /** Random per agent process (host:pid:random). */
  holder: string;
  /** The sync app that holds it, for messages. */
  agent: string;
  acquired_at: string;
  renewed_at: string;
  expires_at: string;
}

/** An administrator's request to the agent: run now, or allow the deletes of one run (migration 0007). */
export interface SyncRequestTable {
  id: string;
  tenant_id: string;
  kind: string;
  /** pending -> claimed -> done (or back to pending when the run could not finish). */
  status: string;
  requested_by: string;
  requested_at: string;
  claimed_by: string | null;
  claimed_at: string | null;
  completed_at: string | null;
  run_id: string | null;
  result: string | null;
}

export interface SyncRunTable {
  tenant_id: string;
  run_id: string;
  agent: string;
  kind: string;
  status: string;
  in_progress: number;
  started_at: string;
  ended_at: string | null;
  counts: string;
  errors: string;
  message: string | null;
  updated_at: string;
  /** JSON lists of a run, each `{ total, items }` with at most 1000 items (migration 0008). */
  pending_deletes?: string | null;
  pending_exports?: string | null;
  deleted?: string | null;
}

/** A reference (manager or member) waiting for its target's source anchor to arrive. */
export interface SyncPendingRefTable {
  tenant_id: string;
  target_anchor: string;
  /** The user (manager) or group (member) holding the reference. */
  source_id: string;
  kind: 'manager' | 'member';
}

/** A synced group's member list as last given, and the membership rows it left (migration 0014). */
export interface SyncMemberListTable {
  tenant_id: string;
  group_id: string;
  /** JSON array of source anchors. */
  anchors: string;
  member_count: number;
}

/** An operator of the portal: may see and administer every tenant (migration 0009). */
export interface PortalOperatorTable {
  name: string;
  display_name: string;
  password_hash: string;
  created_at: string;
}

/** A portal sign-in (migration 0009); the cookie holds the token, the row only its SHA-256. */
export interface PortalSessionTable {
  token_hash: string;
  /** admin (a tenant's Global Administrator) or operator. */
  kind: string;
  /** The admin's user id, or the operator's name. */
  principal_id: string;
  /** The admin's tenant; null for operators. */
  tenant_id: string | null;
  name: string;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
}

/** Consecutive failed sign-ins per (lower-cased) sign-in name, for the lockout (migration 0009). */
export interface PortalSignInFailureTable {
  name: string;
  failures: number;
  first_failed_at: string;
  locked_until: string | null;
}

export interface Database {
  tenants: TenantTable;
  domains: DomainTable;
  users: UserTable;
  groups: GroupTable;
  addresses: AddressTable;
  memberships: MembershipTable;
  membership_changes: MembershipChangeTable;
  removed_objects: RemovedObjectTable;
  role_assignments: RoleAssignmentTable;
  apps: AppTable;
  signing_keys: SigningKeyTable;
  audit_logs: AuditTable;
  sync_runs: SyncRunTable;
  sync_leases: SyncLeaseTable;
  sync_requests: SyncRequestTable;
  sync_pending_refs: SyncPendingRefTable;
  sync_member_lists: SyncMemberListTable;
  portal_operators: PortalOperatorTable;
  portal_sessions: PortalSessionTable;
  portal_sign_in_failures: PortalSignInFailureTable;
}
