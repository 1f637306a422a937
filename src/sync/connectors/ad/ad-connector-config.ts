// Settings of the AD connector, each with its default, and the attribute lists it reads.
import type { LdapConnectionConfig } from '../../../shared/ldap/ldap-config.ts';

/**
 * What the default mapping, the scope rules and the engine read from each object. `member`
 * and `manager` are references; whenChanged/uSNChanged are kept for explain and the USN fallback.
 */
export const DEFAULT_AD_ATTRIBUTES = [
  'objectClass',
  'objectGUID',
  'ms-DS-ConsistencyGuid',
  'objectSid',
  'distinguishedName',
  'name',
  'cn',
  'isCriticalSystemObject',
  'isDeleted',
  'userAccountControl',
  'sAMAccountName',
  'userPrincipalName',
  'displayName',
  'givenName',
  'sn',
  'mail',
  'mailNickname',
  'proxyAddresses',
  'title',
  'department',
  'company',
  'employeeID',
  'physicalDeliveryOfficeName',
  'mobile',
  'telephoneNumber',
  'l',
  'st',
  'co',
  'streetAddress',
  'postalCode',
  'manager',
  'description',
  'groupType',
  'member',
  'whenChanged',
  'uSNChanged',
] as const;

/**
 * Attributes AD holds as bytes. ldapts matches these names exactly as the server spells them
 * in its answer, so both spellings of the consistency GUID are listed.
 */
export const AD_BINARY_ATTRIBUTES = ['objectGUID', 'objectSid', 'mS-DS-ConsistencyGuid', 'ms-DS-ConsistencyGuid', 'msDS-ConsistencyGuid', 'parentGUID'] as const;

/** Users (not computers, which are users in AD's schema), groups and contacts. */
export const AD_OBJECT_FILTER = '(|(&(objectClass=user)(!(objectClass=computer)))(objectClass=group)(objectClass=contact))';

/** Containers whose rename or move changes the DN of everything under them (AD reports only the container). */
export const AD_CONTAINER_FILTER = '(|(objectClass=organizationalUnit)(objectClass=container))';

/** What a delta reads: the synced objects, and containers (their renames and moves). */
export const AD_DELTA_FILTER = `(|${AD_OBJECT_FILTER.slice(2, -1)}${AD_CONTAINER_FILTER.slice(2, -1)})`;

/**
 * How deltas are read. `dirsync` needs "Replicating Directory Changes" on the naming context;
 * `usn` (uSNChanged > last highestCommittedUSN, tombstones through Show Deleted) works for any
 * account that can read the objects and CN=Deleted Objects. `auto` tries DirSync and falls back.
 */
export type AdDeltaMethod = 'auto' | 'dirsync' | 'usn';

export interface AdConnectorConfig {
  /** How to reach and bind to the domain controller (shared LDAP layer). Required. */
  connection: LdapConnectionConfig;
  /** Where the full import searches. Required. */
  baseDn: string;
  /** Entries per page of the full import; AD's MaxPageSize is 1000. Default 1000. */
  pageSize?: number;
  /** Default `auto`. */
  deltaMethod?: AdDeltaMethod;
  /**
   * Connections a full import reads over at once, each a uSNChanged range of the directory
   * (the DC answers one while the agent parses another). Default 2; 1: one paged search.
   */
  readConnections?: number;
  /** Attributes read from each object. Default DEFAULT_AD_ATTRIBUTES. */
  attributes?: readonly string[];
}
