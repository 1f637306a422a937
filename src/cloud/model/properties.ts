// Property tables: one row per Graph property of a user or group. They drive body
// validation, $select, $filter/$orderby checks and the row <-> Graph JSON mapping, so a
// property is declared once.
import { badRequest } from '../../shared/errors.ts';

export type PropKind = 'string' | 'boolean' | 'datetime' | 'strings' | 'json';

export interface PropDef {
  /** Graph property name. */
  name: string;
  /** Table column; absent means the value lives in the `extra` JSON column. */
  column?: string;
  kind: PropKind;
  /** Maximum string length (for `strings`, per element). */
  max?: number;
  filterable?: boolean;
  sortable?: boolean;
  /** Compare case-insensitively in $filter (Graph does for names and addresses). */
  ci?: boolean;
  /** Who may write it: ordinary apps, only the sync role, or nobody (service-computed). */
  write: 'app' | 'sync' | 'none';
  /** Owned by on-premises AD once the object is synced: read-only to non-sync callers. */
  onPrem?: boolean;
  /** Returned when the client sends no $select (Graph's default property set). */
  default?: boolean;
  enum?: readonly string[];
  /** Column holds 0/1 for a boolean, or null. */
  nullable?: boolean;
}

const common: PropDef[] = [
  { name: 'id', column: 'id', kind: 'string', filterable: true, write: 'none', default: true, ci: true },
  { name: 'displayName', column: 'display_name', kind: 'string', max: 256, filterable: true, sortable: true, ci: true, write: 'app', onPrem: true, default: true },
  { name: 'mail', column: 'mail', kind: 'string', max: 256, filterable: true, ci: true, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'mailNickname', column: 'mail_nickname', kind: 'string', max: 64, filterable: true, ci: true, write: 'app', onPrem: true, nullable: true },
  { name: 'proxyAddresses', column: 'proxy_addresses', kind: 'strings', max: 256, filterable: true, ci: true, write: 'sync', onPrem: true },
  { name: 'createdDateTime', column: 'created_at', kind: 'datetime', filterable: true, write: 'none' },
  { name: 'deletedDateTime', column: 'deleted_at', kind: 'datetime', write: 'none', nullable: true },
  { name: 'onPremisesSyncEnabled', column: 'on_prem_sync_enabled', kind: 'boolean', filterable: true, write: 'sync', nullable: true },
  { name: 'onPremisesSamAccountName', column: 'on_prem_sam_account_name', kind: 'string', max: 64, filterable: true, ci: true, write: 'sync', nullable: true },
  { name: 'onPremisesSecurityIdentifier', column: 'on_prem_security_identifier', kind: 'string', max: 256, filterable: true, ci: true, write: 'sync', nullable: true },
  { name: 'onPremisesDomainName', column: 'on_prem_domain_name', kind: 'string', max: 256, write: 'sync', nullable: true },
  { name: 'onPremisesLastSyncDateTime', column: 'on_prem_last_sync_at', kind: 'datetime', filterable: true, write: 'none', nullable: true },
  { name: 'onPremisesProvisioningErrors', column: 'on_prem_provisioning_errors', kind: 'json', write: 'none' },
];

const pick = (...names: string[]) => common.filter((p) => names.includes(p.name));

