// What `nimbus sync runs|errors|explain` read from the connector space: run history, every
// object's current error or provisioning error, and one object's path (source entry, scope,
// attribute flows, match decision, last export). Plain queries and data, no printing and no
// network: the CLI adds the cloud object and formats.
import type SQLite from 'better-sqlite3';
import { syncGroupAttributes, syncUserAttributes, type ProvisioningError } from '../../cloud/sync/sync-wire.ts';
import type { Mapped, Mapper } from './mapping.ts';
import { normalizeDn, type ScopeRules } from './scope.ts';
import { EXPORTED_VALUES, type ObjectRow, type RunRow } from './space.ts';

// ---------------------------------------------------------------- runs

export interface RunEntry {
  id: number;
  kind: string;
  status: string;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  counts: Record<string, number>;
  message: string | null;
  /** The run's first per-object errors (up to 100). */
  errors: unknown[];
}

/** The newest `limit` runs, newest first. */
export function listRuns(db: SQLite.Database, limit: number): RunEntry[] {
  const rows = db.prepare<[number], RunRow>('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit);
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    status: r.status,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    durationMs: r.ended_at ? Date.parse(r.ended_at) - Date.parse(r.started_at) : null,
    counts: r.counts ? (JSON.parse(r.counts) as Record<string, number>) : {},
    message: r.message,
    errors: r.errors ? (JSON.parse(r.errors) as unknown[]) : [],
  }));
}

// ---------------------------------------------------------------- errors

export interface OtherObject {
  /** Cloud object id, when the cloud named it. */
  id?: string;
  displayName?: string | null;
  /** The other object's source DN and anchor, when it is synced from this source too. */
  dn?: string;
  anchor?: string;
}

export interface ErrorEntry {
  anchor: string;
  type: 'user' | 'group';
  dn: string;
  /** error: the last sync step or export failed; provisioning: exported, but the cloud kept a conflict; unresolved: waits for a reference. */
  kind: 'error' | 'provisioning' | 'unresolved';
  category?: string;
  /** The cloud attribute concerned, when known. */
  attribute: string | null;
  value: string | null;
  conflictingObject: OtherObject | null;
  since: string | null;
  message: string;
}

type Row = Pick<ObjectRow, 'anchor' | 'type' | 'dn' | 'desired' | 'provisioning_errors' | 'unresolved' | 'error' | 'error_at'>;

const text = (v: unknown): string | null => (v === undefined || v === null ? null : typeof v === 'string' ? v : JSON.stringify(v));

/** The attribute an error message names (`attribute X: ...` from the sync step, `property X` from the cloud). */
function attributeOf(message: string): string | null {
  const m = /\battribute ([A-Za-z][\w.]*)/.exec(message) ?? /\bproperty '?([A-Za-z]\w*)/i.exec(message);
  return m ? m[1]!.split('.')[0]! : null;
}

/** Resolves cloud ids and anchors to the objects of this connector space. */
function resolver(db: SQLite.Database) {
  const byCloudId = db.prepare<[string], { anchor: string; dn: string }>('SELECT anchor, dn FROM objects WHERE cloud_id = ? LIMIT 1');
  const byAnchor = db.prepare<[string], { anchor: string; dn: string }>('SELECT anchor, dn FROM objects WHERE anchor = ?');
  return {
    other(pe: ProvisioningError): OtherObject | null {
      if (!pe.conflictingObjectId) return null;
      const local = byCloudId.get(pe.conflictingObjectId);
      return { id: pe.conflictingObjectId, displayName: pe.conflictingObjectDisplayName ?? null, ...(local ? { dn: local.dn, anchor: local.anchor } : {}) };
    },
    anchor: (a: string) => byAnchor.get(a),
  };
}

