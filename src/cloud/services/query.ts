// List, page and delta queries over users and groups: compiles a parsed $filter to SQL
// over the property table's columns, pages by keyset (never OFFSET, so page 1000 costs
// what page 1 costs), and serves delta rounds from the per-tenant change sequence.
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import { badRequest, NimbusError, unsupported } from '../../shared/errors.ts';
import { asciiLower } from '../../shared/upn.ts';
import { ELEMENT, parseFilter, type FilterNode, type Literal } from '../odata/filter.ts';
import { columnsFor, findProp, parseSelect, toGraph, type ObjectType, type PropDef } from '../model/properties.ts';
import type { Database } from '../store/schema.ts';

type Db = Kysely<Database>;
type Cond = RawBuilder<SqlBool>;

export const tableOf = (type: ObjectType) => (type === 'user' ? 'users' : 'groups');

export interface ListParams {
  filter?: string | undefined;
  select?: string | undefined;
  orderby?: string | undefined;
  top?: string | undefined;
  skiptoken?: string | undefined;
  count?: boolean | undefined;
}

export interface Page {
  items: Record<string, unknown>[];
  nextSkiptoken?: string;
  count?: number;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
function unb64<T>(s: string, what: string): T {
  try {
    return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as T;
  } catch {
    throw badRequest(`Invalid ${what}: the token is malformed. Start again from the first page or the initial delta request.`, what);
  }
}

export function parseTop(top: string | undefined, def = 100): number {
  if (top === undefined) return def;
  if (!/^\d+$/.test(top)) throw badRequest(`Invalid $top: '${top}' is not a whole number between 1 and 999.`, '$top');
  const n = Number(top);
  if (n < 1 || n > 999) throw badRequest(`Invalid $top: ${n} is outside the allowed range 1-999.`, '$top');
  return n;
}

/** Escapes LIKE wildcards; the pattern is used with ESCAPE '\'. */
export const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

function literalValue(p: PropDef, lit: Literal): unknown {
  const mismatch = () =>
    badRequest(`Invalid $filter: property '${p.name}' is ${p.kind === 'boolean' ? 'a boolean' : p.kind === 'datetime' ? 'a date and time' : 'a string'}; the value ${JSON.stringify('value' in lit ? lit.value : null)} does not match that type.`, '$filter');
  switch (p.kind) {
    case 'boolean':
      if (lit.kind !== 'boolean') throw mismatch();
      return lit.value ? 1 : 0;
    case 'datetime':
      if (lit.kind !== 'datetime' && lit.kind !== 'string') throw mismatch();
      if (Number.isNaN(Date.parse(lit.value))) throw mismatch();
      return new Date(lit.value).toISOString();
    case 'string':
      if (lit.kind === 'string' || lit.kind === 'guid') return p.ci ? asciiLower(lit.value) : lit.value;
      throw mismatch();
    default:
      throw mismatch();
  }
}

function colExpr(p: PropDef): RawBuilder<unknown> {
  return p.ci && p.kind === 'string' ? sql`lower(${sql.ref(p.column!)})` : sql.ref(p.column!);
}

function resolveFilterProp(type: ObjectType, name: string): PropDef {
  const p = findProp(type, name);
  if (!p) throw badRequest(`Invalid $filter: '${name}' is not a property of ${type}.`, '$filter');
  if (!p.filterable || !p.column) throw unsupported(`Unsupported $filter: filtering on '${p.name}' is not supported. Filterable properties of ${type}: ${filterableNames(type)}.`);
  return p;
}

const filterableNames = (type: ObjectType) =>
  ['user', 'group'].includes(type)
    ? (type === 'user' ? 'accountEnabled, displayName, givenName, surname, userPrincipalName, mail, mailNickname, jobTitle, department, companyName, employeeId, userType, usageLocation, proxyAddresses, createdDateTime, onPremises*' : 'displayName, mail, mailNickname, mailEnabled, securityEnabled, groupTypes, proxyAddresses, createdDateTime, onPremises*')
    : '';

const CMP: Record<string, string> = { eq: '=', ne: '<>', gt: '>', ge: '>=', lt: '<', le: '<=' };

/** Compiles one $filter AST into a SQL condition over the type's table. */
export function compileFilter(type: ObjectType, node: FilterNode): Cond {
  switch (node.kind) {
    case 'and':
      return sql<SqlBool>`(${compileFilter(type, node.left)} and ${compileFilter(type, node.right)})`;
    case 'or':
      return sql<SqlBool>`(${compileFilter(type, node.left)} or ${compileFilter(type, node.right)})`;
    case 'not':
      return sql<SqlBool>`(not ${compileFilter(type, node.operand)})`;
    case 'compare': {
      const p = resolveFilterProp(type, node.property);
      if (p.kind === 'strings' || p.kind === 'json')
        throw badRequest(`Invalid $filter: '${p.name}' is a collection; use ${p.name}/any(x:x eq 'value').`, '$filter');
      if (node.value.kind === 'null') {
        if (node.op === 'eq') return sql<SqlBool>`${sql.ref(p.column!)} is null`;
        if (node.op === 'ne') return sql<SqlBool>`${sql.ref(p.column!)} is not null`;
        throw badRequest(`Invalid $filter: only eq and ne can compare '${p.name}' with null.`, '$filter');
      }
      if (p.kind === 'boolean' && !['eq', 'ne'].includes(node.op))
        throw badRequest(`Invalid $filter: '${p.name}' is a boolean; use eq or ne.`, '$filter');
      const v = literalValue(p, node.value);
      const c = sql<SqlBool>`${colExpr(p)} ${sql.raw(CMP[node.op]!)} ${v}`;
      // ne also matches objects where the property is not set, as Graph does.
      return node.op === 'ne' && p.nullable ? sql<SqlBool>`(${sql.ref(p.column!)} is null or ${c})` : c;
    }
    case 'in': {
      const p = resolveFilterProp(type, node.property);
      if (p.kind === 'strings' || p.kind === 'json')
        throw badRequest(`Invalid $filter: '${p.name}' is a collection; use ${p.name}/any(x:x in (...)).`, '$filter');
      const vals = node.values.map((l) => literalValue(p, l));
      return sql<SqlBool>`${colExpr(p)} in (${sql.join(vals)})`;
    }
    case 'startswith':
    case 'endswith': {
      const p = resolveFilterProp(type, node.property);
      if (p.kind !== 'string') throw badRequest(`Invalid $filter: ${node.kind} needs a string property; '${p.name}' is not one.`, '$filter');
      const v = p.ci ? asciiLower(node.value) : node.value;
      if (node.kind === 'startswith') {
        // A range keeps the index usable on both SQLite and PostgreSQL (LIKE would not be).
        return sql<SqlBool>`(${colExpr(p)} >= ${v} and ${colExpr(p)} < ${v + '\uffff'})`;
      }
      return sql<SqlBool>`${colExpr(p)} like ${'%' + likeEscape(v)} escape '\\'`;
    }
    case 'any': {
      const p = resolveFilterProp(type, node.property);
      if (p.kind !== 'strings') throw badRequest(`Invalid $filter: any() needs a collection property; '${p.name}' is not one.`, '$filter');
      return compileElement(p, node.predicate);
    }
  }
}

/** A predicate over the elements of a JSON-array column, matched on the JSON text. */
function compileElement(p: PropDef, node: FilterNode): Cond {
  const col = sql`lower(${sql.ref(p.column!)})`;
  // Elements are JSON strings: `"value"`. Quotes cannot occur inside the values we accept
  // for these collections, so the surrounding quotes anchor a whole element.
  const enc = (s: string) => likeEscape(JSON.stringify(asciiLower(s)).slice(1, -1));
  switch (node.kind) {
    case 'or':
      return sql<SqlBool>`(${compileElement(p, node.left)} or ${compileElement(p, node.right)})`;
    case 'and':
      return sql<SqlBool>`(${compileElement(p, node.left)} and ${compileElement(p, node.right)})`;
    case 'compare':
      if (node.property === ELEMENT && node.op === 'eq' && node.value.kind === 'string')
        return sql<SqlBool>`${col} like ${`%"${enc(node.value.value)}"%`} escape '\\'`;
      break;
    case 'in':
      if (node.property === ELEMENT && node.values.every((v) => v.kind === 'string'))
        return sql<SqlBool>`(${sql.join(node.values.map((v) => sql`${col} like ${`%"${enc((v as { value: string }).value)}"%`} escape '\\'`), sql` or `)})`;
      break;
    case 'startswith':
      if (node.property === ELEMENT) return sql<SqlBool>`${col} like ${`%"${enc(node.value)}%`} escape '\\'`;
      break;
    default:
      break;
  }
  throw unsupported(`Unsupported $filter: inside ${p.name}/any() only eq, in and startswith on the element (joined by and/or) are supported.`);
}

export interface OrderBy {
  prop: PropDef;
  desc: boolean;
}

export function parseOrderBy(type: ObjectType, orderby: string | undefined): OrderBy | undefined {
  if (orderby === undefined) return undefined;
  const m = /^\s*([A-Za-z]+)(?:\s+(asc|desc))?\s*$/.exec(orderby);
  if (!m) throw badRequest(`Invalid $orderby: '${orderby}'. Use one property, optionally followed by asc or desc.`, '$orderby');
  const p = findProp(type, m[1]!);
  if (!p) throw badRequest(`Invalid $orderby: '${m[1]}' is not a property of ${type}.`, '$orderby');
  if (!p.sortable) throw unsupported(`Unsupported $orderby: sorting by '${p.name}' is not supported; use displayName${type === 'user' ? ' or userPrincipalName' : ''}.`);
  return { prop: p, desc: m[2] === 'desc' };
}

interface SkipToken {
  v?: string;
  id: string;
}

export interface ListOptions {
  /** Extra condition (e.g. "is deleted", "is a member of"). */
  where?: Cond;
  deleted?: boolean;
  /** Page size when $top is absent. */
  defaultTop?: number;
}

/** One page of users or groups of a tenant. */
export async function listObjects(db: Db, tenantId: string, type: ObjectType, q: ListParams, opts: ListOptions = {}): Promise<Page> {
  const select = parseSelect(type, q.select);
  const top = parseTop(q.top, opts.defaultTop);
  const order = parseOrderBy(type, q.orderby);
  let filter: Cond | undefined;
  if (q.filter !== undefined) filter = compileFilter(type, parseFilter(q.filter));

  const base = () => objectsWhere(db, tenantId, type, filter, opts);

  const cols = columnsFor(select, order ? [order.prop.column!] : []);
  // Names sort case-insensitively, as in Graph (and identically on SQLite and PostgreSQL,
  // whose default collations differ). The sort key is read back from SQL for the skiptoken.
  const orderKey = order ? colExpr(order.prop) : undefined;
  let qb = base().select([...cols.map((c) => sql.ref(c).as(c)), ...(orderKey ? [sql<string>`${orderKey}`.as('_order_key')] : [])]);
  if (q.skiptoken !== undefined) {
    const t = unb64<SkipToken>(q.skiptoken, '$skiptoken');
    if (typeof t?.id !== 'string' || (t.v !== undefined && t.v !== null && typeof t.v !== 'string'))
      throw badRequest('Invalid $skiptoken: the token is malformed. Start again from the first page.', '$skiptoken');
    if (order && orderKey) {
      const op = sql.raw(order.desc ? '<' : '>');
      qb = qb.where(sql<SqlBool>`(${orderKey} ${op} ${t.v ?? ''} or (${orderKey} = ${t.v ?? ''} and id ${op} ${t.id}))`);
    } else {
      qb = qb.where('id', '>', t.id);
    }
  }
  if (order && orderKey) {
    const dir = order.desc ? 'desc' : 'asc';
    qb = qb.orderBy(orderKey, dir).orderBy('id', dir);
  } else {
    qb = qb.orderBy('id', 'asc');
  }
  const rows = (await qb.limit(top + 1).execute()) as Record<string, unknown>[];
  const more = rows.length > top;
  const page = more ? rows.slice(0, top) : rows;
  const result: Page = { items: page.map((r) => toGraph(r, select)) };
  if (more) {
    const last = page[page.length - 1]!;
    result.nextSkiptoken = b64(orderKey ? { v: last._order_key as string, id: last.id as string } : { id: last.id as string });
  }
  if (q.count) {
    result.count = await countOf(base());
  }
  return result;
}

export async function countObjects(db: Db, tenantId: string, type: ObjectType, filterText: string | undefined): Promise<number> {
  return countOf(objectsWhere(db, tenantId, type, filterText === undefined ? undefined : compileFilter(type, parseFilter(filterText)), {}));
}

/** The tenant's live (or, with `deleted`, recycle-bin) users or groups matching a filter. */
function objectsWhere(db: Db, tenantId: string, type: ObjectType, filter: Cond | undefined, opts: ListOptions) {
  let b = db.selectFrom(tableOf(type)).where('tenant_id', '=', tenantId);
  b = opts.deleted ? b.where('deleted_at', 'is not', null) : b.where('deleted_at', 'is', null);
  if (filter) b = b.where(filter);
  if (opts.where) b = b.where(opts.where);
  return b;
}

async function countOf(q: ReturnType<typeof objectsWhere>): Promise<number> {
  const c = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(c.n);
}

// ---- delta ----------------------------------------------------------------------------

/** State carried in $skiptoken / $deltatoken of a delta round. */
interface DeltaState {
  t: string; // tenant id
  o: ObjectType;
  s: number; // changes after this sequence number...
  i: string; // ...and, at sequence s, after this id (keyset)
  from: number; // sequence the round started from (for members@delta)
  init: boolean; // initial round: skip deleted objects
  sel?: string;
  at: number; // when the round started (ms), for expiry
}

export interface DeltaResult {
  items: Record<string, unknown>[];
  nextLink?: string;
  deltaLink?: string;
}

export interface DeltaParams {
  select?: string | undefined;
  skiptoken?: string | undefined;
  deltatoken?: string | undefined;
  pageSize: number;
  now: Date;
  tokenDays: number;
}

/**
 * One page of a delta round (Graph's users/delta and groups/delta). The round walks the
 * change sequence in (seq, id) order; the final page returns a deltaLink whose token
 * resumes after the last change seen. Soft-deleted objects come as `@removed: changed`
 * (restorable), purged ones as `@removed: deleted`.
 */
export async function deltaPage(db: Db, tenantId: string, type: ObjectType, p: DeltaParams): Promise<{ items: Record<string, unknown>[]; next?: string; delta?: string }> {
  let st: DeltaState;
  const token = p.skiptoken ?? p.deltatoken;
  if (token !== undefined) {
    st = unb64<DeltaState>(token, p.skiptoken !== undefined ? '$skiptoken' : '$deltatoken');
    if (st?.t !== tenantId || st.o !== type || typeof st.s !== 'number' || typeof st.i !== 'string')
      throw badRequest('Invalid delta token: it does not belong to this tenant and resource. Start a new delta round without a token.', '$deltatoken');
    if (typeof st.at !== 'number' || typeof st.from !== 'number' || typeof st.init !== 'boolean' || (st.sel !== undefined && typeof st.sel !== 'string'))
      throw badRequest('Invalid delta token: the token is malformed. Start a new delta round without a token.', '$deltatoken');
    if (p.now.getTime() - st.at > p.tokenDays * 86_400_000)
      throw new NimbusError('gone', 'syncStateNotFound', `The delta token has expired (it is older than ${p.tokenDays} days). Start a new delta round without a token to get a full resync.`);
    if (p.deltatoken !== undefined) st = { ...st, from: st.s, init: false, at: p.now.getTime() };
    if (p.select !== undefined && p.select !== st.sel)
      throw badRequest('Invalid delta request: $select cannot change within a delta round; the token remembers the original $select.', '$select');
  } else {
    st = { t: tenantId, o: type, s: 0, i: '', from: 0, init: true, at: p.now.getTime(), ...(p.select !== undefined ? { sel: p.select } : {}) };
  }
  const wantMembers = type === 'group' && (st.sel ?? '').split(',').some((s) => s.trim().toLowerCase() === 'members');
  const selText = wantMembers ? (st.sel ?? '').split(',').filter((s) => s.trim().toLowerCase() !== 'members').join(',') || 'id' : st.sel;
  const select = parseSelect(type, selText);
  const table = tableOf(type);

  const after = sql<SqlBool>`(seq > ${st.s} or (seq = ${st.s} and id > ${st.i}))`;
  const cols = columnsFor(select, wantMembers ? ['seq', 'deleted_at', 'members_since'] : ['seq', 'deleted_at']);
  let q = db.selectFrom(table).select(cols.map((c) => sql.ref(c).as(c))).where('tenant_id', '=', tenantId).where(after);
  if (st.init) q = q.where('deleted_at', 'is', null);
  const rows = (await q.orderBy('seq').orderBy('id').limit(p.pageSize + 1).execute()) as Record<string, unknown>[];
  const removed = st.init
    ? []
    : await db
        .selectFrom('removed_objects')
        .select(['id', 'seq'])
        .where('tenant_id', '=', tenantId)
        .where('object_type', '=', type)
        .where(after)
        .orderBy('seq')
        .orderBy('id')
        .limit(p.pageSize + 1)
        .execute();

  type Entry = { seq: number; id: string; row?: Record<string, unknown> };
  const merged: Entry[] = [
    ...rows.map((r) => ({ seq: Number(r.seq), id: r.id as string, row: r })),
    ...removed.map((r) => ({ seq: Number(r.seq), id: r.id })),
  ].sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const more = merged.length > p.pageSize;
  const page = merged.slice(0, p.pageSize);

  const items: Record<string, unknown>[] = [];
  for (const e of page) {
    if (!e.row) {
      items.push({ id: e.id, '@removed': { reason: 'deleted' } });
    } else if (e.row.deleted_at !== null) {
      items.push({ id: e.id, '@removed': { reason: 'changed' } });
    } else {
      const o = toGraph(e.row, select);
      // A round from before the group's members_since (migration 0012) gets its members whole.
      const since = e.row.members_since === null || e.row.members_since === undefined ? null : Number(e.row.members_since);
      const from = st.init || (since !== null && st.from < since) ? null : st.from;
      if (wantMembers) o['members@delta'] = await membersDelta(db, tenantId, e.id, from, Number(e.row.seq));
      items.push(o);
    }
  }
  const last = page[page.length - 1];
  const nextState: DeltaState = last ? { ...st, s: last.seq, i: last.id } : st;
  return more ? { items, next: b64(nextState) } : { items, delta: b64(nextState) };
}

async function membersDelta(db: Db, tenantId: string, groupId: string, from: number | null, upTo: number) {
  const typeName = (t: string) => (t === 'group' ? '#microsoft.graph.group' : '#microsoft.graph.user');
  if (from === null) {
    const ms = await db.selectFrom('memberships').select(['member_id', 'member_type']).where('tenant_id', '=', tenantId).where('group_id', '=', groupId).execute();
    return ms.map((m) => ({ '@odata.type': typeName(m.member_type), id: m.member_id }));
  }
  const cs = await db
    .selectFrom('membership_changes')
    .select(['member_id', 'member_type', 'removed', 'seq'])
    .where('tenant_id', '=', tenantId)
    .where('group_id', '=', groupId)
    .where('seq', '>', from)
    .where('seq', '<=', upTo)
    .orderBy('seq')
    .execute();
  // Only the last change per member counts.
  const last = new Map<string, (typeof cs)[number]>();
  for (const c of cs) last.set(c.member_id, c);
  return [...last.values()].map((c) =>
    c.removed ? { '@odata.type': typeName(c.member_type), id: c.member_id, '@removed': { reason: 'deleted' } } : { '@odata.type': typeName(c.member_type), id: c.member_id },
  );
}
