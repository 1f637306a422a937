// The readiness check: streams users, groups and contacts page by page through the IdFix
// rules, and, given a tenant, predicts each user's cloud UPN with the cloud's own decideUpn.
import { readFileSync } from 'node:fs';
import type { Entry } from 'ldapts';
import { Agent, fetch } from 'undici';
import { decideUpn } from '../cloud/sync/rules.ts';
import { attrString, attrStrings, type LdapConnection } from '../shared/ldap/connection.ts';
import { NimbusError } from '../shared/errors.ts';
import { asciiLower, isRoutableDomain, splitUpn } from '../shared/upn.ts';
import { DuplicateTracker, exclusionReason, objectFindings, type DirObjectView, type Finding, type ObjectKind } from './idfix.ts';
import { readSuffixes, USER_FILTER } from './upn-suffixes.ts';

export interface TenantDomains {
  tenant: string;
  initialDomain: string;
  verified: Set<string>;
}

export interface SuffixForecast {
  suffix: string;
  users: number;
  /** Users that keep their own UPN in the cloud (null without a tenant). */
  keep: number | null;
  /** Users that fall back to <mailNickname>@<initial domain>. */
  fallback: number | null;
  verified: boolean | null;
  examples: { onPremises: string; cloud: string }[];
}

export interface CheckReport {
  base: string;
  scanned: { users: number; groups: number; contacts: number };
  excluded: number;
  findings: Finding[];
  suffixes: SuffixForecast[];
  tenant?: { name: string; initialDomain: string; verifiedDomains: string[] } | undefined;
}

const ATTRS = ['name', 'sAMAccountName', 'userPrincipalName', 'mail', 'mailNickname', 'proxyAddresses', 'isCriticalSystemObject', 'objectClass'];
const FILTER = `(|${USER_FILTER}(objectClass=group)(objectClass=contact))`;

function viewOf(e: Entry): DirObjectView {
  const classes = attrStrings(e, 'objectClass').map(asciiLower);
  const kind: ObjectKind = classes.includes('group') ? 'group' : classes.includes('contact') ? 'contact' : 'user';
  return {
    dn: e.dn,
    kind,
    name: attrString(e, 'name'),
    sAMAccountName: attrString(e, 'sAMAccountName'),
    userPrincipalName: attrString(e, 'userPrincipalName'),
    mail: attrString(e, 'mail'),
    mailNickname: attrString(e, 'mailNickname'),
    proxyAddresses: attrStrings(e, 'proxyAddresses'),
    isCriticalSystemObject: attrString(e, 'isCriticalSystemObject') === 'TRUE',
  };
}

