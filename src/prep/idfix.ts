// The IdFix readiness rules (shared/REFERENCE.md, "IdFix") as pure functions over plain
// directory objects: per-object checks, IdFix's exclusions, a streaming duplicate tracker,
// and a mechanical fix suggestion where one exists.
import { asciiLower, fqdnProblem, isRoutableDomain, splitUpn, smtpAddress, UPN_MAX_LENGTH } from '../shared/upn.ts';

export type ObjectKind = 'user' | 'group' | 'contact';

/** What the rules read of one directory object. */
export interface DirObjectView {
  dn: string;
  kind: ObjectKind;
  name?: string | undefined;
  sAMAccountName?: string | undefined;
  userPrincipalName?: string | undefined;
  mail?: string | undefined;
  mailNickname?: string | undefined;
  proxyAddresses: string[];
  isCriticalSystemObject?: boolean | undefined;
}

/** IdFix's error kinds. */
export type ErrorKind = 'format' | 'blank' | 'duplicate' | 'character' | 'topleveldomain' | 'domainpart' | 'localpart' | 'length';

export const RULES = {
  'upn-blank': { attribute: 'userPrincipalName', error: 'blank' },
  'upn-format': { attribute: 'userPrincipalName', error: 'format' },
  'upn-character': { attribute: 'userPrincipalName', error: 'character' },
  'upn-localpart': { attribute: 'userPrincipalName', error: 'localpart' },
  'upn-topleveldomain': { attribute: 'userPrincipalName', error: 'topleveldomain' },
  'upn-domainpart': { attribute: 'userPrincipalName', error: 'domainpart' },
  'upn-length': { attribute: 'userPrincipalName', error: 'length' },
  'upn-duplicate': { attribute: 'userPrincipalName', error: 'duplicate' },
  /** A UPN equal to another object's smtp proxy address: one namespace in the cloud. */
  'upn-matches-proxy': { attribute: 'userPrincipalName', error: 'duplicate' },
  'proxy-character': { attribute: 'proxyAddresses', error: 'character' },
  'proxy-format': { attribute: 'proxyAddresses', error: 'format' },
  'proxy-topleveldomain': { attribute: 'proxyAddresses', error: 'topleveldomain' },
  'proxy-length': { attribute: 'proxyAddresses', error: 'length' },
  'proxy-duplicate': { attribute: 'proxyAddresses', error: 'duplicate' },
  'mail-duplicate': { attribute: 'mail', error: 'duplicate' },
  'mailnickname-format': { attribute: 'mailNickname', error: 'format' },
  'mailnickname-duplicate': { attribute: 'mailNickname', error: 'duplicate' },
  'sam-character': { attribute: 'sAMAccountName', error: 'character' },
  'sam-length': { attribute: 'sAMAccountName', error: 'length' },
  'sam-duplicate': { attribute: 'sAMAccountName', error: 'duplicate' },
} as const satisfies Record<string, { attribute: string; error: ErrorKind }>;
export type RuleId = keyof typeof RULES;

export interface Finding {
  dn: string;
  objectKind: ObjectKind;
  rule: RuleId;
  attribute: string;
  error: ErrorKind;
  value: string;
  message: string;
  /** A mechanical fix (new value, or a command), when there is one. */
  suggestion?: string | undefined;
  /** For duplicates: the DN of the other holder. */
  other?: string | undefined;
}

/** What suggestions need to know about the forest. */
export interface RuleContext {
  /** The domain's DNS name, for `<sAMAccountName>@<domain>` when a UPN is blank. */
  domainDnsName: string;
  /** A routable UPN suffix to suggest for `.local` UPNs (first routable forest suffix), if any. */
  routableSuffix?: string | undefined;
}

export const UPN_IDFIX_LOCAL_MAX = 64;
export const UPN_IDFIX_DOMAIN_MAX = 48;
export const PROXY_MAX_LENGTH = 256;
export const SAM_MAX_LENGTH = 20;

