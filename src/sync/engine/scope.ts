// Scope rules (pure): which source entries are users or groups, and which of those are in
// scope: always-excluded objects (as AD Connect), OU include/exclude, and an LDAP filter.
import {
  AndFilter,
  ApproximateFilter,
  EqualityFilter,
  ExtensibleFilter,
  FilterParser,
  GreaterThanEqualsFilter,
  LessThanEqualsFilter,
  NotFilter,
  OrFilter,
  PresenceFilter,
  SubstringFilter,
  type Filter,
} from 'ldapts';
import type { LdapValue, SourceEntry } from '../connectors/connector.ts';
import { SyncError } from '../errors.ts';

export type ObjectType = 'user' | 'group';

/** Values of an attribute, by name in any case (AD names are case-insensitive). */
export function values(entry: SourceEntry, name: string): LdapValue[] {
  const exact = entry.attributes[name];
  if (exact) return exact;
  const lower = name.toLowerCase();
  for (const k in entry.attributes) if (k.toLowerCase() === lower) return entry.attributes[k]!;
  return [];
}

export function first(entry: SourceEntry, name: string): LdapValue | undefined {
  return values(entry, name)[0];
}

export const text = (v: LdapValue | undefined): string | undefined => (v === undefined ? undefined : typeof v === 'string' ? v : v.toString('utf8'));

/** users: objectClass user or inetOrgPerson (computers are users in AD's schema, but not ours); groups: group. */
export function objectTypeOf(entry: SourceEntry): ObjectType | null {
  const classes = values(entry, 'objectClass').map((v) => text(v)!.toLowerCase());
  if (classes.includes('computer')) return null;
  if (classes.includes('group')) return 'group';
  if (classes.includes('user') || classes.includes('inetorgperson')) return 'user';
  return null;
}

/** Canonical DN for comparisons: RDNs trimmed, lower-cased (AD compares DNs case-insensitively). */
export function normalizeDn(dn: string): string {
  const lower = dn.toLowerCase();
  // The common case, no blank around a separator or at an end: lower-casing is all (this runs
  // for every member of every recomputed group, 20k values for one big group).
  if (!/^\s|\s$|\s,|,\s/.test(lower)) return lower;
  return lower
    .split(/(?<!\\),/)
    .map((r) => r.trim())
    .join(',');
}

/**
 * A DN key as a 32-bit number (FNV-1a), for an index of small integers (the connector space's
 * manager_ref): equal keys give equal numbers; a collision only adds a candidate that is then
 * checked against the staged values.
 */