function entriesOf(r: Row, resolve: ReturnType<typeof resolver>): ErrorEntry[] {
  const base = { anchor: r.anchor, type: r.type, dn: r.dn };
  const desired = r.desired ? (JSON.parse(r.desired) as Record<string, unknown>) : {};
  const out: ErrorEntry[] = [];
  if (r.error) {
    const attribute = attributeOf(r.error);
    out.push({ ...base, kind: 'error', attribute, value: attribute ? text(desired[attribute]) : null, conflictingObject: null, since: r.error_at, message: r.error });
  }
  for (const pe of r.provisioning_errors ? (JSON.parse(r.provisioning_errors) as ProvisioningError[]) : []) {
    const other = resolve.other(pe);
    const who = other ? ` (held by ${other.displayName ?? other.id}${other.dn ? `, ${other.dn}` : ''})` : '';
    out.push({
      ...base,
      kind: 'provisioning',
      category: pe.category,
      attribute: pe.propertyCausingError,
      value: pe.value,
      conflictingObject: other,
      since: pe.occurredDateTime,
      message: `${pe.category}: ${pe.propertyCausingError} '${pe.value}'${who}`,
    });
  }
  if (r.unresolved) {
    for (const a of JSON.parse(r.unresolved) as string[]) {
      const local = resolve.anchor(a);
      const attribute = desired.manager === a ? 'manager' : 'members';
      out.push({
        ...base,
        kind: 'unresolved',
        attribute,
        value: a,
        conflictingObject: local ? { anchor: local.anchor, dn: local.dn } : { anchor: a },
        // The connector space does not record when a reference started waiting.
        since: null,
        message: `${attribute} names ${local?.dn ?? a}, which is not in the cloud yet; the next run retries`,
      });
    }
  }
  return out;
}

/** Every current error of every object, streamed in DN order (a large space never sits in memory). */
export function* objectErrors(db: SQLite.Database): Generator<ErrorEntry> {
  const resolve = resolver(db);
  // Reads (the resolver's lookups) may run while this statement iterates.
  const rows = db
    .prepare<[], Row>('SELECT anchor, type, dn, desired, provisioning_errors, unresolved, error, error_at FROM objects_full WHERE error IS NOT NULL OR provisioning_errors IS NOT NULL OR unresolved IS NOT NULL ORDER BY dn_key')
    .iterate();
  for (const r of rows) yield* entriesOf(r, resolve);
}

// ---------------------------------------------------------------- explain: finding the object

export interface Candidate {
  anchor: string;
  type: 'user' | 'group';
  dn: string;
  inScope: boolean;
  /** What the id matched: source anchor, objectGUID, DN, sAMAccountName, UPN, cloud UPN. */
  matchedOn: string;
}

/** objectGUID text form (as AD tools print it) -> the base64 of its bytes, AD's byte order. */
export function guidTextToAnchor(id: string): string | undefined {
  const m = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i.exec(id.trim());
  if (!m) return undefined;
  const le = (h: string) => Buffer.from(h, 'hex').reverse();
  return Buffer.concat([le(m[1]!), le(m[2]!), le(m[3]!), Buffer.from(m[4]! + m[5]!, 'hex')]).toString('base64');
}

/**
 * Objects the id names: source anchor (or objectGUID text) first, then DN, sAMAccountName, UPN
 * as the source has it, and UPN as the cloud made it. Several hits mean the id is ambiguous.
 */
