// What one sync batch reads, fetched up front: one query per kind for the whole batch (rows by
// source anchor, address holders, references, soft-match candidates) instead of several per
// object. Writes in the batch keep it in step (the apply reports each write here); after a
// rolled-back object it is dropped and reads go to the database again, so it never answers
// from a state the database does not hold.
import { sql, type Kysely } from 'kysely';
import { asciiLower, primarySmtp } from '../../shared/upn.ts';
import type { Database, GroupTable, UserTable } from '../store/schema.ts';
import { addressClaims } from '../services/objects.ts';
import type { SyncItem, SyncUserAttributes } from './sync-wire.ts';

type Db = Kysely<Database>;
export type ObjectRef = { id: string; type: 'user' | 'group' };

/** Rows per IN (...) list: well under SQLite's and PostgreSQL's parameter limits. */
const CHUNK = 500;
/** IN-list lengths: a shorter list is padded (its last value again) to the next of these. */
const LIST_LENGTHS = [8, 32, 128, CHUNK] as const;

/**
 * The values in IN-list chunks of a few fixed lengths, so each query has a few statement shapes
 * in the prepared-statement cache instead of one per list length (repeating a value in an IN
 * list changes nothing).
 */
export function chunks<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) {
    const chunk = xs.slice(i, i + CHUNK);
    const length = LIST_LENGTHS.find((n) => n >= chunk.length)!;
    while (chunk.length < length) chunk.push(chunk[chunk.length - 1]!);
    out.push(chunk);
  }
  return out;
}

/**
 * Users and groups with these source anchors, live ones only unless `withDeleted`: users first,
 * then groups for the anchors no user holds (an anchor belongs to one object, so a group's
 * members, mostly users, cost one lookup each instead of two).
 */
export async function objectsByAnchor(db: Db, tenantId: string, anchors: readonly string[], withDeleted = false): Promise<Map<string, ObjectRef>> {
  const out = new Map<string, ObjectRef>();
  const users = new Set<string>();
  for (const type of ['user', 'group'] as const) {
    const wanted = type === 'user' ? anchors : anchors.filter((a) => !users.has(a));
    for (const chunk of chunks(wanted)) {
      // deleted_at is checked here, not in SQL: with it in the WHERE clause SQLite's planner
      // picks the (tenant_id, deleted_at) index and scans every live object.
      const rows = await db
        .selectFrom(type === 'user' ? 'users' : 'groups')
        .select(['id', 'immutable_id', 'deleted_at'])
        .where('tenant_id', '=', tenantId)
        .where('immutable_id', 'in', chunk)
        .execute();
      for (const r of rows) {
        if (type === 'user') users.add(r.immutable_id!);
        if (withDeleted || r.deleted_at === null) out.set(r.immutable_id!, { id: r.id, type });
      }
    }
  }
  return out;
}

export class BatchCache {
  /** Rows by source anchor (deleted ones too); null = no such row. */
  private readonly users = new Map<string, UserTable | null>();
  private readonly groups = new Map<string, GroupTable | null>();
  /** Live objects by source anchor, for manager and member references; null = none. */
  private readonly refs = new Map<string, ObjectRef | null>();
  /** Address -> holding object id; null = free. */
  private readonly holders = new Map<string, string | null>();
  /** Object id -> the addresses it holds, for objects of this batch that existed before it. */
  private readonly held = new Map<string, Set<string>>();
  /** Lower-cased UPNs that may belong to a live user (a superset: a hit is checked in SQL). */
  private readonly maybeUpns = new Set<string>();
  private valid = true;
  /**
   * Called before any read that goes to the database: the batch may hold writes not yet made
   * (the sync service's buffered inserts), which the read must see.
   */
  beforeRead: () => Promise<void> = async () => {};

  private constructor(
    private readonly db: Db,
    private readonly tenantId: string,
  ) {}

