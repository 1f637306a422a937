// Attribute flows AD -> cloud: the documented default mapping (pure functions over a staged
// entry) plus per-attribute overrides written in JSONata (a safe expression language: no
// eval, no access to the process), compiled once at start-up.
import { createRequire } from 'node:module';
import type jsonata from 'jsonata';
import { syncGroupAttributes, syncUserAttributes } from '../../cloud/sync/sync-wire.ts';
import { SyncError } from '../errors.ts';
import { sidToString } from './ad-values.ts';
import type { ObjectType } from './scope.ts';

/** An entry as the connector space keeps it: text values, binary ones as base64. */
export interface StagedEntry {
  dn: string;
  attrs: Record<string, string[]>;
}

/** Mapped cloud attributes; references are still DNs (the engine resolves them to anchors). */
export interface Mapped {
  attributes: Record<string, unknown>;
  manager?: string | null;
  members?: string[];
}

export interface MappingContext {
  /** AD domain DNS name: the UPN suffix for users without one, and onPremisesDomainName. */
  domain: string | undefined;
}

function get(e: StagedEntry, name: string): string[] | undefined {
  const exact = e.attrs[name];
  if (exact) return exact;
  const lower = name.toLowerCase();
  for (const k in e.attrs) if (k.toLowerCase() === lower) return e.attrs[k];
  return undefined;
}
const one = (e: StagedEntry, name: string): string | undefined => get(e, name)?.[0];
const int = (e: StagedEntry, name: string): number | undefined => {
  const v = one(e, name);
  return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : undefined;
};
const sid = (e: StagedEntry): string | undefined => {
  const v = one(e, 'objectSid');
  if (v === undefined) return undefined;
  return v.startsWith('S-') ? v : (sidToString(Buffer.from(v, 'base64')) ?? undefined);
};

/**
 * The default user flows (AD attribute -> cloud attribute). A user without a UPN gets
 * `<sAMAccountName>@<AD domain>` here; the cloud then applies its own fallback for
 * suffixes that are not verified in the tenant.
 */
export function defaultUserFlows(e: StagedEntry, ctx: MappingContext): Mapped {
  const sam = one(e, 'sAMAccountName');
  const uac = int(e, 'userAccountControl');
  const phones = get(e, 'telephoneNumber');
  const a: Record<string, unknown> = {
    userPrincipalName: one(e, 'userPrincipalName') ?? (sam && ctx.domain ? `${sam}@${ctx.domain}` : undefined),
    displayName: one(e, 'displayName') ?? one(e, 'cn'),
    givenName: one(e, 'givenName'),
    surname: one(e, 'sn'),
    mail: one(e, 'mail'),
    mailNickname: one(e, 'mailNickname'),
    proxyAddresses: get(e, 'proxyAddresses'),
    // userAccountControl bit 0x2 is ACCOUNTDISABLE.
    accountEnabled: uac === undefined ? true : (uac & 0x2) === 0,
    jobTitle: one(e, 'title'),
    department: one(e, 'department'),
    companyName: one(e, 'company'),
    employeeId: one(e, 'employeeID'),
    officeLocation: one(e, 'physicalDeliveryOfficeName'),
    mobilePhone: one(e, 'mobile'),
    businessPhones: phones,
    city: one(e, 'l'),
    state: one(e, 'st'),
    country: one(e, 'co'),
    streetAddress: one(e, 'streetAddress'),
    postalCode: one(e, 'postalCode'),
    onPremisesDistinguishedName: one(e, 'distinguishedName') ?? e.dn,
    onPremisesSamAccountName: sam,
    onPremisesSecurityIdentifier: sid(e),
    onPremisesDomainName: ctx.domain,
  };
  return { attributes: a, manager: one(e, 'manager') ?? null };
}

/** The default group flows. groupType bit 0x80000000 is "security"; mail or proxies make it mail-enabled. */
export function defaultGroupFlows(e: StagedEntry, ctx: MappingContext): Mapped {
  const groupType = int(e, 'groupType');
  const proxies = get(e, 'proxyAddresses');
  const mail = one(e, 'mail');
  const a: Record<string, unknown> = {
    displayName: one(e, 'displayName') ?? one(e, 'cn') ?? one(e, 'sAMAccountName'),
    description: one(e, 'description'),
    mail,
    mailNickname: one(e, 'mailNickname'),
    proxyAddresses: proxies,
    securityEnabled: groupType === undefined ? true : (groupType & 0x80000000) !== 0,
    mailEnabled: !!mail || (proxies?.length ?? 0) > 0,
    onPremisesSamAccountName: one(e, 'sAMAccountName'),
    onPremisesSecurityIdentifier: sid(e),
    onPremisesDomainName: ctx.domain,
  };
  return { attributes: a, members: get(e, 'member') ?? [] };
}

/** Cloud attributes each type accepts (the cloud's own schema), for checking override targets. */
export const CLOUD_ATTRIBUTES: Record<ObjectType, ReadonlySet<string>> = {
  user: new Set(Object.keys(syncUserAttributes.shape)),
  group: new Set(Object.keys(syncGroupAttributes.shape)),
};