export function findObjects(db: SQLite.Database, id: string): Candidate[] {
  const q = id.trim();
  const lower = q.toLowerCase();
  const anchors = [q, guidTextToAnchor(q)].filter((a): a is string => !!a);
  const dnKey = q.includes('=') ? normalizeDn(q) : null;
  type Hit = Pick<ObjectRow, 'anchor' | 'type' | 'dn' | 'in_scope'> & { matched: string };
  const rows = db
    .prepare<Record<string, string | null>, Hit>(
      `SELECT anchor, type, dn, in_scope, CASE
         WHEN anchor IN (:a1, :a2) THEN 'source anchor'
         WHEN dn_key = :dn THEN 'DN'
         WHEN lower(json_extract(desired, '$.onPremisesSamAccountName')) = :l THEN 'sAMAccountName'
         WHEN lower(json_extract(desired, '$.userPrincipalName')) = :l THEN 'UPN'
         WHEN lower(cloud_upn) = :l THEN 'cloud UPN'
         ELSE (SELECT CASE lower(j.key) WHEN 'samaccountname' THEN 'sAMAccountName' ELSE 'UPN' END FROM json_each(imported) j
               WHERE lower(j.key) IN ('samaccountname', 'userprincipalname') AND lower(json_extract(j.value, '$[0]')) = :l LIMIT 1) END AS matched
       FROM objects_full WHERE anchor IN (:a1, :a2) OR dn_key = :dn
         OR lower(json_extract(desired, '$.onPremisesSamAccountName')) = :l
         OR lower(json_extract(desired, '$.userPrincipalName')) = :l
         OR lower(cloud_upn) = :l
         OR (imported IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(imported) j
               WHERE lower(j.key) IN ('samaccountname', 'userprincipalname') AND lower(json_extract(j.value, '$[0]')) = :l))
       ORDER BY dn_key LIMIT 50`,
    )
    .all({ a1: anchors[0] ?? null, a2: anchors[1] ?? null, dn: dnKey, l: lower });
  const hits = rows.map((r) => ({ anchor: r.anchor, type: r.type, dn: r.dn, inScope: r.in_scope === 1, matchedOn: r.matched }));
  // An exact anchor or DN names one object whatever else shares a name with it.
  const exact = hits.filter((h) => h.matchedOn === 'source anchor' || h.matchedOn === 'DN');
  return exact.length === 1 ? exact : hits;
}