  /**
   * Fetches what `items` will read. `cloudUpn` is the UPN a user will claim in the cloud (the
   * fallback UPN for an unverified suffix), fetched beside its on-premises UPN. `wholeMembers`
   * tells which groups' members to fetch (given the group's row, null for none): those whose
   * whole list is resolved, as a group created by this call is; a group that applies its list
   * by difference resolves only the members it gains (an all-users group of 100k, one member
   * changed, would otherwise look up 100k anchors to use one).
   */
  static async load(db: Db, tenantId: string, items: readonly SyncItem[], cloudUpn: (a: SyncUserAttributes) => string, wholeMembers: (group: GroupTable | null) => boolean = () => true): Promise<BatchCache> {
    const c = new BatchCache(db, tenantId);
    const anchors = [...new Set(items.map((i) => i.sourceAnchor))];
    const refAnchors = new Set<string>();
    const addresses = new Set<string>();
    const upns = new Set<string>();
    for (const i of items) {
      if (i.op !== 'upsert') continue;
      const a = i.attributes as { userPrincipalName?: string; mail?: string | null; proxyAddresses?: string[]; manager?: string | null; members?: string[] };
      if (a.manager) refAnchors.add(a.manager);
      for (const claim of addressClaims({ upn: a.userPrincipalName ?? null, mail: a.mail ?? null, proxyAddresses: a.proxyAddresses ?? [] })) addresses.add(claim.address);
      const smtp = primarySmtp(a.proxyAddresses ?? []) ?? a.mail;
      if (smtp) addresses.add(asciiLower(smtp));
      if (i.type === 'user' && a.userPrincipalName) upns.add(asciiLower(a.userPrincipalName));
      if (i.type === 'user') addresses.add(asciiLower(cloudUpn(i.attributes)));
    }
    const T = tenantId;
    for (const chunk of chunks(anchors)) {
      for (const r of await db.selectFrom('users').selectAll().where('tenant_id', '=', T).where('immutable_id', 'in', chunk).execute()) c.users.set(r.immutable_id!, r);
      for (const r of await db.selectFrom('groups').selectAll().where('tenant_id', '=', T).where('immutable_id', 'in', chunk).execute()) c.groups.set(r.immutable_id!, r);
    }
    for (const a of anchors) {
      if (!c.users.has(a)) c.users.set(a, null);
      if (!c.groups.has(a)) c.groups.set(a, null);
    }
    for (const i of items) if (i.op === 'upsert' && i.type === 'group' && i.attributes.members?.length && wholeMembers(c.groups.get(i.sourceAnchor)!)) for (const m of i.attributes.members) refAnchors.add(m);
    // References: the batch's own objects are known now; the rest in one query per chunk.
    const unknown: string[] = [];
    for (const a of refAnchors) {
      const own = c.users.get(a) ?? c.groups.get(a);
      if (own !== undefined) c.refs.set(a, own && own.deleted_at === null ? { id: own.id, type: c.users.get(a) ? 'user' : 'group' } : null);
      else unknown.push(a);
    }
    const found = await objectsByAnchor(db, T, unknown);
    for (const a of unknown) c.refs.set(a, found.get(a) ?? null);
    // Addresses the batch claims, and what its existing objects hold now.
    const existing = [...c.users.values(), ...c.groups.values()].filter((r) => r !== null).map((r) => r.id);
    for (const chunk of chunks(existing)) {
      for (const r of await db.selectFrom('addresses').select(['address', 'object_id']).where('tenant_id', '=', T).where('object_id', 'in', chunk).execute()) {
        c.holders.set(r.address, r.object_id);
        let s = c.held.get(r.object_id);
        if (!s) c.held.set(r.object_id, (s = new Set()));
        s.add(r.address);
      }
    }
    for (const id of existing) if (!c.held.has(id)) c.held.set(id, new Set());
    for (const chunk of chunks([...addresses].filter((a) => !c.holders.has(a)))) {
      for (const r of await db.selectFrom('addresses').select(['address', 'object_id']).where('tenant_id', '=', T).where('address', 'in', chunk).execute()) c.holders.set(r.address, r.object_id);
      for (const a of chunk) if (!c.holders.has(a)) c.holders.set(a, null);
    }
    for (const chunk of chunks([...upns])) {
      const rows = await db
        .selectFrom('users')
        .select(sql<string>`lower(upn)`.as('u'))
        .where('tenant_id', '=', T)
        .where(sql<boolean>`lower(upn) in (${sql.join(chunk)})`)
        .execute();
      for (const r of rows) c.maybeUpns.add(r.u);
    }
    return c;
  }