// IdFix: whitespace and \ % & * + / = ? { } | < > ( ) ; : , [ ] " are invalid in a UPN; so is
// anything outside ASCII (umlauts).
const UPN_BAD_CHARS = /[\s\\%&*+/=?{}|<>();:,[\]"]|[^\x20-\x7e]/g;
const PROXY_BAD_CHARS = /[\s<>();,[\]"]/g;
const SAM_BAD_CHARS = /[[\]\\"|,/:<>+=;?*]/g;
const LOCAL_BAD_END = /[.& @]$/;

/** Why IdFix (and sync) skips this object, or null when it is in scope. */
export function exclusionReason(o: DirObjectView): string | null {
  if (o.isCriticalSystemObject) return 'critical system object';
  if (/\nCNF:|\\0ACNF:/i.test(o.dn) || /\nCNF:/.test(o.name ?? '')) return 'replication conflict (CNF:) object';
  const names = [o.sAMAccountName, o.name].filter((n): n is string => !!n);
  for (const n of names) {
    const l = asciiLower(n);
    if (l.startsWith('admini')) return "name starts with 'Admini'";
    if (l.startsWith('krbtgt')) return "name starts with 'krbtgt'";
    if (l.startsWith('msol')) return "name starts with 'MSOL'";
    if (l.startsWith('aad_')) return "name starts with 'AAD_' (sync service account)";
    if (l.startsWith('systemmailbox')) return "name starts with 'SystemMailbox'";
    if (l.startsWith('discoverysearchmailbox')) return "name starts with 'DiscoverySearchMailbox'";
    if (l.endsWith('$')) return "name ends with '$'";
  }
  return null;
}

const TRANSLIT: Record<string, string> = { ä: 'ae', ö: 'oe', ü: 'ue', Ä: 'Ae', Ö: 'Oe', Ü: 'Ue', ß: 'ss' };

/** A UPN local part with IdFix's invalid characters replaced mechanically, or null if nothing is left. */
export function fixUpnLocal(local: string): string | null {
  const s = local
    .replace(/[äöüÄÖÜß]/g, (c) => TRANSLIT[c] ?? '')
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\s,]+/g, '.')
    .replace(UPN_BAD_CHARS, '')
    .replace(/\.{2,}/g, '.')
    .replace(/^\.+/, '')
    .replace(/[.& @]+$/, '');
  return s || null;
}

/** The UPN rules alone (no duplicates): used by the check and before every set-upn write. */
export function upnFindings(upn: string | undefined, o: Pick<DirObjectView, 'dn' | 'kind' | 'sAMAccountName'>, ctx: RuleContext): Finding[] {
  const out: Finding[] = [];
  const add = (rule: RuleId, value: string, message: string, suggestion?: string) =>
    out.push({ dn: o.dn, objectKind: o.kind, rule, attribute: RULES[rule].attribute, error: RULES[rule].error, value, message, suggestion });
  if (upn === undefined || upn === '') {
    const sam = o.sAMAccountName;
    add('upn-blank', '', 'userPrincipalName is empty; sync will make one from other attributes', sam ? `${sam}@${ctx.domainDnsName}` : undefined);
    return out;
  }
  const parts = splitUpn(upn);
  if (!parts || parts.local.includes('@')) {
    add('upn-format', upn, "userPrincipalName must have exactly one '@' with text on both sides");
    return out;
  }
  const fixedLocal = fixUpnLocal(parts.local);
  const bad = parts.local.match(UPN_BAD_CHARS) ?? [];
  const badDomain = parts.domain.match(UPN_BAD_CHARS) ?? [];
  if (bad.length > 0 || badDomain.length > 0) {
    const shown = [...new Set([...bad, ...badDomain])].map((c) => (c === ' ' ? 'space' : `'${c}'`)).join(', ');
    add('upn-character', upn, `userPrincipalName contains invalid characters: ${shown}`, fixedLocal && badDomain.length === 0 ? `${fixedLocal}@${parts.domain}` : undefined);
  } else if (LOCAL_BAD_END.test(parts.local)) {
    add('upn-localpart', upn, "the part before '@' must not end with '.', '&', a space or '@'", fixedLocal ? `${fixedLocal}@${parts.domain}` : undefined);
  }
  if (badDomain.length === 0) {
    if (!isRoutableDomain(parts.domain)) {
      add('upn-topleveldomain', upn, `the suffix ${parts.domain} is not routable on the internet, so it can never be a verified domain`, ctx.routableSuffix ? `${parts.local}@${ctx.routableSuffix}` : undefined);
    } else if (fqdnProblem(parts.domain)) {
      add('upn-domainpart', upn, `the suffix ${parts.domain} is not a valid domain name: ${fqdnProblem(parts.domain)}`);
    }
  }
  if (upn.length > UPN_MAX_LENGTH || parts.local.length >= UPN_IDFIX_LOCAL_MAX || parts.domain.length >= UPN_IDFIX_DOMAIN_MAX) {
    add('upn-length', upn, `userPrincipalName must be at most ${UPN_MAX_LENGTH} characters, with under ${UPN_IDFIX_LOCAL_MAX} before '@' and under ${UPN_IDFIX_DOMAIN_MAX} after`);
  }
  return out;
}

/** Every rule that looks at one object alone. Call only for objects exclusionReason() keeps. */
export function objectFindings(o: DirObjectView, ctx: RuleContext): Finding[] {
  const out: Finding[] = [];
  const add = (rule: RuleId, value: string, message: string, suggestion?: string) =>
    out.push({ dn: o.dn, objectKind: o.kind, rule, attribute: RULES[rule].attribute, error: RULES[rule].error, value, message, suggestion });
  if (o.kind === 'user') {
    out.push(...upnFindings(o.userPrincipalName, o, ctx));
    // IdFix checks sAMAccountName only when there is no UPN (it then becomes the sign-in name).
    if (!o.userPrincipalName && o.sAMAccountName) {
      const sam = o.sAMAccountName;
      const bad = sam.match(SAM_BAD_CHARS);
      if (bad) add('sam-character', sam, `sAMAccountName contains invalid characters: ${[...new Set(bad)].map((c) => `'${c}'`).join(', ')}`, sam.replace(SAM_BAD_CHARS, '') || undefined);
      if (sam.length > SAM_MAX_LENGTH) add('sam-length', sam, `sAMAccountName is longer than ${SAM_MAX_LENGTH} characters`);
    }
  }
  for (const p of o.proxyAddresses) {
    const bad = p.match(PROXY_BAD_CHARS);
    if (bad) add('proxy-character', p, `proxy address contains invalid characters: ${[...new Set(bad)].map((c) => (/\s/.test(c) ? 'whitespace' : `'${c}'`)).join(', ')}`, p.replace(PROXY_BAD_CHARS, ''));
    if (p.length > PROXY_MAX_LENGTH) add('proxy-length', p, `proxy address is longer than ${PROXY_MAX_LENGTH} characters`);
    const addr = smtpAddress(p);
    if (addr !== null && !bad) {
      const parts = splitUpn(addr);
      if (!parts || parts.local.includes('@') || fqdnProblem(parts.domain)) add('proxy-format', p, 'smtp proxy address is not a valid address (name@domain)');
      else if (!isRoutableDomain(parts.domain)) add('proxy-topleveldomain', p, `smtp proxy address uses the non-routable domain ${parts.domain}`);
    }
  }
  if (o.mailNickname?.startsWith('.')) add('mailnickname-format', o.mailNickname, "mailNickname must not start with '.'", o.mailNickname.replace(/^\.+/, '') || undefined);
  return out;
}

type AddrAttr = 'upn' | 'proxy';
interface Holder {
  dn: string;
  /** The value as the first holder stores it (e.g. `SMTP:a@b`). */
  raw?: string | undefined;
  kind: ObjectKind;
  attrs: Set<AddrAttr>;
  reported: Set<RuleId>;
}

/**
 * Duplicate detection over a stream of objects: keeps only normalized value -> first holder,
 * never the objects. UPNs and smtp proxy addresses share one namespace (as in the cloud);
 * mail, mailNickname and sAMAccountName each have their own.
 */
export class DuplicateTracker {
  #address = new Map<string, Holder>();
  #mail = new Map<string, Holder>();
  #nick = new Map<string, Holder>();
  #sam = new Map<string, Holder>();

  /** Findings for this object, plus (once) for the first holder of each value it collides with. */
  add(o: DirObjectView): Finding[] {
    const out: Finding[] = [];
    // Gather this object's own address values first, so its UPN equalling its own proxy is no clash.
    const mine = new Map<string, { attrs: Set<AddrAttr>; raw: Map<AddrAttr, string> }>();
    const put = (value: string, attr: AddrAttr, raw: string) => {
      const k = asciiLower(value);
      const m = mine.get(k) ?? { attrs: new Set<AddrAttr>(), raw: new Map<AddrAttr, string>() };
      m.attrs.add(attr);
      if (!m.raw.has(attr)) m.raw.set(attr, raw);
      mine.set(k, m);
    };
    for (const p of o.proxyAddresses) {
      const a = smtpAddress(p);
      if (a) put(a, 'proxy', p);
    }
    if (o.kind === 'user' && o.userPrincipalName) put(o.userPrincipalName, 'upn', o.userPrincipalName);
    for (const [k, m] of mine) {
      const first = this.#address.get(k);
      if (!first) {
        this.#address.set(k, { dn: o.dn, kind: o.kind, attrs: m.attrs, raw: m.raw.get('proxy') ?? m.raw.get('upn'), reported: new Set() });
        continue;
      }
      const rule: RuleId = m.attrs.has('proxy') && first.attrs.has('proxy') ? 'proxy-duplicate' : m.attrs.has('upn') && first.attrs.has('upn') ? 'upn-duplicate' : 'upn-matches-proxy';
      const myAttr: AddrAttr = rule === 'proxy-duplicate' ? 'proxy' : rule === 'upn-duplicate' ? 'upn' : m.attrs.has('upn') ? 'upn' : 'proxy';
      const firstAttr: AddrAttr = rule === 'proxy-duplicate' ? 'proxy' : rule === 'upn-duplicate' ? 'upn' : myAttr === 'upn' ? 'proxy' : 'upn';
      const describe = (attr: AddrAttr) => (attr === 'upn' ? 'userPrincipalName' : 'an smtp proxy address');
      out.push(this.#finding(o.dn, o.kind, rule, myAttr === 'upn' ? 'userPrincipalName' : 'proxyAddresses', m.raw.get(myAttr) ?? k, `${describe(myAttr)} ${k} is also ${describe(firstAttr)} of ${first.dn}`, first.dn));
      if (!first.reported.has(rule)) {
        first.reported.add(rule);
        out.push(this.#finding(first.dn, first.kind, rule, firstAttr === 'upn' ? 'userPrincipalName' : 'proxyAddresses', (firstAttr === 'proxy' ? first.raw : undefined) ?? k, `${describe(firstAttr)} ${k} is also ${describe(myAttr)} of ${o.dn}`, o.dn));
      }
    }
    this.#single(this.#mail, o, o.mail, 'mail-duplicate', 'mail', out);
    this.#single(this.#nick, o, o.mailNickname, 'mailnickname-duplicate', 'mailNickname', out);
    // sAMAccountName matters as a sign-in name only when the UPN is blank (IdFix).
    if (o.kind === 'user' && !o.userPrincipalName) this.#single(this.#sam, o, o.sAMAccountName, 'sam-duplicate', 'sAMAccountName', out);
    return out;
  }

  #single(map: Map<string, Holder>, o: DirObjectView, value: string | undefined, rule: RuleId, attr: string, out: Finding[]): void {
    if (!value) return;
    const k = asciiLower(value);
    const first = map.get(k);
    if (!first) {
      map.set(k, { dn: o.dn, kind: o.kind, attrs: new Set(), reported: new Set() });
      return;
    }
    if (first.dn === o.dn) return;
    out.push(this.#finding(o.dn, o.kind, rule, attr, value, `${attr} ${value} is also the ${attr} of ${first.dn}`, first.dn));
    if (!first.reported.has(rule)) {
      first.reported.add(rule);
      out.push(this.#finding(first.dn, first.kind, rule, attr, value, `${attr} ${value} is also the ${attr} of ${o.dn}`, o.dn));
    }
  }

  #finding(dn: string, kind: ObjectKind, rule: RuleId, attribute: string, value: string, message: string, other: string): Finding {
    return { dn, objectKind: kind, rule, attribute, error: RULES[rule].error, value, message, other };
  }
}