export const USER_PROPS: readonly PropDef[] = [
  ...pick('id', 'displayName', 'mail', 'mailNickname', 'proxyAddresses', 'createdDateTime', 'deletedDateTime'),
  { name: 'accountEnabled', column: 'account_enabled', kind: 'boolean', filterable: true, write: 'app', onPrem: true },
  { name: 'userPrincipalName', column: 'upn', kind: 'string', max: 113, filterable: true, sortable: true, ci: true, write: 'app', onPrem: true, default: true },
  { name: 'givenName', column: 'given_name', kind: 'string', max: 64, filterable: true, ci: true, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'surname', column: 'surname', kind: 'string', max: 64, filterable: true, ci: true, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'jobTitle', column: 'job_title', kind: 'string', max: 128, filterable: true, ci: true, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'department', column: 'department', kind: 'string', max: 64, filterable: true, ci: true, write: 'app', onPrem: true, nullable: true },
  { name: 'companyName', column: 'company_name', kind: 'string', max: 64, filterable: true, ci: true, write: 'app', onPrem: true, nullable: true },
  { name: 'employeeId', column: 'employee_id', kind: 'string', max: 16, filterable: true, ci: true, write: 'app', onPrem: true, nullable: true },
  { name: 'userType', column: 'user_type', kind: 'string', filterable: true, write: 'app', enum: ['Member', 'Guest'] },
  { name: 'usageLocation', column: 'usage_location', kind: 'string', max: 2, filterable: true, ci: true, write: 'app', nullable: true },
  { name: 'officeLocation', kind: 'string', max: 128, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'mobilePhone', kind: 'string', max: 64, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'businessPhones', kind: 'strings', max: 64, write: 'app', onPrem: true, default: true },
  { name: 'preferredLanguage', kind: 'string', max: 16, write: 'app', default: true, nullable: true },
  { name: 'otherMails', kind: 'strings', max: 256, write: 'app' },
  { name: 'city', kind: 'string', max: 128, write: 'app', onPrem: true, nullable: true },
  { name: 'state', kind: 'string', max: 128, write: 'app', onPrem: true, nullable: true },
  { name: 'country', kind: 'string', max: 128, write: 'app', onPrem: true, nullable: true },
  { name: 'streetAddress', kind: 'string', max: 1024, write: 'app', onPrem: true, nullable: true },
  { name: 'postalCode', kind: 'string', max: 40, write: 'app', onPrem: true, nullable: true },
  { name: 'onPremisesImmutableId', column: 'immutable_id', kind: 'string', max: 60, filterable: true, write: 'sync', nullable: true },
  ...pick('onPremisesSyncEnabled', 'onPremisesSamAccountName', 'onPremisesSecurityIdentifier', 'onPremisesDomainName'),
  { name: 'onPremisesDistinguishedName', column: 'on_prem_distinguished_name', kind: 'string', max: 1024, write: 'sync', nullable: true },
  { name: 'onPremisesUserPrincipalName', column: 'on_prem_user_principal_name', kind: 'string', max: 256, filterable: true, ci: true, write: 'sync', nullable: true },
  ...pick('onPremisesLastSyncDateTime', 'onPremisesProvisioningErrors'),
];

export const GROUP_PROPS: readonly PropDef[] = ([
  ...pick('id', 'displayName', 'mail', 'mailNickname', 'proxyAddresses', 'createdDateTime', 'deletedDateTime'),
  { name: 'description', column: 'description', kind: 'string', max: 1024, write: 'app', onPrem: true, default: true, nullable: true },
  { name: 'mailEnabled', column: 'mail_enabled', kind: 'boolean', filterable: true, write: 'app', onPrem: true, default: true },
  { name: 'securityEnabled', column: 'security_enabled', kind: 'boolean', filterable: true, write: 'app', onPrem: true, default: true },
  { name: 'groupTypes', column: 'group_types', kind: 'strings', max: 32, filterable: true, write: 'app', default: true },
  { name: 'visibility', column: 'visibility', kind: 'string', write: 'app', default: true, enum: ['Public', 'Private', 'HiddenMembership'], nullable: true },
  ...pick('onPremisesSyncEnabled', 'onPremisesSamAccountName', 'onPremisesSecurityIdentifier', 'onPremisesDomainName'),
  { name: 'onPremisesNetBiosName', column: 'on_prem_net_bios_name', kind: 'string', max: 64, write: 'sync', nullable: true },
  ...pick('onPremisesLastSyncDateTime', 'onPremisesProvisioningErrors'),
] as PropDef[]).map((p): PropDef => (p.name === 'mail' || p.name === 'mailNickname' || p.name === 'proxyAddresses' || p.name.startsWith('onPremises') || p.name === 'createdDateTime' ? { ...p, default: true } : p));

export type ObjectType = 'user' | 'group';

export const propsOf = (type: ObjectType): readonly PropDef[] => (type === 'user' ? USER_PROPS : GROUP_PROPS);

const index = new Map<ObjectType, Map<string, PropDef>>([
  ['user', new Map(USER_PROPS.map((p) => [p.name.toLowerCase(), p]))],
  ['group', new Map(GROUP_PROPS.map((p) => [p.name.toLowerCase(), p]))],
]);

/** Looks a property up case-insensitively (Graph property names are case-insensitive in queries). */
export function findProp(type: ObjectType, name: string): PropDef | undefined {
  return index.get(type)?.get(name.toLowerCase());
}

