// The fixture manifest: which objects are which edge case, as JSON tests can assert on.
// Built from the model, then corrected with what a loader reports really landed.
import { guidToBytes } from '../lib/ldap.ts';
import { EDGE_CASES, dnOf, type DirectoryModel, type DirGroup, type DirObject, type EdgeCase } from './model.ts';

export const MANIFEST_FORMAT = 'nimbus-directory-manifest/1';

export interface ManifestEntry {
  key: string;
  kind: 'user' | 'group';
  dn: string;
  /** objectGUID (AD) or entryUUID (OpenLDAP), canonical text form. */
  objectGUID: string;
  /** base64 of the objectGUID bytes: what lands in onPremisesImmutableId. */
  immutableId: string;
  sAMAccountName: string;
  userPrincipalName?: string;
  mail?: string;
  proxyAddresses?: string[];
  note?: string;
  /** Groups only. */
  memberCount?: number;
  /** Groups only: DNs of member groups. */
  memberGroups?: string[];
}

/** Something the generator asked for that the directory refused, and what landed instead. */
export interface RefusedChange {
  key: string;
  dn: string;
  attribute: string;
  value: string;
  error: string;
  outcome: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  /** model: as generated (also true of the AD LDIF export); samba / openldap: as loaded. */
  target: 'model' | 'samba' | 'openldap';
  generatorVersion: number;
  seed: number;
  users: number;
  domain: { dnsName: string; netbiosName: string; baseDN: string };
  upnSuffixes: { domain: string; routable: string; nonRoutable: string };
  rootOU: string;
  counts: { ous: number; users: number; groups: number };
  edgeCases: Record<EdgeCase, ManifestEntry[]>;
  refused: RefusedChange[];
  notes: string[];
}

export function entryOf(model: DirectoryModel, o: DirObject, dnFor: (o: DirObject) => string = dnOf): ManifestEntry {
  const dn = dnFor(o);
  const e: ManifestEntry = {
    key: o.key,
    kind: o.kind,
    dn,
    objectGUID: o.guid,
    immutableId: guidToBytes(o.guid).toString('base64'),
    sAMAccountName: o.sAMAccountName,
  };
  if (o.kind === 'user' && o.userPrincipalName !== undefined) e.userPrincipalName = o.userPrincipalName;
  if (o.mail !== undefined) e.mail = o.mail;
  if (o.proxyAddresses.length > 0) e.proxyAddresses = o.proxyAddresses;
  if (o.note) e.note = o.note;
  if (o.kind === 'group') {
    e.memberCount = o.memberKeys.length;
    const groups = new Map(model.groupList.map((g) => [g.key, g] as [string, DirGroup]));
    const nested = o.memberKeys.map((k) => groups.get(k)).filter((g): g is DirGroup => !!g);
    if (nested.length > 0) e.memberGroups = nested.map((g) => dnFor(g));
  }
  return e;
}

/** The manifest of the model as generated. */
export function buildManifest(model: DirectoryModel, target: Manifest['target'] = 'model', dnFor: (o: DirObject) => string = dnOf): Manifest {
  const edgeCases = Object.fromEntries(EDGE_CASES.map((c) => [c, [] as ManifestEntry[]])) as Record<EdgeCase, ManifestEntry[]>;
  for (const o of [...model.userList, ...model.groupList]) {
    for (const c of o.edgeCases) edgeCases[c].push(entryOf(model, o, dnFor));
  }
  return {
    format: MANIFEST_FORMAT,
    target,
    generatorVersion: model.generatorVersion,
    seed: model.seed,
    users: model.users,
    domain: model.domain,
    upnSuffixes: { domain: model.domain.dnsName, routable: model.routableSuffix, nonRoutable: model.nonRoutableSuffix },
    rootOU: model.rootOU,
    counts: { ous: model.ous.length, users: model.userList.length, groups: model.groupList.length },
    edgeCases,
    refused: [],
    notes: [],
  };
}
