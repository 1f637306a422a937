// LDIF writers for the generated directory (RFC 2849): slapadd input for OpenLDAP
// (inetOrgPerson/posixAccount/groupOfNames) and an AD-flavoured export shaped like
// `ldapsearch` output from a domain controller (objectGUID as base64 binary).
import { escapeRdnValue, guidToBytes } from '../lib/ldap.ts';
import { dnOf, type DirectoryModel, type DirGroup, type DirObject, type DirUser } from './model.ts';

/** RFC 2849 SAFE-STRING: otherwise the value must be written base64 (`attr:: ...`). */
function needsBase64(v: string): boolean {
  if (v.length === 0) return false;
  if (/^[ :<]/.test(v) || v.endsWith(' ')) return true;
  // Anything outside printable ASCII (NUL, CR, LF, non-ASCII) is not SAFE-CHAR.
  return /[^\x20-\x7e]/.test(v);
}

/** One attribute line, folded at 76 columns like ldapsearch does. */
export function ldifLine(attr: string, value: string | Buffer): string {
  const line =
    typeof value !== 'string'
      ? `${attr}:: ${value.toString('base64')}`
      : needsBase64(value)
        ? `${attr}:: ${Buffer.from(value, 'utf8').toString('base64')}`
        : `${attr}: ${value}`;
  if (line.length <= 76) return line;
  const parts = [line.slice(0, 76)];
  for (let i = 76; i < line.length; i += 75) parts.push(` ${line.slice(i, i + 75)}`);
  return parts.join('\n');
}

type Attrs = [string, string | Buffer | undefined][];

function entry(dn: string, attrs: Attrs): string {
  const lines = [ldifLine('dn', dn)];
  for (const [k, v] of attrs) if (v !== undefined) lines.push(ldifLine(k, v));
  return `${lines.join('\n')}\n\n`;
}

const multi = (attr: string, values: readonly string[]): Attrs => values.map((v) => [attr, v]);

// ---------------------------------------------------------------- OpenLDAP

/** AD-style DN -> OpenLDAP DN: OUs and DCs keep their names; users are keyed by uid. */
export function openLdapDnMapper(): (o: DirObject | string) => string {
  const parent = (adDn: string) => adDn.replace(/(^|,)OU=/g, '$1ou=').replace(/(^|,)DC=/g, '$1dc=');
  return (o) => {
    if (typeof o === 'string') return parent(o);
    if (o.kind === 'user') return `uid=${escapeRdnValue(o.sAMAccountName)},${parent(o.parent)}`;
    return `cn=${escapeRdnValue(o.cn)},${parent(o.parent)}`;
  };
}

/**
 * slapadd input. Edge cases that only exist in AD (UPN, proxyAddresses,
 * userAccountControl, critical objects) have no inetOrgPerson attribute; disabled
 * users carry `employeeType: disabled`. Empty groups are skipped (groupOfNames needs a member).
 */
export function* openLdapLdif(model: DirectoryModel): Generator<string> {
  const dnFor = openLdapDnMapper();
  const base = dnFor(model.domain.baseDN);
  const firstDc = model.domain.dnsName.split('.')[0] ?? 'corp';
  yield entry(base, [
    ['objectClass', 'top'],
    ['objectClass', 'dcObject'],
    ['objectClass', 'organization'],
    ['dc', firstDc],
    ['o', 'Nimbus Corp'],
  ]);
  for (const ou of model.ous) {
    const name = /^OU=((?:\\.|[^,])*)/.exec(ou.dn)?.[1]?.replace(/\\(.)/g, '$1') ?? 'unknown';
    yield entry(dnFor(ou.dn), [
      ['objectClass', 'top'],
      ['objectClass', 'organizationalUnit'],
      ['ou', name],
      ['entryUUID', ou.guid],
    ]);
  }
  const byKey = new Map<string, DirObject>([...model.userList, ...model.groupList].map((o) => [o.key, o]));
  let uidNumber = 10000;
  for (const u of model.userList) {
    const manager = u.managerKey ? byKey.get(u.managerKey) : undefined;
    yield entry(dnFor(u), [
      ['objectClass', 'top'],
      ['objectClass', 'inetOrgPerson'],
      ['objectClass', 'posixAccount'],
      ['uid', u.sAMAccountName],
      ['cn', u.cn],
      ['sn', u.sn ?? u.cn],
      ['givenName', u.givenName],
      ['displayName', u.displayName],
      ['mail', u.mail],
      ['title', u.title],
      ['departmentNumber', u.department],
      ['employeeNumber', u.employeeID],
      ['employeeType', u.disabled ? 'disabled' : 'active'],
      ['telephoneNumber', u.telephoneNumber],
      ['manager', manager ? dnFor(manager) : undefined],
      ['uidNumber', String(uidNumber++)],
      ['gidNumber', '10000'],
      ['homeDirectory', `/home/${u.sAMAccountName}`],
      ['entryUUID', u.guid],
    ]);
  }
  for (const g of model.groupList) {
    if (g.memberKeys.length === 0) continue;
    yield entry(dnFor(g), [
      ['objectClass', 'top'],
      ['objectClass', 'groupOfNames'],
      ['cn', g.cn],
      ['description', g.description],
      ...multi(
        'member',
        g.memberKeys.map((k) => {
          const m = byKey.get(k);
          if (!m) throw new Error(`generator bug: group ${g.key} has unknown member ${k}`);
          return dnFor(m);
        }),
      ),
      ['entryUUID', g.guid],
    ]);
  }
}