/** Parses `$select` into property definitions; unknown names are a 400 naming them. */
export function parseSelect(type: ObjectType, select: string | undefined): readonly PropDef[] {
  if (select === undefined) return propsOf(type).filter((p) => p.default);
  const names = select.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw badRequest('Invalid $select: it lists no properties.', '$select');
  const out: PropDef[] = [];
  for (const n of names) {
    if (n === '*') return propsOf(type);
    const p = findProp(type, n);
    if (!p) throw badRequest(`Invalid $select: '${n}' is not a property of ${type}. Check the spelling against the Graph ${type} resource.`, '$select');
    if (!out.includes(p)) out.push(p);
  }
  const id = findProp(type, 'id');
  // Graph always returns id, even when it is not selected.
  if (id && !out.includes(id)) out.unshift(id);
  return out;
}

type Row = Record<string, unknown>;

/**
 * The columns needed to render `props` (plus any always-needed ones). Selecting only these
 * matters: materialising all ~30 columns makes a 100k-row listing several times slower.
 */
export function columnsFor(props: readonly PropDef[], also: readonly string[] = []): string[] {
  const cols = new Set<string>(['id', ...also]);
  for (const p of props) cols.add(p.column ?? 'extra');
  return [...cols];
}

/** Builds the Graph JSON of a row for the selected properties. */
export function toGraph(row: Row, props: readonly PropDef[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let extra: Record<string, unknown> | undefined;
  for (const p of props) {
    let v: unknown;
    if (p.column) {
      v = row[p.column];
    } else {
      extra ??= JSON.parse((row.extra as string | undefined) ?? '{}') as Record<string, unknown>;
      v = extra[p.name];
    }
    out[p.name] = fromColumn(p, v);
  }
  return out;
}

function fromColumn(p: PropDef, v: unknown): unknown {
  if (v === undefined || v === null) return p.kind === 'strings' || p.kind === 'json' ? [] : null;
  switch (p.kind) {
    case 'boolean':
      return v === 1 || v === true;
    case 'strings':
    case 'json':
      return typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
    default:
      return v;
  }
}

/** Converts a validated Graph value to its column value. */
export function toColumn(p: PropDef, v: unknown): unknown {
  if (v === null || v === undefined) return p.kind === 'strings' || p.kind === 'json' ? '[]' : null;
  switch (p.kind) {
    case 'boolean':
      return v ? 1 : 0;
    case 'strings':
    case 'json':
      return JSON.stringify(v);
    default:
      return v;
  }
}

const EDM: Record<PropKind, string> = {
  string: 'Edm.String',
  boolean: 'Edm.Boolean',
  datetime: 'Edm.DateTimeOffset',
  strings: 'Collection(Edm.String)',
  json: 'Collection',
};

/** Checks one body value against its property; throws a 400 naming the property. */
export function checkValue(p: PropDef, v: unknown): unknown {
  const wrong = () =>
    badRequest(
      `Invalid value for property '${p.name}': expected ${EDM[p.kind]}${p.nullable ? ' or null' : ''}, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}.`,
      p.name,
    );
  if (v === null) {
    if (p.nullable || p.kind === 'strings') return null;
    throw wrong();
  }
  switch (p.kind) {
    case 'boolean':
      if (typeof v !== 'boolean') throw wrong();
      return v;
    case 'string':
    case 'datetime':
      if (typeof v !== 'string') throw wrong();
      if (p.max !== undefined && v.length > p.max)
        throw badRequest(`Invalid value for property '${p.name}': it is ${v.length} characters long; the limit is ${p.max}.`, p.name);
      if (p.enum && !p.enum.includes(v))
        throw badRequest(`Invalid value for property '${p.name}': '${v}' is not one of ${p.enum.join(', ')}.`, p.name);
      if (p.kind === 'datetime' && Number.isNaN(Date.parse(v)))
        throw badRequest(`Invalid value for property '${p.name}': '${v}' is not an ISO 8601 date and time.`, p.name);
      return v;
    case 'strings': {
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw wrong();
      const arr = v as string[];
      if (arr.length > 1000) throw badRequest(`Invalid value for property '${p.name}': more than 1000 values.`, p.name);
      const long = p.max === undefined ? undefined : arr.find((x) => x.length > p.max!);
      if (long !== undefined)
        throw badRequest(`Invalid value for property '${p.name}': the value '${long.slice(0, 40)}...' is longer than ${p.max} characters.`, p.name);
      return arr;
    }
    case 'json':
      return v;
  }
}