export function dnRef(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const under = (dnKey: string, baseKey: string) => dnKey === baseKey || dnKey.endsWith(`,${baseKey}`);

export interface ScopeRules {
  include: string[];
  exclude: string[];
  filter?: Filter;
}

export interface ScopeConfig {
  baseDn?: string;
  include?: readonly string[];
  exclude?: readonly string[];
  filter?: string;
}

const BIT_AND = '1.2.840.113556.1.4.803';
const BIT_OR = '1.2.840.113556.1.4.804';

/** Builds the rules; a bad filter is a config error naming source.filter. */
export function compileScope(c: ScopeConfig): ScopeRules {
  const include = (c.include?.length ? c.include : c.baseDn ? [c.baseDn] : []).map(normalizeDn);
  const exclude = (c.exclude ?? []).map(normalizeDn);
  let filter: Filter | undefined;
  if (c.filter) {
    const f = c.filter.trim();
    try {
      // ldapts' parser accepts unbalanced parentheses; an admin's typo must not widen the scope.
      let depth = 0;
      for (const ch of f.replace(/\\[0-9a-fA-F]{2}/g, '')) {
        depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
        if (depth < 0) break;
      }
      if (depth !== 0) throw new Error('unbalanced parentheses');
      filter = FilterParser.parseString(f.startsWith('(') ? f : `(${f})`);
    } catch (err) {
      throw new SyncError('ConfigInvalid', `source.filter: '${c.filter}' is not a valid LDAP filter (${(err as Error).message}). Example: (&(department=*)(!(title=Contractor))).`);
    }
    const check = (x: Filter): void => {
      if (x instanceof AndFilter || x instanceof OrFilter) x.filters.forEach(check);
      else if (x instanceof NotFilter) check(x.filter);
      else if (x instanceof ExtensibleFilter && x.rule && x.rule !== BIT_AND && x.rule !== BIT_OR)
        throw new SyncError('ConfigInvalid', `source.filter: the matching rule ${x.rule} is not supported; use ${BIT_AND} (bitwise AND) or ${BIT_OR} (bitwise OR).`);
    };
    check(filter);
  }
  return { include, exclude, ...(filter ? { filter } : {}) };
}

const lc = (v: LdapValue) => (typeof v === 'string' ? v : v.toString('latin1')).toLowerCase();

/** Evaluates an LDAP filter against an entry, over every value of multi-valued attributes. */
export function matchesFilter(f: Filter, entry: SourceEntry): boolean {
  if (f instanceof AndFilter) return f.filters.every((x) => matchesFilter(x, entry));
  if (f instanceof OrFilter) return f.filters.some((x) => matchesFilter(x, entry));
  if (f instanceof NotFilter) return !matchesFilter(f.filter, entry);
  if (f instanceof PresenceFilter) return f.attribute.toLowerCase() === 'objectclass' || values(entry, f.attribute).length > 0;
  if (f instanceof EqualityFilter || f instanceof ApproximateFilter) {
    const want = lc(f.value);
    return values(entry, f.attribute).some((v) => lc(v) === want);
  }
  if (f instanceof SubstringFilter) {
    const parts = [f.initial, ...f.any, f.final].map((p) => (p ?? '').toLowerCase());
    return values(entry, f.attribute).some((v) => {
      const s = lc(v);
      if (!s.startsWith(parts[0]!)) return false;
      let at = parts[0]!.length;
      for (const p of f.any.map((a) => a.toLowerCase())) {
        const i = s.indexOf(p, at);
        if (i < 0) return false;
        at = i + p.length;
      }
      const fin = (f.final ?? '').toLowerCase();
      return s.length - fin.length >= at && s.endsWith(fin);
    });
  }
  if (f instanceof GreaterThanEqualsFilter || f instanceof LessThanEqualsFilter) {
    const ge = f instanceof GreaterThanEqualsFilter;
    return values(entry, f.attribute).some((v) => {
      const a = text(v)!;
      const numeric = /^-?\d+$/.test(a) && /^-?\d+$/.test(f.value);
      const cmp = numeric ? Math.sign(Number(a) - Number(f.value)) : a.toLowerCase().localeCompare(f.value.toLowerCase());
      return ge ? cmp >= 0 : cmp <= 0;
    });
  }
  if (f instanceof ExtensibleFilter) {
    const vals = values(entry, f.matchType);
    if (!f.rule) return vals.some((v) => lc(v) === f.value.toLowerCase());
    // AD's bitwise matching rules on integer attributes such as userAccountControl.
    const want = BigInt.asUintN(32, BigInt(f.value));
    return vals.some((v) => {
      const t = text(v)!;
      if (!/^-?\d+$/.test(t)) return false;
      const have = BigInt.asUintN(32, BigInt(t));
      return f.rule === BIT_AND ? (have & want) === want : (have & want) !== 0n;
    });
  }
  return false;
}

export type ScopeDecision = { inScope: true } | { inScope: false; reason: string };

/** Accounts sync never exports, whatever the configuration says (AD Connect's built-in rules). */
export function alwaysExcluded(entry: SourceEntry): string | null {
  if (text(first(entry, 'isCriticalSystemObject'))?.toUpperCase() === 'TRUE') return 'critical system object (isCriticalSystemObject TRUE)';
  if (text(first(entry, 'isDeleted'))?.toUpperCase() === 'TRUE') return 'deleted object (tombstone)';
  const sam = text(first(entry, 'sAMAccountName')) ?? '';
  if (/^krbtgt(_\d+)?$/i.test(sam)) return `Kerberos service account ${sam}`;
  if (/^(AAD|MSOL)_/i.test(sam)) return `sync service account ${sam} (AAD_*/MSOL_* accounts are never synced)`;
  const rdn = entry.dn.split(/(?<!\\),/)[0] ?? '';
  // AD names replication-conflict objects "<name>\nCNF:<guid>" (the newline escaped as \0A in DNs).
  if (/(\\0A|\n)CNF:/i.test(rdn) || /\nCNF:/.test(text(first(entry, 'name')) ?? '') || /^\$DUPLICATE-/i.test(sam)) return 'replication conflict object (CNF:)';
  return null;
}

export function scopeOf(entry: SourceEntry, rules: ScopeRules): ScopeDecision {
  const always = alwaysExcluded(entry);
  if (always) return { inScope: false, reason: always };
  const key = normalizeDn(entry.dn);
  if (rules.include.length && !rules.include.some((b) => under(key, b))) return { inScope: false, reason: 'not under an included OU (source.include / baseDn)' };
  const ex = rules.exclude.find((b) => under(key, b));
  if (ex) return { inScope: false, reason: `under the excluded ${ex} (source.exclude)` };
  if (rules.filter && !matchesFilter(rules.filter, entry)) return { inScope: false, reason: 'does not match source.filter' };
  return { inScope: true };
}