/** Where each default flow reads from (AD attribute names), as `nimbus sync explain` shows it. */
export const DEFAULT_FLOW_SOURCES: Record<ObjectType, Readonly<Record<string, string>>> = {
  user: {
    userPrincipalName: 'userPrincipalName (else sAMAccountName@<AD domain>)',
    displayName: 'displayName (else cn)',
    givenName: 'givenName',
    surname: 'sn',
    mail: 'mail',
    mailNickname: 'mailNickname',
    proxyAddresses: 'proxyAddresses',
    accountEnabled: 'userAccountControl (bit 0x2 ACCOUNTDISABLE)',
    jobTitle: 'title',
    department: 'department',
    companyName: 'company',
    employeeId: 'employeeID',
    officeLocation: 'physicalDeliveryOfficeName',
    mobilePhone: 'mobile',
    businessPhones: 'telephoneNumber',
    city: 'l',
    state: 'st',
    country: 'co',
    streetAddress: 'streetAddress',
    postalCode: 'postalCode',
    onPremisesDistinguishedName: 'distinguishedName (the DN)',
    onPremisesSamAccountName: 'sAMAccountName',
    onPremisesSecurityIdentifier: 'objectSid',
    onPremisesDomainName: 'the AD domain (source.domain / baseDn)',
    manager: "manager (the manager's source anchor)",
  },
  group: {
    displayName: 'displayName (else cn, else sAMAccountName)',
    description: 'description',
    mail: 'mail',
    mailNickname: 'mailNickname',
    proxyAddresses: 'proxyAddresses',
    securityEnabled: 'groupType (bit 0x80000000)',
    mailEnabled: 'mail or proxyAddresses present',
    onPremisesSamAccountName: 'sAMAccountName',
    onPremisesSecurityIdentifier: 'objectSid',
    onPremisesDomainName: 'the AD domain (source.domain / baseDn)',
    members: 'member (in-scope members, as source anchors)',
  },
};

type Compiled = { target: string; expr: jsonata.Expression | null; source: string | null };

export interface Mapper {
  map(type: ObjectType, e: StagedEntry): Promise<Mapped>;
  /** Stable text of the rules, so a change in them forces every object to be recomputed. */
  readonly fingerprint: string;
  /** Per target attribute, where its value comes from: a default flow or the override expression. */
  sources(type: ObjectType): Record<string, string>;
}

/** The entry as an expression sees it: attributes by name, one value as a scalar, several as an array. */
function view(e: StagedEntry): Record<string, unknown> {
  const o: Record<string, unknown> = { dn: e.dn };
  for (const [k, v] of Object.entries(e.attrs)) o[k] = v.length === 1 ? v[0] : v;
  return o;
}

/**
 * JSONata, loaded when the first override expression is compiled: the default mapping needs
 * none, and the library is ~12 MB in memory on the agent's thread.
 */
const loadJsonata = () => createRequire(import.meta.url)('jsonata') as typeof jsonata;

/**
 * Builds the mapper: default flows, then overrides (`null` drops a flow). Override results:
 * undefined (no value) leaves the attribute out; `manager` and `members` return DNs.
 */
export function createMapper(overrides: { user?: Record<string, string | null>; group?: Record<string, string | null> }, ctx: MappingContext): Mapper {
  const compiled: Record<ObjectType, Compiled[]> = { user: [], group: [] };
  for (const type of ['user', 'group'] as const) {
    for (const [target, source] of Object.entries(overrides[type] ?? {})) {
      if (!CLOUD_ATTRIBUTES[type].has(target))
        throw new SyncError('ConfigInvalid', `mapping.${type}.${target}: '${target}' is not a cloud ${type} attribute. Known: ${[...CLOUD_ATTRIBUTES[type]].join(', ')}.`);
      let expr: jsonata.Expression | null = null;
      if (source !== null) {
        try {
          expr = loadJsonata()(source);
        } catch (err) {
          const e = err as { message?: string; position?: number };
          throw new SyncError('ConfigInvalid', `mapping.${type}.${target}: the expression '${source}' does not parse: ${e.message ?? String(err)}${e.position !== undefined ? ` (at character ${e.position})` : ''}. See https://docs.jsonata.org.`);
        }
      }
      compiled[type].push({ target, expr, source });
    }
  }
  const fingerprint = JSON.stringify({ v: 1, domain: ctx.domain, o: { user: compiled.user.map((c) => [c.target, c.source]), group: compiled.group.map((c) => [c.target, c.source]) } });
  return {
    fingerprint,
    sources(type) {
      const out: Record<string, string> = { ...DEFAULT_FLOW_SOURCES[type] };
      for (const c of compiled[type]) out[c.target] = c.source === null ? `none (mapping.${type}.${c.target}: null drops the flow)` : `mapping.${type}.${c.target}: ${c.source}`;
      return out;
    },
    async map(type, e) {
      const m = type === 'user' ? defaultUserFlows(e, ctx) : defaultGroupFlows(e, ctx);
      if (compiled[type].length === 0) return m;
      const input = view(e);
      for (const c of compiled[type]) {
        let v: unknown = undefined;
        if (c.expr) {
          try {
            v = (await c.expr.evaluate(input, { dn: e.dn, domain: ctx.domain })) as unknown;
          } catch (err) {
            throw new Error(`mapping.${type}.${c.target}: ${(err as Error).message}`);
          }
          // JSONata returns sequences as arrays with extra markers; plain copies keep JSON clean.
          if (Array.isArray(v)) v = [...(v as unknown[])];
        }
        if (c.target === 'manager') m.manager = typeof v === 'string' ? v : null;
        else if (c.target === 'members') m.members = v === undefined || v === null ? [] : (Array.isArray(v) ? v : [v]).map(String);
        else m.attributes[c.target] = v;
      }
      return m;
    },
  };
}