/** Verified domains of a tenant, read with a client-credentials token through the Graph API. */
export async function fetchTenantDomains(o: { cloudUrl: string; tenant: string; clientId: string; clientSecret: string; caFile?: string | undefined }): Promise<TenantDomains> {
  const base = o.cloudUrl.replace(/\/+$/, '');
  const dispatcher = new Agent(o.caFile ? { connect: { ca: readFileSync(o.caFile, 'utf8') } } : {});
  const fail = (what: string) => new NimbusError('unavailable', 'TenantUnavailable', what);
  try {
    let res;
    try {
      res = await fetch(`${base}/${encodeURIComponent(o.tenant)}/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: o.clientId, client_secret: o.clientSecret, scope: 'https://graph.microsoft.com/.default' }).toString(),
        dispatcher,
      });
    } catch (err) {
      throw fail(`Cannot reach the cloud directory at ${base} (${(err as Error).message}). Check --cloud-url, that the server runs, and --ca-file for a private certificate.`);
    }
    const tok = (await res.json().catch(() => ({}))) as { access_token?: string; error_description?: string };
    if (!res.ok || !tok.access_token) throw fail(`The cloud directory refused the app ${o.clientId} for tenant ${o.tenant}: ${tok.error_description ?? `HTTP ${res.status}`}. Check --tenant, --client-id and the secret file.`);
    const d = await fetch(`${base}/v1.0/domains`, { headers: { authorization: `Bearer ${tok.access_token}` }, dispatcher });
    const body = (await d.json().catch(() => ({}))) as { value?: { id: string; isVerified: boolean; isInitial: boolean }[]; error?: { message?: string } };
    if (!d.ok || !body.value) throw fail(`Reading the domains of tenant ${o.tenant} failed: ${body.error?.message ?? `HTTP ${d.status}`}. The app needs at least the read role.`);
    const initial = body.value.find((x) => x.isInitial)?.id;
    if (!initial) throw fail(`Tenant ${o.tenant} reports no initial domain; the cloud directory answered unexpectedly.`);
    return { tenant: o.tenant, initialDomain: asciiLower(initial), verified: new Set(body.value.filter((x) => x.isVerified).map((x) => asciiLower(x.id))) };
  } finally {
    await dispatcher.close();
  }
}

/** Runs every rule over the scope; holds only findings, counts and the duplicate maps. */
export async function runCheck(conn: LdapConnection, opts: { base?: string | undefined; tenant?: TenantDomains | undefined; examplesPerSuffix?: number }): Promise<CheckReport> {
  const dse = await conn.rootDse();
  const base = opts.base ?? dse.defaultNamingContext;
  const forest = await readSuffixes(conn);
  const ctx = { domainDnsName: forest.implicit[0] ?? '', routableSuffix: forest.alternative.find(isRoutableDomain) };
  const dups = new DuplicateTracker();
  const findings: Finding[] = [];
  const scanned = { users: 0, groups: 0, contacts: 0 };
  let excluded = 0;
  const suffixes = new Map<string, SuffixForecast>();
  const maxExamples = opts.examplesPerSuffix ?? 3;
  const t = opts.tenant;
  for await (const page of conn.pages(base, { filter: FILTER, attributes: ATTRS })) {
    for (const e of page) {
      const o = viewOf(e);
      if (exclusionReason(o)) {
        excluded++;
        continue;
      }
      scanned[o.kind === 'user' ? 'users' : o.kind === 'group' ? 'groups' : 'contacts']++;
      findings.push(...objectFindings(o, ctx), ...dups.add(o));
      if (o.kind !== 'user') continue;
      const suffix = o.userPrincipalName ? asciiLower(splitUpn(o.userPrincipalName)?.domain ?? '(invalid)') : '(none)';
      let f = suffixes.get(suffix);
      if (!f) {
        f = { suffix, users: 0, keep: t ? 0 : null, fallback: t ? 0 : null, verified: t ? t.verified.has(suffix) : null, examples: [] };
        suffixes.set(suffix, f);
      }
      f.users++;
      if (t) {
        const d = decideUpn({ userPrincipalName: o.userPrincipalName ?? null, mailNickname: o.mailNickname ?? null, mail: o.mail ?? null, proxyAddresses: o.proxyAddresses }, t.verified, t.initialDomain);
        if (d.reason === 'own') f.keep = (f.keep ?? 0) + 1;
        else f.fallback = (f.fallback ?? 0) + 1;
        if (f.examples.length < maxExamples) f.examples.push({ onPremises: o.userPrincipalName ?? '(none)', cloud: d.upn });
      }
    }
  }
  return {
    base,
    scanned,
    excluded,
    findings,
    suffixes: [...suffixes.values()].sort((a, b) => b.users - a.users),
    tenant: t ? { name: t.tenant, initialDomain: t.initialDomain, verifiedDomains: [...t.verified].sort() } : undefined,
  };
}

/** CSV (RFC 4180) of the findings, one row each. */
export function findingsCsv(findings: Finding[]): string {
  const q = (v: string | undefined) => (v === undefined ? '' : /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const cols = ['dn', 'objectKind', 'attribute', 'error', 'rule', 'value', 'message', 'suggestion', 'other'] as const;
  return [cols.join(','), ...findings.map((f) => cols.map((c) => q(f[c])).join(','))].join('\n');
}
