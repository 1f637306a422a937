// The forest's UPN suffixes: the alternative ones in uPNSuffixes of CN=Partitions (what
// "Domains and Trusts → Properties" edits), the implicit ones (each domain's DNS name), how
// many users use each, and which domain controllers already see a suffix.
import { Attribute, Change } from 'ldapts';
import { attrString, attrStrings, LdapConnection } from '../shared/ldap/connection.ts';
import type { LdapConnectionConfig } from '../shared/ldap/ldap-config.ts';
import { LdapError } from '../shared/ldap/ldap-errors.ts';
import { asciiLower, fqdnProblem, isRoutableDomain, splitUpn } from '../shared/upn.ts';

export const USER_FILTER = '(&(objectCategory=person)(objectClass=user))';

export interface ForestSuffixes {
  partitionsDn: string;
  /** Alternative suffixes, as stored. */
  alternative: string[];
  /** Each domain's DNS name (always allowed). */
  implicit: string[];
}

export async function partitionsDn(conn: LdapConnection): Promise<string> {
  return `CN=Partitions,${(await conn.rootDse()).configurationNamingContext}`;
}

export async function readSuffixes(conn: LdapConnection): Promise<ForestSuffixes> {
  const dn = await partitionsDn(conn);
  const [p] = await conn.find(dn, { scope: 'base', attributes: ['uPNSuffixes'] });
  if (!p) throw new LdapError('LdapNoSuchObject', `${dn} was not found: the bind account cannot read the configuration partition. Bind as a domain user.`);
  // Domain crossRefs carry nETBIOSName; their dnsRoot is the domain's DNS name.
  const refs = await conn.find(dn, { scope: 'one', filter: '(&(objectClass=crossRef)(nETBIOSName=*))', attributes: ['dnsRoot'] });
  const implicit = [...new Set(refs.flatMap((r) => attrStrings(r, 'dnsRoot')).map(asciiLower))];
  return { partitionsDn: dn, alternative: attrStrings(p, 'uPNSuffixes'), implicit };
}

/** Lower-cased set of every suffix a UPN may use in this forest. */
export function allowedSuffixes(s: ForestSuffixes): Set<string> {
  return new Set([...s.alternative, ...s.implicit].map(asciiLower));
}

/** Users per lower-cased UPN suffix under `base` (streamed; only the counts are kept). */
export async function countUsersBySuffix(conn: LdapConnection, base: string): Promise<{ bySuffix: Map<string, number>; noUpn: number }> {
  const bySuffix = new Map<string, number>();
  let noUpn = 0;
  for await (const e of conn.entries(base, { filter: USER_FILTER, attributes: ['userPrincipalName'] })) {
    const upn = attrString(e, 'userPrincipalName');
    const d = upn ? splitUpn(upn)?.domain : undefined;
    if (!d) {
      noUpn++;
      continue;
    }
    const k = asciiLower(d);
    bySuffix.set(k, (bySuffix.get(k) ?? 0) + 1);
  }
  return { bySuffix, noUpn };
}

export interface SuffixRow {
  suffix: string;
  kind: 'domain' | 'alternative';
  routable: boolean;
  users: number;
}

export async function listSuffixes(conn: LdapConnection): Promise<{ rows: SuffixRow[]; usersWithoutUpn: number; otherSuffixes: SuffixRow[] }> {
  const s = await readSuffixes(conn);
  const { bySuffix, noUpn } = await countUsersBySuffix(conn, (await conn.rootDse()).defaultNamingContext);
  const rows: SuffixRow[] = [
    ...s.implicit.map((d) => ({ suffix: d, kind: 'domain' as const, routable: isRoutableDomain(d), users: bySuffix.get(d) ?? 0 })),
    ...s.alternative.map((a) => ({ suffix: a, kind: 'alternative' as const, routable: isRoutableDomain(a), users: bySuffix.get(asciiLower(a)) ?? 0 })),
  ];
  const known = allowedSuffixes(s);
  // Suffixes users carry that the forest does not list (possible: AD does not enforce the list).
  const otherSuffixes = [...bySuffix].filter(([k]) => !known.has(k)).map(([k, n]) => ({ suffix: k, kind: 'alternative' as const, routable: isRoutableDomain(k), users: n }));
  return { rows, usersWithoutUpn: noUpn, otherSuffixes };
}

/** Why a suffix cannot be added, or null. */
export function suffixProblem(suffix: string): string | null {
  const p = fqdnProblem(suffix);
  return p ? `'${suffix}' is not a valid UPN suffix: ${p}` : null;
}

export type AddResult = { suffix: string; status: 'added' | 'exists'; implicit: boolean };

/** Adds an alternative suffix; idempotent (an existing one, in any case, is left alone). */
export async function addSuffix(conn: LdapConnection, suffix: string): Promise<AddResult> {
  const problem = suffixProblem(suffix);
  if (problem) throw new LdapError('LdapOperationFailed', `${problem}. Give a DNS name such as contoso.com.`, { target: suffix });
  const s = await readSuffixes(conn);
  const k = asciiLower(suffix);
  if (s.implicit.includes(k)) return { suffix: k, status: 'exists', implicit: true };
  if (s.alternative.some((a) => asciiLower(a) === k)) return { suffix: s.alternative.find((a) => asciiLower(a) === k)!, status: 'exists', implicit: false };
  await conn.modify(s.partitionsDn, new Change({ operation: 'add', modification: new Attribute({ type: 'uPNSuffixes', values: [suffix] }) }), 'write uPNSuffixes (an Enterprise Admins right)');
  return { suffix, status: 'added', implicit: false };
}