/** A few objects whose DN contains the id, to suggest when nothing matched exactly. */
export function similarObjects(db: SQLite.Database, id: string, limit = 5): { anchor: string; type: string; dn: string }[] {
  const like = `%${id.trim().toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return db.prepare<[string, number], { anchor: string; type: string; dn: string }>("SELECT anchor, type, dn FROM objects WHERE dn_key LIKE ? ESCAPE '\\' ORDER BY dn_key LIMIT ?").all(like, limit);
}

// ---------------------------------------------------------------- explain: the object's path

export interface Flow {
  attribute: string;
  /** The source attribute(s) or the override expression. */
  from: string;
  /** Computed now from the staged entry with the current rules (manager/members: anchors once resolved, else DNs). */
  value: unknown;
  /** Why the cloud would refuse this value (the schema check the sync step applies). */
  problem?: string;
  /** For references: the DN of the object an anchor names, or how many members. */
  note?: string;
  /** The last export sent another value (the difference is pending). */
  exportedValue?: unknown;
  pending?: boolean;
}

export interface Explanation {
  object: { anchor: string; type: 'user' | 'group'; dn: string; matchedOn: string; inSource: boolean; lastImport: { runId: number; at: string | null } | null };
  scope: { inScope: boolean; reason: string };
  /** The staged copy of the source entry from the last import (out-of-scope objects keep none). */
  source: Record<string, string[]> | null;
  flows: Flow[];
  /** The mapping rules changed since these values were computed; the next run recomputes them. */
  rulesChanged: boolean;
  match: { decision: string | null; description: string };
  export: {
    state: 'exported' | 'pending' | 'never-exported' | 'pending-delete' | 'removed-from-cloud' | 'not-exported';
    description: string;
    at: string | null;
    cloudId: string | null;
    cloudUpn: string | null;
    upnNote?: string;
    provisioningErrors: ErrorEntry[];
    unresolved: ErrorEntry[];
    error: { message: string; at: string | null } | null;
  };
}

const MATCH: Record<string, string> = {
  hard: "hard match: the cloud object's onPremisesImmutableId is this object's source anchor",
  'soft-upn': 'soft match on userPrincipalName: a cloud-only user with the same UPN was taken over and stamped with the source anchor',
  'soft-smtp': 'soft match on the primary SMTP address (SMTP: in proxyAddresses): a cloud-only user with it was taken over',
  'soft-proxy': 'soft match on a proxy address: a cloud mail-enabled group holding it was taken over',
  new: 'no match: a new cloud object was created',
};

/** Why an in-scope object is in scope, in the rules' own words. */
function inScopeReason(dn: string, rules: ScopeRules, filter: string | undefined): string {
  const key = normalizeDn(dn);
  const base = rules.include.find((b) => key === b || key.endsWith(`,${b}`));
  const parts = [base ? `under ${base} (source.include / baseDn)` : 'no include rule'];
  parts.push(rules.exclude.length ? 'not under source.exclude' : 'no source.exclude');
  if (filter) parts.push(`matches source.filter ${filter}`);
  parts.push('not an always-excluded object');
  return parts.join('; ');
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export interface ExplainContext {
  scope: ScopeRules;
  filter?: string;
  mapper: Mapper;
}

/** Every flow evaluated on the staged entry, with the value the last export sent when it differs. */
async function flowsOf(db: SQLite.Database, r: ObjectRow, ctx: ExplainContext): Promise<Flow[]> {
  if (!r.imported) return [];
  const desired = r.desired ? (JSON.parse(r.desired) as Record<string, unknown>) : {};
  const exported = r.exported ? (JSON.parse(r.exported) as Record<string, unknown>) : null;
  const sources = ctx.mapper.sources(r.type);
  let mapped: Mapped;
  try {
    mapped = await ctx.mapper.map(r.type, { dn: r.dn, attrs: JSON.parse(r.imported) as Record<string, string[]> });
  } catch (err) {
    const attribute = /^mapping\.\w+\.(\w+):/.exec((err as Error).message)?.[1] ?? '(mapping)';
    return [{ attribute, from: sources[attribute] ?? '(mapping)', value: null, problem: (err as Error).message }];
  }
  const values: Record<string, unknown> = { ...mapped.attributes };
  // References: the anchors the sync step resolved, else the DNs the mapping returned.
  if (r.type === 'user') values.manager = desired.manager !== undefined ? desired.manager : (mapped.manager ?? null);
  else values.members = desired.members !== undefined ? desired.members : (mapped.members ?? []);
  const problems = new Map<string, string>();
  const check = (r.type === 'user' ? syncUserAttributes : syncGroupAttributes).safeParse(mapped.attributes);
  if (!check.success) for (const i of check.error.issues) problems.set(String(i.path[0]), i.message);
  const names = [...new Set([...Object.keys(sources), ...Object.keys(values)])];
  const dnOf = db.prepare<[string], { dn: string }>('SELECT dn FROM objects WHERE anchor = ?');
  return names.map((a) => {
    const f: Flow = { attribute: a, from: sources[a] ?? '(computed)', value: values[a] ?? null };
    if (problems.has(a)) f.problem = problems.get(a)!;
    if (a === 'manager' && typeof f.value === 'string') f.note = dnOf.get(f.value)?.dn ?? 'not in scope: the cloud gets no manager';
    if (a === 'members' && Array.isArray(f.value)) f.note = `${f.value.length} in-scope member(s)`;
    if (exported && !same(exported[a], values[a])) {
      f.exportedValue = exported[a] ?? null;
      f.pending = true;
    }
    return f;
  });
}

/** The object's path through the engine, from the connector space alone. */
export async function explainObject(db: SQLite.Database, c: Candidate, ctx: ExplainContext): Promise<Explanation> {
  const r = db.prepare<[string], ObjectRow>(`SELECT *, ${EXPORTED_VALUES} AS exported FROM objects_full WHERE anchor = ?`).get(c.anchor)!;
  const run = db.prepare<[number], { started_at: string }>('SELECT started_at FROM runs WHERE id = ?').get(r.seen_run);
  const desired = r.desired ? (JSON.parse(r.desired) as Record<string, unknown>) : null;
  const exported = r.exported ? (JSON.parse(r.exported) as Record<string, unknown>) : null;
  const inScope = r.in_scope === 1;
  const resolve = resolver(db);
  const entries = entriesOf(r, resolve);

  const scope = inScope
    ? { inScope, reason: inScopeReason(r.dn, ctx.scope, ctx.filter) }
    : { inScope, reason: r.scope_reason ?? 'out of scope (no reason recorded)' };

  const flows = await flowsOf(db, r, ctx);

  const match = r.match
    ? { decision: r.match, description: `${MATCH[r.match] ?? r.match} (decided by the cloud at the last export that sent this object)` }
    : { decision: null, description: r.cloud_id ? 'the cloud reported no match decision' : 'none yet: the object has not reached the cloud' };

  const pendingChanges = desired && (!exported || r.exported_hash !== r.desired_hash);
  let state: Explanation['export']['state'];
  let description: string;
  if (!r.present) {
    state = r.exported_hash ? 'pending-delete' : 'not-exported';
    description = r.exported_hash ? 'deleted in the source: the next run deletes it in the cloud (soft delete, restorable 30 days)' : 'deleted in the source; it never reached the cloud';
  } else if (!inScope) {
    if (r.exported_hash) {
      state = 'pending-delete';
      description = 'out of scope now, but exported before: the next run deletes it in the cloud';
    } else if (r.exported_at) {
      state = 'removed-from-cloud';
      description = `out of scope: deleted in the cloud at ${r.exported_at}`;
    } else {
      state = 'not-exported';
      description = 'out of scope: never exported';
    }
  } else if (!exported) {
    state = r.error ? 'not-exported' : 'never-exported';
    description = r.error ? 'not exported: the last attempt failed (see the error)' : r.unresolved ? 'in the cloud, waiting for references (see unresolved)' : 'not exported yet: the next run exports it';
  } else if (pendingChanges) {
    state = 'pending';
    description = `exported at ${r.exported_at ?? '?'}; changes are pending for the next run (flows marked *)`;
  } else {
    state = 'exported';
    description = `exported at ${r.exported_at ?? '?'}; the cloud has the values above`;
  }

  let upnNote: string | undefined;
  const wantUpn = typeof desired?.userPrincipalName === 'string' ? desired.userPrincipalName : undefined;
  if (r.type === 'user' && r.cloud_upn && wantUpn && r.cloud_upn.toLowerCase() !== wantUpn.toLowerCase()) {
    const dup = entries.some((e) => e.kind === 'provisioning' && e.attribute === 'userPrincipalName');
    upnNote = dup
      ? `the cloud gave it ${r.cloud_upn} because another object holds ${wantUpn} (duplicate attribute resiliency)`
      : `the cloud gave it ${r.cloud_upn}: the suffix of ${wantUpn} is not a verified domain of the tenant (UPN fallback); verify the domain to keep the on-premises UPN`;
  }

  return {
    object: { anchor: r.anchor, type: r.type, dn: r.dn, matchedOn: c.matchedOn, inSource: r.present === 1, lastImport: { runId: r.seen_run, at: run?.started_at ?? null } },
    scope,
    source: r.imported ? (JSON.parse(r.imported) as Record<string, string[]>) : null,
    flows,
    rulesChanged: (db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'rules'").get()?.value ?? ctx.mapper.fingerprint) !== ctx.mapper.fingerprint,
    match,
    export: {
      state,
      description,
      at: r.exported_at,
      cloudId: r.cloud_id,
      cloudUpn: r.cloud_upn,
      ...(upnNote ? { upnNote } : {}),
      provisioningErrors: entries.filter((e) => e.kind === 'provisioning'),
      unresolved: entries.filter((e) => e.kind === 'unresolved'),
      error: r.error ? { message: r.error, at: r.error_at } : null,
    },
  };
}
