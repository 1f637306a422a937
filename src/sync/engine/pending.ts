// Pending exports: what the next export would send, read from the connector space (`desired`
// is what should be in the cloud, `exported` what the cloud last confirmed). An add is a row
// never exported, an update one whose desired values differ from the exported ones, a delete an
// exported row gone from the source or out of scope. The queries are exportAll's own (run.ts),
// so `nimbus sync pending` lists exactly what the next non-staging run exports.
import type SQLite from 'better-sqlite3';
import type { ObjectType } from './scope.ts';
import { EXPORTED_VALUES, PENDING_DELETES, PENDING_UPSERTS, type ObjectRow } from './space.ts';

export type PendingAction = 'add' | 'update' | 'delete';

/** One attribute an export would change; arrays (members, proxyAddresses) also say what is added and removed. */
export interface AttributeChange {
  attribute: string;
  before: unknown;
  after: unknown;
  added?: unknown[];
  removed?: unknown[];
}

export interface PendingExport {
  action: PendingAction;
  type: ObjectType;
  anchor: string;
  dn: string;
  /** From the desired values (adds, updates) or the exported ones (deletes), to recognise the object. */
  displayName: string | null;
  userPrincipalName?: string | null;
  /** Deletes: why the object leaves the cloud. */
  reason?: 'deleted-in-source' | 'out-of-scope';
  /** Adds and updates: every attribute whose value changes (an add: every attribute with a value). */
  changes: AttributeChange[];
}

export interface PendingCounts {
  adds: number;
  updates: number;
  deletes: number;
}

export interface PendingFilter {
  type?: ObjectType;
  action?: PendingAction;
}

/** A capped summary for the run report (the portal): counts, the total, and the first `cap` objects. */
export interface PendingSummary extends PendingCounts {
  total: number;
  items: { action: PendingAction; type: ObjectType; anchor: string; dn: string; attributes: string[] }[];
}


type Row = Pick<ObjectRow, 'anchor' | 'type' | 'dn' | 'desired' | 'exported' | 'present'>;

export function pendingCounts(db: SQLite.Database): PendingCounts {
  const up = db.prepare(`SELECT count(*) AS n, count(exported_hash) AS updates FROM objects WHERE ${PENDING_UPSERTS}`).get() as { n: number; updates: number };
  const del = db.prepare(`SELECT count(*) AS n FROM objects WHERE ${PENDING_DELETES}`).get() as { n: number };
  return { adds: up.n - up.updates, updates: up.updates, deletes: del.n };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Attribute-level difference of two attribute objects (null: the object is not in the cloud). */
export function diffAttributes(before: Record<string, unknown> | null, after: Record<string, unknown> | null): AttributeChange[] {
  const out: AttributeChange[] = [];
  const keys = new Set([...Object.keys(after ?? {}), ...Object.keys(before ?? {})]);
  for (const k of keys) {
    const b = before?.[k] ?? null;
    const a = after?.[k] ?? null;
    if (same(b, a)) continue;
    const c: AttributeChange = { attribute: k, before: b, after: a };
    if (Array.isArray(a) || Array.isArray(b)) {
      const bs = new Set((Array.isArray(b) ? b : []).map((v) => JSON.stringify(v)));
      const as = new Set((Array.isArray(a) ? a : []).map((v) => JSON.stringify(v)));
      c.added = [...as].filter((v) => !bs.has(v)).map((v) => JSON.parse(v) as unknown);
      c.removed = [...bs].filter((v) => !as.has(v)).map((v) => JSON.parse(v) as unknown);
    }
    out.push(c);
  }
  return out;
}

function toPending(r: Row, action: PendingAction, withChanges: boolean): PendingExport {
  const parse = (s: string | null) => (s === null ? null : (JSON.parse(s) as Record<string, unknown>));
  const after = action === 'delete' ? null : parse(r.desired);
  const before = parse(r.exported);
  const shown = after ?? before ?? {};
  const p: PendingExport = {
    action,
    type: r.type,
    anchor: r.anchor,
    dn: r.dn,
    displayName: (shown.displayName as string | null | undefined) ?? null,
    ...(r.type === 'user' ? { userPrincipalName: (shown.userPrincipalName as string | null | undefined) ?? null } : {}),
    changes: action === 'delete' || !withChanges ? [] : diffAttributes(before, after),
  };
  if (action === 'delete') p.reason = r.present ? 'out-of-scope' : 'deleted-in-source';
  return p;
}

/**
 * Streams the pending exports, users before groups, by DN: upserts, then deletes (the order the
 * export sends them). Rows are read one at a time, so 100k pending objects never sit in memory.
 * Run it inside a read transaction for one consistent snapshot.
 */
export function* pendingExports(db: SQLite.Database, filter: PendingFilter = {}, opts: { changes?: boolean } = {}): Generator<PendingExport> {
  const withChanges = opts.changes !== false;
  const typeSql = filter.type ? 'AND type = ?' : '';
  const args = filter.type ? [filter.type] : [];
  const order = "ORDER BY type = 'group', dn, anchor";
  if (filter.action !== 'delete') {
    const which = filter.action === 'add' ? 'AND exported_hash IS NULL' : filter.action === 'update' ? 'AND exported_hash IS NOT NULL' : '';
    const stmt = db.prepare<unknown[], Row>(`SELECT anchor, type, dn, desired, ${EXPORTED_VALUES} AS exported, present FROM objects_full WHERE ${PENDING_UPSERTS} ${which} ${typeSql} ${order}`);
    for (const r of stmt.iterate(...args)) yield toPending(r, r.exported === null ? 'add' : 'update', withChanges);
  }
  if (filter.action === undefined || filter.action === 'delete') {
    const stmt = db.prepare<unknown[], Row>(`SELECT anchor, type, dn, NULL AS desired, ${EXPORTED_VALUES} AS exported, present FROM objects_full WHERE ${PENDING_DELETES} ${typeSql} ${order}`);
    for (const r of stmt.iterate(...args)) yield toPending(r, 'delete', false);
  }
}

/** Counts plus the first `cap` pending exports with the names of their changed attributes. */
export function pendingSummary(db: SQLite.Database, cap = 1000): PendingSummary {
  const counts = pendingCounts(db);
  const items: PendingSummary['items'] = [];
  for (const p of pendingExports(db)) {
    if (items.length >= cap) break;
    items.push({ action: p.action, type: p.type, anchor: p.anchor, dn: p.dn, attributes: p.changes.map((c) => c.attribute) });
  }
  return { ...counts, total: counts.adds + counts.updates + counts.deletes, items };
}