export type RemoveResult = { suffix: string; status: 'removed' | 'absent'; usersStillUsing: number };

/** Removes an alternative suffix; refuses while users use it unless `force`. */
export async function removeSuffix(conn: LdapConnection, suffix: string, opts: { force: boolean }): Promise<RemoveResult> {
  const s = await readSuffixes(conn);
  const k = asciiLower(suffix);
  if (s.implicit.includes(k)) throw new LdapError('LdapOperationFailed', `${k} is the DNS name of a domain in this forest: it is always an allowed UPN suffix and cannot be removed.`, { target: suffix });
  const stored = s.alternative.find((a) => asciiLower(a) === k);
  if (!stored) return { suffix, status: 'absent', usersStillUsing: 0 };
  const { bySuffix } = await countUsersBySuffix(conn, (await conn.rootDse()).defaultNamingContext);
  const using = bySuffix.get(k) ?? 0;
  if (using > 0 && !opts.force) {
    throw new LdapError(
      'LdapOperationFailed',
      `${using} user(s) still have a UPN ending in @${stored}; removing the suffix would leave them with a suffix the forest no longer lists. Move them first (nimbus ad set-upn --base DN --filter '(userPrincipalName=*@${stored})' --suffix OTHER), or pass --force.`,
      { target: suffix },
    );
  }
  await conn.modify(s.partitionsDn, new Change({ operation: 'delete', modification: new Attribute({ type: 'uPNSuffixes', values: [stored] }) }), 'write uPNSuffixes (an Enterprise Admins right)');
  return { suffix: stored, status: 'removed', usersStillUsing: using };
}

export interface DomainController {
  name: string;
  dnsHostName?: string | undefined;
  /** Where to reach it: from --dc NAME=URL, else ldap(s)://<dnsHostName>. */
  url?: string | undefined;
  source: 'configuration' | 'command line';
}

/** Every DC listed in the configuration partition (nTDSDSA objects under CN=Sites), plus --dc extras. */
export async function listDomainControllers(conn: LdapConnection, overrides: Map<string, DcOverride>, scheme: 'ldap' | 'ldaps'): Promise<DomainController[]> {
  const cfg = (await conn.rootDse()).configurationNamingContext;
  const out: DomainController[] = [];
  for await (const e of conn.entries(`CN=Sites,${cfg}`, { filter: '(objectClass=nTDSDSA)', attributes: ['distinguishedName'] })) {
    // CN=NTDS Settings,CN=<server>,CN=Servers,... : the server object holds dNSHostName.
    const serverDn = e.dn.replace(/^CN=NTDS Settings,/i, '');
    const [srv] = await conn.find(serverDn, { scope: 'base', attributes: ['dNSHostName', 'cn'] });
    const name = (srv && attrString(srv, 'cn')) ?? /^CN=([^,]+)/i.exec(serverDn)?.[1] ?? serverDn;
    const dns = srv ? attrString(srv, 'dNSHostName') : undefined;
    const url = overrides.get(asciiLower(name))?.url ?? (dns ? overrides.get(asciiLower(dns))?.url : undefined) ?? (dns ? `${scheme}://${dns}` : undefined);
    out.push({ name, dnsHostName: dns, url, source: 'configuration' });
  }
  const known = new Set(out.flatMap((d) => [asciiLower(d.name), ...(d.dnsHostName ? [asciiLower(d.dnsHostName)] : [])]));
  for (const [key, o] of overrides) if (!known.has(key)) out.push({ name: o.name, url: o.url, source: 'command line' });
  return out;
}

export interface DcStatus {
  dc: string;
  url?: string | undefined;
  state: 'sees' | 'missing' | 'unreachable';
  detail?: string | undefined;
}

/** Asks each DC, with the same credentials, whether its uPNSuffixes already holds the suffix. */
export async function suffixStatus(config: LdapConnectionConfig, dcs: DomainController[], suffix: string): Promise<DcStatus[]> {
  const k = asciiLower(suffix);
  return Promise.all(
    dcs.map(async (dc): Promise<DcStatus> => {
      if (!dc.url) return { dc: dc.name, state: 'unreachable', detail: 'no dNSHostName; give its address with --dc NAME=URL' };
      let conn: LdapConnection | undefined;
      try {
        conn = await LdapConnection.open({ ...config, url: dc.url });
        const s = await readSuffixes(conn);
        const sees = s.implicit.includes(k) || s.alternative.some((a) => asciiLower(a) === k);
        return { dc: dc.name, url: dc.url, state: sees ? 'sees' : 'missing' };
      } catch (err) {
        return { dc: dc.name, url: dc.url, state: 'unreachable', detail: (err as Error).message };
      } finally {
        await conn?.close();
      }
    }),
  );
}

export interface DcOverride {
  name: string;
  url: string;
}

/** Parses repeated `--dc NAME=URL` flags into a lower-cased name -> override map. */
export function parseDcOverrides(values: string[]): Map<string, DcOverride> {
  const m = new Map<string, DcOverride>();
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = v.slice(0, eq).trim();
    const url = v.slice(eq + 1).trim();
    if (eq <= 0 || !/^ldaps?:\/\/[^/]+\/?$/i.test(url)) throw new LdapError('LdapConfig', `--dc '${v}' must be NAME=ldap://host[:port] (or ldaps://).`);
    m.set(asciiLower(name), { name, url });
  }
  return m;
}