// ---------------------------------------------------------------- AD

/** userAccountControl as a real AD shows it: NORMAL_ACCOUNT (0x200), plus ACCOUNTDISABLE (0x2). */
export const adUserAccountControl = (u: DirUser): number => 0x200 | (u.disabled ? 0x2 : 0);

/** groupType: scope bit plus the security bit (0x80000000) as a signed 32-bit integer. */
export function adGroupType(g: DirGroup): number {
  const scope = g.scope === 'global' ? 0x2 : g.scope === 'domainLocal' ? 0x4 : 0x8;
  return (scope | (g.security ? 0x80000000 : 0)) | 0;
}

function adUserAttrs(u: DirUser, managerDn: string | undefined, uac: number): Attrs {
  return [
    ['cn', u.cn],
    ['sn', u.sn],
    ['givenName', u.givenName],
    ['displayName', u.displayName],
    ['sAMAccountName', u.sAMAccountName],
    ['userPrincipalName', u.userPrincipalName],
    ['mail', u.mail],
    ...multi('proxyAddresses', u.proxyAddresses),
    ['department', u.department],
    ['title', u.title],
    ['employeeID', u.employeeID],
    ['telephoneNumber', u.telephoneNumber],
    ['manager', managerDn],
    ['userAccountControl', String(uac)],
  ];
}

function adGroupAttrs(g: DirGroup, memberDns: string[]): Attrs {
  return [
    ['cn', g.cn],
    ['sAMAccountName', g.sAMAccountName],
    ['description', g.description],
    ['groupType', String(adGroupType(g))],
    ['mail', g.mail],
    ...multi('proxyAddresses', g.proxyAddresses),
    ...multi('member', memberDns),
  ];
}

/** Shared by the LDIF export and the Samba seed records so both describe the same objects. */
export function adAttributes(model: DirectoryModel, o: DirObject, uac?: number): Attrs {
  const byKey = adIndex(model);
  if (o.kind === 'user') {
    const m = o.managerKey ? byKey.get(o.managerKey) : undefined;
    return adUserAttrs(o, m ? dnOf(m) : undefined, uac ?? adUserAccountControl(o));
  }
  return adGroupAttrs(
    o,
    o.memberKeys.map((k) => {
      const m = byKey.get(k);
      if (!m) throw new Error(`generator bug: group ${o.key} has unknown member ${k}`);
      return dnOf(m);
    }),
  );
}

const indexCache = new WeakMap<DirectoryModel, Map<string, DirObject>>();
function adIndex(model: DirectoryModel): Map<string, DirObject> {
  let idx = indexCache.get(model);
  if (!idx) {
    idx = new Map<string, DirObject>([...model.userList, ...model.groupList].map((o) => [o.key, o]));
    indexCache.set(model, idx);
  }
  return idx;
}

/**
 * AD-flavoured LDIF, as `ldapsearch -LLL` against a DC would print the generated objects:
 * objectGUID as base64 binary, userAccountControl/groupType as integers, the CNF newline
 * base64-encoded. Describes the model (including duplicates AD would refuse; see manifest).
 */
export function* adLdif(model: DirectoryModel): Generator<string> {
  yield `# Nimbus synthetic AD export: generator v${model.generatorVersion}, seed ${model.seed}, ${model.users} users, ${model.domain.dnsName}\n\n`;
  for (const ou of model.ous) {
    const name = /^OU=((?:\\.|[^,])*)/.exec(ou.dn)?.[1]?.replace(/\\(.)/g, '$1') ?? 'unknown';
    yield entry(ou.dn, [
      ['objectClass', 'top'],
      ['objectClass', 'organizationalUnit'],
      ['ou', name],
      ['distinguishedName', ou.dn],
      ['objectGUID', guidToBytes(ou.guid)],
    ]);
  }
  for (const o of [...model.userList, ...model.groupList]) {
    const dn = dnOf(o);
    const classes = o.kind === 'user' ? ['top', 'person', 'organizationalPerson', 'user'] : ['top', 'group'];
    yield entry(dn, [
      ...multi('objectClass', classes),
      ...adAttributes(model, o),
      ['name', o.cn],
      ['distinguishedName', dn],
      ['objectGUID', guidToBytes(o.guid)],
      ['isCriticalSystemObject', o.kind === 'user' && o.critical ? 'TRUE' : undefined],
    ]);
  }
}