  /** The row with this source anchor (deleted too), from the cache or the database. */
  async user(anchor: string): Promise<UserTable | undefined> {
    const hit = this.valid ? this.users.get(anchor) : undefined;
    if (hit !== undefined) return hit ?? undefined;
    await this.beforeRead();
    return this.db.selectFrom('users').selectAll().where('tenant_id', '=', this.tenantId).where('immutable_id', '=', anchor).executeTakeFirst();
  }

  async group(anchor: string): Promise<GroupTable | undefined> {
    const hit = this.valid ? this.groups.get(anchor) : undefined;
    if (hit !== undefined) return hit ?? undefined;
    await this.beforeRead();
    return this.db.selectFrom('groups').selectAll().where('tenant_id', '=', this.tenantId).where('immutable_id', '=', anchor).executeTakeFirst();
  }

  /** Live users and groups by source anchor. */
  async resolve(anchors: readonly string[]): Promise<Map<string, ObjectRef>> {
    const missing: string[] = [];
    const cached = new Map<string, ObjectRef>();
    for (const a of anchors) {
      const hit = this.valid ? this.refs.get(a) : undefined;
      if (hit === undefined) missing.push(a);
      else if (hit) cached.set(a, hit);
    }
    if (missing.length) await this.beforeRead();
    const out = await objectsByAnchor(this.db, this.tenantId, missing);
    for (const [a, ref] of cached) out.set(a, ref);
    return out;
  }

  /** Which object holds `address` (lower-cased), or null. */
  async holder(address: string): Promise<string | null> {
    const hit = this.valid ? this.holders.get(address) : undefined;
    if (hit !== undefined) return hit;
    await this.beforeRead();
    const r = await this.db.selectFrom('addresses').select('object_id').where('tenant_id', '=', this.tenantId).where('address', '=', address).executeTakeFirst();
    return r?.object_id ?? null;
  }

  /** The addresses `id` holds; undefined when not known here (ask the database). */
  heldBy(id: string): ReadonlySet<string> | undefined {
    return this.valid ? this.held.get(id) : undefined;
  }

  /** False when no live user can have this UPN; true means "look in the database". */
  mayHoldUpn(upn: string): boolean {
    return !this.valid || this.maybeUpns.has(asciiLower(upn));
  }

  // ---- writes of the batch, mirrored

  /** `id` (of `type`, with `anchor`; `existed` before this write) now holds exactly `addresses` and is live or deleted. */
  wrote(type: 'user' | 'group', anchor: string, id: string, addresses: readonly string[], live: boolean, existed: boolean, upn?: string): void {
    if (!this.valid) return;
    const before = this.held.get(id);
    if (before) for (const a of before) if (this.holders.get(a) === id) this.holders.set(a, null);
    // An object that existed but was not fetched (a soft-match target): forget what it held.
    else if (existed) for (const [a, h] of this.holders) if (h === id) this.holders.delete(a);
    for (const a of addresses) this.holders.set(a, id);
    this.held.set(id, new Set(addresses));
    // The row changed: read it again if the batch names it twice.
    (type === 'user' ? this.users : this.groups).delete(anchor);
    this.refs.set(anchor, live ? { id, type } : null);
    if (upn) this.maybeUpns.add(asciiLower(upn));
  }

  /** An object was rolled back: the cache may no longer match the database. */
  invalidate(): void {
    this.valid = false;
  }
}
