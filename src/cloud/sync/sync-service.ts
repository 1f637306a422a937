// The cloud side of directory sync (what Entra does for Connect): takes batches of objects
// keyed by source anchor and applies hard match, soft match, UPN fallback and duplicate-
// attribute resiliency, recording provisioning errors that heal by themselves.
import { sql, type Insertable, type Kysely } from 'kysely';
import { badRequest, forbidden, NimbusError } from '../../shared/errors.ts';
import { asciiLower, primarySmtp, smtpAddress } from '../../shared/upn.ts';
import { ERRORED } from '../store/migrations/0013-errored-index.ts';
import type { Database, GroupTable, UserTable } from '../store/schema.ts';
import { recordAudit } from '../services/audit.ts';
import { isSync, type Actor, type Deps } from '../services/context.ts';
import { addressClaims, conflictWith, nextSeq, type AddressClaim, type AddressConflict } from '../services/objects.ts';
import { likeEscape } from '../services/query.ts';
import { defaultSyncFeatures } from '../services/tenants.ts';
import { insertRow, insertRows, updateObject } from '../store/compiled.ts';
import { BatchCache, chunks, objectsByAnchor } from './batch-cache.ts';
import { decideUpn, placeholderUpn, syncMailNickname } from './rules.ts';
import { createSyncRunService } from './sync-runs.ts';
import { MAX_SYNC_BATCH, parseItem, type MatchKind, type ProvisioningError, type SyncGroupAttributes, type SyncItem, type SyncResult, type SyncUserAttributes } from './sync-wire.ts';
import { objectId } from '../services/ids.ts';

type Db = Kysely<Database>;

type Features = typeof defaultSyncFeatures;

/**
 * JSON with sorted top-level keys, so equal attributes compare equal however they were
 * ordered. (Not JSON.stringify's key-list replacer: that list would filter nested objects'
 * keys as well.)
 */
export function stableJson(o: Record<string, unknown>, omit?: string): string {
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(o).sort()) if (k !== omit) sorted[k] = o[k];
  return JSON.stringify(sorted);
}

/**
 * Rows of created users and their addresses, inserted many per statement when the batch next
 * reads the database (or at its end) instead of one statement (and one trip through Kysely and
 * the driver) per object: 5-6% of the apply of 100k new users. Only the straight try buffers;
 * the careful path writes each object under its own savepoint.
 */
type WriteBuffer = { users: Insertable<UserTable>[]; addresses: Insertable<Database['addresses']>[] };
const FLUSH_ROWS = 256;

// ---- the service ------------------------------------------------------------------------

export function createSyncService(deps: Deps) {
  const { db, clock } = deps;

  async function context(tenantId: string) {
    const t = await db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirstOrThrow();
    const verified = new Set((await db.selectFrom('domains').select('name').where('tenant_id', '=', tenantId).where('is_verified', '=', 1).execute()).map((d) => d.name));
    const features = { ...defaultSyncFeatures, ...(JSON.parse(t.sync_features) as Partial<Features>) };
    /** Addresses given up during this call; objects whose errors name them may heal. */
    const released = new Set<string>();
    /** Change numbers for this call; applyAll takes a block at the start of its transaction. */
    const seq = { value: 0 };
    /** The running batch's reads (set by applyAll). */
    const batch = { cache: undefined as unknown as BatchCache, upserted: new Set<string>() };
    /** Groups this call created (its first pass); their first members need no change-log rows. */
    const createdGroups = new Set<string>();
    /** Inserts of created users and their addresses not made yet (the straight try only); see flushWrites. */
    const writes = { buffer: null as WriteBuffer | null };
    return { t, verified, features, released, seq, nextSeq: () => ++seq.value, batch, createdGroups, writes };
  }
  type Ctx = Awaited<ReturnType<typeof context>>;

  const keepTime = (prev: ProvisioningError[], e: Omit<ProvisioningError, 'occurredDateTime'>, now: string): ProvisioningError => ({
    ...e,
    occurredDateTime: prev.find((p) => p.propertyCausingError === e.propertyCausingError && p.value === e.value)?.occurredDateTime ?? now,
  });

  /** Makes the buffered inserts (before a read that must see them, and before commit). */
  async function flushWrites(trx: Db, ctx: Ctx): Promise<void> {
    const b = ctx.writes.buffer;
    if (!b || (b.users.length === 0 && b.addresses.length === 0)) return;
    const { users, addresses } = b;
    b.users = [];
    b.addresses = [];
    await insertRows(trx, 'addresses', addresses, { ignoreConflicts: true });
    await insertRows(trx, 'users', users);
  }

  /** Which of the claims another object holds (the batch cache answers; names from the database). */
  async function conflictsOf(trx: Db, ctx: Ctx, selfId: string, claims: readonly AddressClaim[]): Promise<AddressConflict[]> {
    const out: AddressConflict[] = [];
    for (const claim of claims) {
      const other = await ctx.batch.cache.holder(claim.address);
      if (other === null || other === selfId) continue;
      await flushWrites(trx, ctx);
      out.push(await conflictWith(trx, ctx.t.id, claim, other));
    }
    return out;
  }

  /** Resolves address conflicts by leaving values off (and a placeholder UPN), with errors. */
  async function resolveConflicts(
    trx: Db,
    ctx: Ctx,
    selfId: string,
    want: { upn?: string; mail: string | null; proxies: string[] },
    prevErrors: ProvisioningError[],
    prevUpn: string | null,
    now: string,
  ) {
    const errors: ProvisioningError[] = [];
    const claims = addressClaims({ upn: want.upn ?? null, mail: want.mail, proxyAddresses: want.proxies });
    const conflicts = await conflictsOf(trx, ctx, selfId, claims);
    const conflictFor = (address: string) => conflicts.find((c) => c.claim.address === asciiLower(address));
    let upn = want.upn;
    if (upn !== undefined) {
      const c = conflictFor(upn);
      if (c) {
        errors.push(keepTime(prevErrors, { category: 'PropertyConflict', propertyCausingError: 'UserPrincipalName', value: upn, conflictingObjectId: c.otherId, conflictingObjectDisplayName: c.otherName }, now));
        // Keep an earlier placeholder while the conflict lasts, so the UPN does not churn.
        const prefix = upn.split('@')[0]!.slice(0, 59);
        const keep = prevUpn && new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\d{4}@${ctx.t.initial_domain.replace(/\./g, '\\.')}$`, 'i').test(prevUpn);
        upn = keep ? prevUpn : undefined;
        for (let i = 0; upn === undefined && i < 20; i++) {
          const candidate = placeholderUpn(want.upn!, ctx.t.initial_domain);
          if ((await conflictsOf(trx, ctx, selfId, [{ address: asciiLower(candidate), property: 'userPrincipalName' }])).length === 0) upn = candidate;
        }
        if (upn === undefined) throw new NimbusError('conflict', 'PlaceholderExhausted', `No free placeholder UPN for ${want.upn}.`);
      }
    }
    let mail = want.mail;
    if (mail) {
      const c = conflictFor(mail);
      // The object's own UPN may equal its mail; only another object's claim is a conflict.
      if (c) {
        errors.push(keepTime(prevErrors, { category: 'PropertyConflict', propertyCausingError: 'Mail', value: mail, conflictingObjectId: c.otherId, conflictingObjectDisplayName: c.otherName }, now));
        mail = null;
      }
    }
    const proxies: string[] = [];
    for (const p of want.proxies) {
      const a = smtpAddress(p);
      const c = a ? conflictFor(a) : undefined;
      if (c) errors.push(keepTime(prevErrors, { category: 'PropertyConflict', propertyCausingError: 'ProxyAddresses', value: p, conflictingObjectId: c.otherId, conflictingObjectDisplayName: c.otherName }, now));
      else proxies.push(p);
    }
    return { upn, mail, proxies, errors };
  }

  /**
   * Makes object `id` hold exactly `claims` (conflicts were resolved already), writing only
   * the difference; addresses it gives up may heal other objects' conflicts.
   */
  async function writeAddresses(trx: Db, ctx: Ctx, type: 'user' | 'group', anchor: string, id: string, existed: boolean, claims: readonly AddressClaim[], live: boolean, upn?: string): Promise<void> {
    const T = ctx.t.id;
    const want = new Set(claims.map((c) => c.address));
    let held: ReadonlySet<string> = new Set();
    if (existed) held = ctx.batch.cache.heldBy(id) ?? new Set((await trx.selectFrom('addresses').select('address').where('tenant_id', '=', T).where('object_id', '=', id).execute()).map((r) => r.address));
    const drop = [...held].filter((a) => !want.has(a));
    const add = [...want].filter((a) => !held.has(a));
    for (const a of drop) ctx.released.add(a);
    if (drop.length) await trx.deleteFrom('addresses').where('tenant_id', '=', T).where('object_id', '=', id).where('address', 'in', drop).execute();
    const rows = add.map((address) => ({ tenant_id: T, address, object_id: id }));
    if (type === 'user' && !existed && ctx.writes.buffer) ctx.writes.buffer.addresses.push(...rows);
    else await insertRows(trx, 'addresses', rows, { ignoreConflicts: true });
    ctx.batch.cache.wrote(type, anchor, id, [...want], live, existed, upn);
  }

  /** Records references whose target is not in the cloud yet; they are set when it arrives. */
  async function deferReferences(trx: Db, ctx: Ctx, sourceId: string, kind: 'manager' | 'member', anchors: readonly string[]): Promise<void> {
    for (let i = 0; i < anchors.length; i += 200) {
      const chunk = anchors.slice(i, i + 200);
      await insertRows(trx, 'sync_pending_refs', chunk.map((target_anchor) => ({ tenant_id: ctx.t.id, target_anchor, source_id: sourceId, kind })), { ignoreConflicts: true });
    }
  }

  /**
   * Adds members to a group (one change number), recording the change for delta queries unless
   * `logged` is false (a new group's first members: its members_since says so instead).
   */
  async function addMembers(trx: Db, ctx: Ctx, groupId: string, add: readonly (readonly [string, 'user' | 'group'])[], seq: number, logged = true): Promise<void> {
    const T = ctx.t.id;
    for (let i = 0; i < add.length; i += 500) {
      const chunk = add.slice(i, i + 500);
      await insertRows(trx, 'memberships', chunk.map(([mid, t]) => ({ tenant_id: T, group_id: groupId, member_id: mid, member_type: t })), { ignoreConflicts: true });
      if (logged) await insertRows(trx, 'membership_changes', chunk.map(([mid, t]) => ({ tenant_id: T, seq, group_id: groupId, member_id: mid, member_type: t, removed: 0 })));
    }
  }

  /**
   * References waiting for objects this batch brought into the cloud: managers and members
   * are set now. A waiting reference its holder no longer wants (a changed manager, a
   * deleted holder) is dropped instead.
   */
  async function resolveDeferred(trx: Db, ctx: Ctx, now: string): Promise<void> {
    const T = ctx.t.id;
    await flushWrites(trx, ctx);
    const anchors = [...ctx.batch.upserted];
    for (let i = 0; i < anchors.length; i += 500) {
      const chunk = anchors.slice(i, i + 500);
      const waiting = await trx.selectFrom('sync_pending_refs').selectAll().where('tenant_id', '=', T).where('target_anchor', 'in', chunk).execute();
      if (waiting.length === 0) continue;
      const targets = await ctx.batch.cache.resolve([...new Set(waiting.map((w) => w.target_anchor))]);
      const members = new Map<string, [string, 'user' | 'group'][]>();
      for (const w of waiting) {
        const target = targets.get(w.target_anchor);
        if (!target) continue;
        if (w.kind === 'manager') {
          const u = await trx.selectFrom('users').select(['id', 'sync_desired', 'manager_id', 'deleted_at']).where('tenant_id', '=', T).where('id', '=', w.source_id).executeTakeFirst();
          const wants = u?.sync_desired ? (JSON.parse(u.sync_desired) as SyncUserAttributes).manager : undefined;
          if (u && u.deleted_at === null && wants === w.target_anchor && target.type === 'user' && u.manager_id !== target.id)
            await updateObject(trx, 'users', T, u.id, { manager_id: target.id, seq: ctx.nextSeq(), on_prem_last_sync_at: now });
        } else if (target.id !== w.source_id) {
          const list = members.get(w.source_id) ?? [];
          list.push([target.id, target.type]);
          members.set(w.source_id, list);
        }
      }
      for (const [groupId, want] of members) {
        const g = await trx.selectFrom('groups').select(['id', 'deleted_at']).where('tenant_id', '=', T).where('id', '=', groupId).executeTakeFirst();
        if (!g || g.deleted_at !== null) continue;
        const have = new Set((await trx.selectFrom('memberships').select('member_id').where('tenant_id', '=', T).where('group_id', '=', groupId).where('member_id', 'in', want.map(([m]) => m)).execute()).map((r) => r.member_id));
        const add = want.filter(([m]) => !have.has(m));
        if (add.length === 0) continue;
        const seq = ctx.nextSeq();
        await addMembers(trx, ctx, groupId, add, seq);
        await trx.updateTable('groups').set({ seq, on_prem_last_sync_at: now }).where('tenant_id', '=', T).where('id', '=', groupId).execute();
      }
      const settled = [...new Set(waiting.map((w) => w.target_anchor))].filter((a) => targets.has(a));
      if (settled.length) await trx.deleteFrom('sync_pending_refs').where('tenant_id', '=', T).where('target_anchor', 'in', settled).execute();
    }
  }

  async function upsertUser(trx: Db, ctx: Ctx, anchorValue: string, a: SyncUserAttributes, now: string): Promise<SyncResult> {
    const T = ctx.t.id;
    const base: SyncResult = { sourceAnchor: anchorValue, type: 'user', status: 'unchanged' };
    const cache = ctx.batch.cache;
    let row: UserTable | undefined = await cache.user(anchorValue);
    let match: MatchKind = 'new';
    let refused: string | undefined;
    if (row) {
      match = (row.sync_match as MatchKind | null) ?? 'hard';
      if (row.on_prem_sync_enabled !== 1 && !row.sync_match && ctx.features.blockCloudObjectTakeoverThroughHardMatchEnabled)
        return { ...base, status: 'error', id: row.id, provisioningErrors: [{ category: 'InvalidHardMatch', propertyCausingError: 'SourceAnchor', value: anchorValue, occurredDateTime: now }], message: `Hard match onto cloud user ${row.upn} is blocked by the tenant setting blockCloudObjectTakeoverThroughHardMatchEnabled.` };
    } else {
      const g = await cache.group(anchorValue);
      if (g) return { ...base, status: 'error', provisioningErrors: [{ category: 'ObjectTypeMismatch', propertyCausingError: 'SourceAnchor', value: anchorValue, occurredDateTime: now, conflictingObjectId: g.id, conflictingObjectDisplayName: g.display_name }], message: `Source anchor ${anchorValue} belongs to group '${g.display_name}' in the cloud; an on-premises user cannot take it over.` };
      // Soft match: a cloud-only user with the same UPN or primary SMTP address.
      if (!ctx.features.blockSoftMatchEnabled) {
        const candidates: { row: UserTable; kind: MatchKind }[] = [];
        if (ctx.features.softMatchOnUpnEnabled && a.userPrincipalName && cache.mayHoldUpn(a.userPrincipalName)) {
          await flushWrites(trx, ctx);
          const u = await trx.selectFrom('users').selectAll().where('tenant_id', '=', T).where(sql<boolean>`lower(upn) = ${asciiLower(a.userPrincipalName)}`).where('deleted_at', 'is', null).executeTakeFirst();
          if (u) candidates.push({ row: u, kind: 'soft-upn' });
        }
        const smtp = primarySmtp(a.proxyAddresses ?? []) ?? a.mail ?? null;
        if (smtp) {
          const holder = await cache.holder(asciiLower(smtp));
          if (holder) await flushWrites(trx, ctx);
          const u = holder ? await trx.selectFrom('users').selectAll().where('tenant_id', '=', T).where('id', '=', holder).where('deleted_at', 'is', null).executeTakeFirst() : undefined;
          if (u && !candidates.some((c) => c.row.id === u.id)) candidates.push({ row: u, kind: 'soft-smtp' });
        }
        for (const c of candidates) {
          if (c.row.immutable_id || c.row.on_prem_sync_enabled === 1) {
            refused = `cloud user ${c.row.upn} is already synced with another source anchor`;
            continue;
          }
          const roles = await trx.selectFrom('role_assignments').select('role_template_id').where('tenant_id', '=', T).where('principal_id', '=', c.row.id).execute();
          if (roles.length > 0) {
            // Never take over an administrator by soft match (Entra's rule).
            refused = `cloud user ${c.row.upn} holds an administrator role`;
            continue;
          }
          row = c.row;
          match = c.kind;
          refused = undefined;
          break;
        }
      } else {
        refused = undefined;
      }
    }

    const nick = syncMailNickname(a);
    const upnDecision = decideUpn(a, ctx.verified, ctx.t.initial_domain);
    const id = row?.id ?? objectId();
    const prevErrors = row ? (JSON.parse(row.on_prem_provisioning_errors) as ProvisioningError[]) : [];
    const r = await resolveConflicts(trx, ctx, id, { upn: upnDecision.upn, mail: a.mail ?? null, proxies: a.proxyAddresses ?? [] }, prevErrors, row?.upn ?? null, now);

    const unresolved: string[] = [];
    let managerId: string | null = null;
    if (a.manager) {
      const m = (await cache.resolve([a.manager])).get(a.manager);
      if (m?.type === 'user') managerId = m.id;
      else unresolved.push(a.manager);
    }
    const extraKeys = ['officeLocation', 'mobilePhone', 'businessPhones', 'city', 'state', 'country', 'streetAddress', 'postalCode'] as const;
    const extra = { ...(row ? (JSON.parse(row.extra) as Record<string, unknown>) : {}) };
    for (const k of extraKeys) if (a[k] !== undefined) extra[k] = a[k];
    const fields = {
      upn: r.upn!,
      display_name: a.displayName || a.onPremisesSamAccountName || nick,
      given_name: a.givenName ?? null,
      surname: a.surname ?? null,
      mail: r.mail,
      mail_nickname: nick,
      proxy_addresses: JSON.stringify(r.proxies),
      account_enabled: a.accountEnabled === false ? 0 : 1,
      job_title: a.jobTitle ?? null,
      department: a.department ?? null,
      company_name: a.companyName ?? null,
      employee_id: a.employeeId ?? null,
      usage_location: a.usageLocation ?? row?.usage_location ?? null,
      immutable_id: anchorValue,
      on_prem_sync_enabled: 1,
      on_prem_distinguished_name: a.onPremisesDistinguishedName ?? null,
      on_prem_sam_account_name: a.onPremisesSamAccountName ?? null,
      on_prem_security_identifier: a.onPremisesSecurityIdentifier ?? null,
      on_prem_domain_name: a.onPremisesDomainName ?? null,
      on_prem_user_principal_name: a.userPrincipalName ?? null,
      on_prem_provisioning_errors: JSON.stringify(r.errors),
      manager_id: managerId ?? (unresolved.length ? (row?.manager_id ?? null) : null),
      extra: JSON.stringify(extra),
      sync_desired: stableJson(a),
      sync_match: match,
      deleted_at: null as string | null,
    };
    // No properties after a spread in the objects made per object here: on Node 20 a literal
    // like { ...fields, seq } took 5-20 µs in a micro-benchmark, against ~1 µs with the spread
    // last ({ seq, ...fields }) and less with the properties set one by one.
    const result: SyncResult = { sourceAnchor: anchorValue, type: 'user', status: 'unchanged', id, match, userPrincipalName: fields.upn };
    if (refused) result.softMatchRefused = refused;
    if (r.errors.length) result.provisioningErrors = r.errors;
    if (unresolved.length) result.unresolvedReferences = unresolved;
    // A manager not in the cloud yet is set when it arrives (any batch, any order).
    if (unresolved.length) await deferReferences(trx, ctx, id, 'manager', unresolved);
    ctx.batch.upserted.add(anchorValue);
    const claims = addressClaims({ upn: fields.upn, mail: fields.mail, proxyAddresses: r.proxies });
    if (row) {
      const before = row as unknown as Record<string, unknown>;
      const changed = Object.entries(fields).some(([k, v]) => before[k] !== v);
      if (!changed) return result;
      await writeAddresses(trx, ctx, 'user', anchorValue, id, true, claims, true, fields.upn);
      const seq = ctx.nextSeq();
      await updateObject(trx, 'users', T, id, { seq, on_prem_last_sync_at: now, ...fields });
      result.status = row.deleted_at ? 'restored' : 'updated';
      return result;
    }
    await writeAddresses(trx, ctx, 'user', anchorValue, id, false, claims, true, fields.upn);
    const seq = ctx.nextSeq();
    const created = { tenant_id: T, id, seq, created_at: now, user_type: 'Member', password_hash: null, on_prem_last_sync_at: now, ...fields };
    const buffer = ctx.writes.buffer;
    if (!buffer) await insertRow(trx, 'users', created);
    // A few statements' worth at a time: rows held longer outlive the young heap and cost more to collect.
    else if (buffer.users.push(created) >= FLUSH_ROWS) await flushWrites(trx, ctx);
    result.status = 'created';
    return result;
  }

  type Member = readonly [id: string, type: 'user' | 'group'];

  /**
   * What a group's new member list (unique anchors) changes: members to add and remove (in id
   * order), the anchors not in the cloud yet (waiting in sync_pending_refs), and how many
   * membership rows the group had. By difference from the list it was last given when its rows
   * are as that list left them (sync_member_lists); else the whole list against every row.
   */
  async function memberPlan(trx: Db, ctx: Ctx, id: string, existed: boolean, members: readonly string[]): Promise<{ add: Member[]; remove: (readonly [id: string, type: string])[]; unresolved: string[]; before: number; changedList: boolean }> {
    const T = ctx.t.id;
    await flushWrites(trx, ctx);
    const pending = () => trx.deleteFrom('sync_pending_refs').where('tenant_id', '=', T).where('source_id', '=', id).where('kind', '=', 'member');
    const byId = ([a]: Member, [b]: Member) => (a < b ? -1 : a > b ? 1 : 0);
    const last = existed ? await trx.selectFrom('sync_member_lists').select(['anchors', 'member_count']).where('tenant_id', '=', T).where('group_id', '=', id).executeTakeFirst() : undefined;
    const rows = last ? Number((await trx.selectFrom('memberships').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', T).where('group_id', '=', id).executeTakeFirstOrThrow()).n) : -1;
    if (last && rows === last.member_count) {
      const before = JSON.parse(last.anchors) as string[];
      const prev = new Set(before);
      const next = new Set(members);
      const added = members.filter((m) => !prev.has(m));
      const dropped = before.filter((m) => !next.has(m));
      const add: Member[] = [];
      const remove: [string, string][] = [];
      if (added.length) {
        const found = await ctx.batch.cache.resolve(added);
        const fresh = added.filter((m) => !found.has(m));
        if (fresh.length) await deferReferences(trx, ctx, id, 'member', fresh);
        const ids = [...found.values()].filter((w) => w.id !== id);
        const held = new Set<string>();
        for (const chunk of chunks(ids.map((w) => w.id))) for (const r of await trx.selectFrom('memberships').select('member_id').where('tenant_id', '=', T).where('group_id', '=', id).where('member_id', 'in', chunk).execute()) held.add(r.member_id);
        for (const w of ids) if (!held.has(w.id)) add.push([w.id, w.type]);
      }
      if (dropped.length) {
        for (const chunk of chunks(dropped)) await pending().where('target_anchor', 'in', chunk).execute();
        // Live or not (a member deleted since still has its row here).
        const ids = [...(await objectsByAnchor(trx, T, dropped, true)).values()].map((o) => o.id);
        for (const chunk of chunks(ids)) for (const r of await trx.selectFrom('memberships').select(['member_id', 'member_type']).where('tenant_id', '=', T).where('group_id', '=', id).where('member_id', 'in', chunk).execute()) remove.push([r.member_id, r.member_type]);
      }
      const unresolved = (await trx.selectFrom('sync_pending_refs').select('target_anchor').where('tenant_id', '=', T).where('source_id', '=', id).where('kind', '=', 'member').execute()).map((r) => r.target_anchor);
      return { add: add.sort(byId), remove, unresolved, before: rows, changedList: added.length > 0 || dropped.length > 0 };
    }
    // The whole list against every row.
    const wanted = await ctx.batch.cache.resolve(members);
    const unresolved = members.filter((m) => !wanted.has(m));
    // Members not in the cloud yet are added when they arrive; this list replaces the last one.
    if (existed) await pending().execute();
    if (unresolved.length) await deferReferences(trx, ctx, id, 'member', unresolved);
    const current = await trx.selectFrom('memberships').select(['member_id', 'member_type']).where('tenant_id', '=', T).where('group_id', '=', id).execute();
    const want = new Map([...wanted.values()].filter((w) => w.id !== id).map((w) => [w.id, w.type]));
    const have = new Map(current.map((c) => [c.member_id, c.member_type]));
    // In id order: ids grow with time, so the rows land at the end of the membership indexes.
    const add = [...want].filter(([mid]) => !have.has(mid)).sort(byId);
    const remove = [...have].filter(([mid]) => !want.has(mid));
    return { add, remove, unresolved, before: current.length, changedList: true };
  }

  async function upsertGroup(trx: Db, ctx: Ctx, anchorValue: string, a: SyncGroupAttributes, now: string): Promise<SyncResult> {
    const T = ctx.t.id;
    const base: SyncResult = { sourceAnchor: anchorValue, type: 'group', status: 'unchanged' };
    const cache = ctx.batch.cache;
    let row: GroupTable | undefined = await cache.group(anchorValue);
    let match: MatchKind = 'new';
    if (row) {
      match = (row.sync_match as MatchKind | null) ?? 'hard';
    } else {
      const u = await cache.user(anchorValue);
      if (u) return { ...base, status: 'error', provisioningErrors: [{ category: 'ObjectTypeMismatch', propertyCausingError: 'SourceAnchor', value: anchorValue, occurredDateTime: now, conflictingObjectId: u.id, conflictingObjectDisplayName: u.upn }], message: `Source anchor ${anchorValue} belongs to user ${u.upn} in the cloud; an on-premises group cannot take it over.` };
      // Mail-enabled groups soft-match on proxy addresses; security groups never do.
      if (a.mailEnabled && !ctx.features.blockSoftMatchEnabled) {
        const smtps = (a.proxyAddresses ?? []).map(smtpAddress).filter((x): x is string => !!x).map(asciiLower);
        if (smtps.length) {
          await flushWrites(trx, ctx);
          const held = await trx.selectFrom('addresses').select('object_id').where('tenant_id', '=', T).where('address', 'in', smtps).execute();
          for (const h of held) {
            const g = await trx.selectFrom('groups').selectAll().where('tenant_id', '=', T).where('id', '=', h.object_id).where('deleted_at', 'is', null).executeTakeFirst();
            if (g && !g.immutable_id && g.on_prem_sync_enabled !== 1 && g.mail_enabled === 1) {
              row = g;
              match = 'soft-proxy';
              break;
            }
          }
        }
      }
    }
    const id = row?.id ?? objectId();
    const prevErrors = row ? (JSON.parse(row.on_prem_provisioning_errors) as ProvisioningError[]) : [];
    const r = await resolveConflicts(trx, ctx, id, { mail: a.mail ?? null, proxies: a.proxyAddresses ?? [] }, prevErrors, null, now);
    const nick = (a.mailNickname || a.onPremisesSamAccountName || syncMailNickname({ mail: a.mail ?? null, proxyAddresses: a.proxyAddresses ?? [] })).replace(/[\s@()\\[\]";:<>,]/g, '').slice(0, 64) || 'group';
    const fields = {
      display_name: a.displayName || a.onPremisesSamAccountName || nick,
      description: a.description ?? null,
      mail: r.mail,
      mail_nickname: nick,
      proxy_addresses: JSON.stringify(r.proxies),
      mail_enabled: a.mailEnabled ? 1 : 0,
      security_enabled: a.securityEnabled === false ? 0 : 1,
      immutable_id: anchorValue,
      on_prem_sync_enabled: 1,
      on_prem_sam_account_name: a.onPremisesSamAccountName ?? null,
      on_prem_security_identifier: a.onPremisesSecurityIdentifier ?? null,
      on_prem_domain_name: a.onPremisesDomainName ?? null,
      on_prem_net_bios_name: a.onPremisesNetBiosName ?? null,
      on_prem_provisioning_errors: JSON.stringify(r.errors),
      sync_desired: stableJson(a, 'members'),
      sync_match: match,
      deleted_at: null as string | null,
    };
    let status: SyncResult['status'] = 'unchanged';
    ctx.batch.upserted.add(anchorValue);
    const claims = addressClaims({ mail: fields.mail, proxyAddresses: r.proxies });
    if (row) {
      const before = row as unknown as Record<string, unknown>;
      if (Object.entries(fields).some(([k, v]) => before[k] !== v)) {
        await writeAddresses(trx, ctx, 'group', anchorValue, id, true, claims, true);
        const seq = ctx.nextSeq();
        await updateObject(trx, 'groups', T, id, { seq, on_prem_last_sync_at: now, ...fields });
        status = row.deleted_at ? 'restored' : 'updated';
      }
    } else {
      await writeAddresses(trx, ctx, 'group', anchorValue, id, false, claims, true);
      const seq = ctx.nextSeq();
      await insertRow(trx, 'groups', { tenant_id: T, id, seq, created_at: now, group_types: '[]', visibility: null, extra: '{}', on_prem_last_sync_at: now, ...fields });
      ctx.createdGroups.add(id);
      status = 'created';
    }
    let unresolved: string[] = [];
    if (a.members !== undefined) {
      const members = [...new Set(a.members)];
      const plan = await memberPlan(trx, ctx, id, !!row, members);
      unresolved = plan.unresolved;
      const { add, remove } = plan;
      if (add.length || remove.length) {
        const seq = ctx.nextSeq();
        // A group this call created gets its first members unlogged: a delta round from before
        // `seq` reads them whole (members_since), one from after it reads the log.
        const first = plan.before === 0 && ctx.createdGroups.has(id);
        await addMembers(trx, ctx, id, add, seq, !first);
        for (let i = 0; i < remove.length; i += 200) {
          const chunk = remove.slice(i, i + 200);
          await trx.deleteFrom('memberships').where('tenant_id', '=', T).where('group_id', '=', id).where('member_id', 'in', chunk.map(([mid]) => mid)).execute();
          await insertRows(trx, 'membership_changes', chunk.map(([mid, t]) => ({ tenant_id: T, seq, group_id: id, member_id: mid, member_type: t, removed: 1 })));
        }
        await trx.updateTable('groups').set({ seq, on_prem_last_sync_at: now, ...(first ? { members_since: seq } : {}) }).where('tenant_id', '=', T).where('id', '=', id).execute();
        if (status === 'unchanged') status = 'updated';
      }
      if (plan.changedList || add.length || remove.length) {
        const list = { anchors: JSON.stringify(members), member_count: plan.before + add.length - remove.length };
        await trx.insertInto('sync_member_lists').values({ tenant_id: T, group_id: id, ...list }).onConflict((oc) => oc.columns(['tenant_id', 'group_id']).doUpdateSet(list)).execute();
      }
    }
    const result: SyncResult = { sourceAnchor: anchorValue, type: 'group', status, id, match };
    if (r.errors.length) result.provisioningErrors = r.errors;
    if (unresolved.length) result.unresolvedReferences = unresolved;
    return result;
  }

  async function remove(trx: Db, ctx: Ctx, type: 'user' | 'group', anchorValue: string, now: string): Promise<SyncResult> {
    const table = type === 'user' ? 'users' : 'groups';
    const row = type === 'user' ? await ctx.batch.cache.user(anchorValue) : await ctx.batch.cache.group(anchorValue);
    if (!row || row.deleted_at) return { sourceAnchor: anchorValue, type, status: 'not-found' };
    const seq = ctx.nextSeq();
    // Out of scope or deleted on-premises: soft delete, restorable for 30 days.
    await trx.updateTable(table).set({ deleted_at: now, seq, on_prem_last_sync_at: now }).where('tenant_id', '=', ctx.t.id).where('id', '=', row.id).execute();
    await writeAddresses(trx, ctx, type, anchorValue, row.id, true, [], false);
    return { sourceAnchor: anchorValue, type, status: 'deleted', id: row.id };
  }

  function applyItem(trx: Db, ctx: Ctx, item: SyncItem, now: string): Promise<SyncResult> {
    if (item.op === 'delete') return remove(trx, ctx, item.type, item.sourceAnchor, now);
    return item.type === 'user' ? upsertUser(trx, ctx, item.sourceAnchor, item.attributes, now) : upsertGroup(trx, ctx, item.sourceAnchor, item.attributes, now);
  }

  /**
   * Applies items in one transaction (one commit per batch, not per object). The first try
   * runs the batch straight through; an object that fails sends the whole batch back through
   * the careful path, where each object runs under its own savepoint and a failing one is
   * rolled back alone and becomes its error. (A savepoint per object costs three statements
   * and a copy of every page the object touches; failures are rare.)
   */
  async function applyAll(ctx: Ctx, items: readonly SyncItem[], now: string): Promise<SyncResult[]> {
    const released = [...ctx.released];
    const straight = await applyTransaction(ctx, items, now, false);
    if (straight) return straight;
    ctx.released.clear();
    for (const a of released) ctx.released.add(a);
    return (await applyTransaction(ctx, items, now, true))!;
  }

  /** One try of applyAll; undefined when not `isolated` and an object failed (nothing is kept). */
  async function applyTransaction(ctx: Ctx, items: readonly SyncItem[], now: string, isolated: boolean): Promise<SyncResult[] | undefined> {
    const trx = await db.startTransaction().execute();
    const out: SyncResult[] = [];
    try {
      // Take the tenant row's write lock first and number this batch's changes from it;
      // the counter is written back before commit (delta reads commit-ordered numbers).
      ctx.writes.buffer = isolated ? null : { users: [], addresses: [] };
      ctx.seq.value = await nextSeq(trx, ctx.t.id, 0);
      // Members are fetched for the groups that resolve their whole list (see memberPlan): new
      // ones. Those that were in the cloud before this call apply their list by difference.
      ctx.batch.cache = await BatchCache.load(trx, ctx.t.id, items, (a) => decideUpn(a, ctx.verified, ctx.t.initial_domain).upn, (g) => g === null || ctx.createdGroups.has(g.id));
      ctx.batch.cache.beforeRead = () => flushWrites(trx, ctx);
      ctx.batch.upserted.clear();
      for (const item of items) {
        if (!isolated) {
          let result: SyncResult | undefined;
          try {
            result = await applyItem(trx, ctx, item, now);
          } catch {
            // Retried object by object (the caller): that path reports the error.
          }
          if (!result) {
            await trx.rollback().execute();
            return undefined;
          }
          out.push(result);
          continue;
        }
        const sp = await trx.savepoint('obj').execute();
        try {
          out.push(await applyItem(sp, ctx, item, now));
          await sp.releaseSavepoint('obj').execute();
        } catch (err) {
          await sp.rollbackToSavepoint('obj').execute();
          await sp.releaseSavepoint('obj').execute();
          // The cache saw writes the rollback undid; the database answers from here on.
          ctx.batch.cache.invalidate();
          ctx.batch.upserted.delete(item.sourceAnchor);
          const message = err instanceof NimbusError ? err.message : `Unexpected error: ${(err as Error).message}`;
          out.push({ sourceAnchor: item.sourceAnchor, type: item.type, status: 'error', message, provisioningErrors: [{ category: 'DataValidationFailed', propertyCausingError: 'Object', value: item.sourceAnchor, occurredDateTime: now }] });
        }
      }
      if (!isolated) {
        // A buffered insert that fails sends the batch down the careful path, as a failing object does.
        const flushed = await flushWrites(trx, ctx).then(() => true, () => false);
        ctx.writes.buffer = null;
        if (!flushed) {
          await trx.rollback().execute();
          return undefined;
        }
      }
      await resolveDeferred(trx, ctx, now);
      await trx.updateTable('tenants').set({ change_seq: ctx.seq.value }).where('id', '=', ctx.t.id).execute();
      await trx.commit().execute();
    } catch (err) {
      await trx.rollback().execute();
      throw err;
    }
    return out;
  }

  /** Synced objects whose provisioning errors name one of `addresses` (or all with errors). */
  async function erroredObjects(ctx: Ctx, addresses: readonly string[] | 'all', limit = 500): Promise<Map<string, { item: SyncItem; errors: number }>> {
    const found = new Map<string, { item: SyncItem; errors: number }>();
    const chunks = addresses === 'all' ? [null] : Array.from({ length: Math.ceil(addresses.length / 50) }, (_, i) => addresses.slice(i * 50, i * 50 + 50));
    for (const type of ['user', 'group'] as const) {
      for (const chunk of chunks) {
        let q = db
          .selectFrom(type === 'user' ? 'users' : 'groups')
          .select(['immutable_id', 'sync_desired', 'on_prem_provisioning_errors'])
          .where('tenant_id', '=', ctx.t.id)
          // Written as the partial index's predicate (a bound '[]' would not match it).
          .where(ERRORED);
        if (chunk) q = q.where(sql<boolean>`(${sql.join(chunk.map((a) => sql`lower(on_prem_provisioning_errors) like ${`%${likeEscape(a)}%`} escape '\\'`), sql` or `)})`);
        for (const r of await q.limit(limit).execute()) {
          if (!r.immutable_id || !r.sync_desired || found.has(r.immutable_id)) continue;
          found.set(r.immutable_id, {
            item: { op: 'upsert', type, sourceAnchor: r.immutable_id, attributes: JSON.parse(r.sync_desired) as SyncUserAttributes },
            errors: (JSON.parse(r.on_prem_provisioning_errors) as unknown[]).length,
          });
        }
      }
    }
    return found;
  }

  /**
   * Retries synced objects held back by a conflict over an address that was just given up:
   * the conflict went away, so they heal without a new export (Entra's behaviour).
   */
  async function heal(ctx: Ctx, now: string, which: readonly string[] | 'all'): Promise<number> {
    const found = await erroredObjects(ctx, which);
    if (found.size === 0) return 0;
    ctx.released.clear();
    const results = await applyAll(ctx, [...found.values()].map((f) => f.item), now);
    return results.filter((r) => (r.provisioningErrors?.length ?? 0) < (found.get(r.sourceAnchor)?.errors ?? 0)).length;
  }

  return {
    /** Validates a batch body; a bad item is reported with its index and path. */
    parseBatch(body: unknown): SyncItem[] {
      const objects = (body as { objects?: unknown } | undefined)?.objects;
      if (!Array.isArray(objects)) throw badRequest('The body must be {"objects": [...]}, each {op, type, sourceAnchor, attributes}.', 'objects');
      if (objects.length > MAX_SYNC_BATCH) throw badRequest(`A sync batch holds at most ${MAX_SYNC_BATCH} objects (got ${objects.length}); split it.`, 'objects');
      return objects.map((o, i) => {
        const r = parseItem(o);
        if (!r.ok) {
          const label = typeof (o as { sourceAnchor?: unknown } | null)?.sourceAnchor === 'string' ? (o as { sourceAnchor: string }).sourceAnchor : 'no sourceAnchor';
          throw badRequest(`Invalid object #${i} (${label}): ${r.path || 'object'}: ${r.message}.`, `objects[${i}].${r.path}`);
        }
        return r.item;
      });
    },

    /**
     * Applies a batch: users first (groups reference them), then groups, then deletes; then
     * heals conflicts that deletes or renames resolved. Returns one result per object.
     */
    async apply(actor: Actor, items: readonly SyncItem[]): Promise<SyncResult[]> {
      if (!isSync(actor)) throw forbidden(`Only an app with the sync role can export directory objects; '${actor.name}' has the ${actor.role} role.`);
      const ctx = await context(actor.tenantId);
      if (ctx.t.sync_enabled !== 1)
        throw new NimbusError(
          'bad_request',
          'DirectorySyncNotActivated',
          `Directory synchronization is not activated for tenant '${ctx.t.name}'. An administrator activates it with: nimbus dirsync enable --tenant ${ctx.t.name} (or PATCH /v1.0/organization/${ctx.t.id} {"onPremisesSyncEnabled": true}).`,
        );
      const now = clock.now().toISOString();
      const order = (i: SyncItem) => (i.op === 'delete' ? 2 : i.type === 'user' ? 0 : 1);
      const indexed = items.map((item, i) => ({ item, i })).sort((x, y) => order(x.item) - order(y.item) || x.i - y.i);
      // Groups go in two passes (attributes, then members), so a group may name a group
      // that comes later in the same batch.
      const firstPass = indexed.map(({ item }) => (item.op === 'upsert' && item.type === 'group' ? { ...item, attributes: { ...item.attributes, members: undefined } } : item));
      const first = await applyAll(ctx, firstPass, now);
      const results: SyncResult[] = new Array<SyncResult>(items.length);
      indexed.forEach(({ i }, k) => (results[i] = first[k]!));
      const second = indexed.filter(({ item, i }) => item.op === 'upsert' && item.type === 'group' && item.attributes.members !== undefined && results[i]!.status !== 'error');
      if (second.length) {
        const res = await applyAll(ctx, second.map((x) => x.item), now);
        second.forEach(({ i }, k) => {
          const r2 = res[k]!;
          results[i] = { ...r2, status: r2.status === 'error' || results[i]!.status === 'unchanged' ? r2.status : results[i]!.status };
        });
      }
      if (ctx.released.size > 0) await heal(ctx, now, [...ctx.released]);
      if (results.some((r) => r.status !== 'error')) await db.updateTable('tenants').set({ sync_last_at: now }).where('id', '=', ctx.t.id).execute();
      return results;
    },

    ...createSyncRunService(deps),

    /** Retries every synced object that holds provisioning errors. */
    heal: async (tenantId: string) => heal(await context(tenantId), clock.now().toISOString(), 'all'),

    /**
     * A domain became verified: users whose on-premises UPN uses it and who carry the
     * fallback UPN get their own UPN now (Entra recomputes on verification too).
     */
    async recomputeForDomain(tenantId: string, domain: string): Promise<number> {
      const ctx = await context(tenantId);
      if (ctx.t.sync_enabled !== 1) return 0;
      const pattern = `%@${likeEscape(asciiLower(domain))}`;
      const rows = await db
        .selectFrom('users')
        .select(['immutable_id', 'sync_desired'])
        .where('tenant_id', '=', tenantId)
        .where('on_prem_sync_enabled', '=', 1)
        .where('deleted_at', 'is', null)
        .where(sql<boolean>`lower(on_prem_user_principal_name) like ${pattern} escape '\\'`)
        .where(sql<boolean>`lower(upn) <> lower(on_prem_user_principal_name)`)
        .execute();
      const items = rows.filter((r) => r.immutable_id && r.sync_desired).map((r): SyncItem => ({ op: 'upsert', type: 'user', sourceAnchor: r.immutable_id!, attributes: JSON.parse(r.sync_desired!) as SyncUserAttributes }));
      if (items.length === 0) return 0;
      const results = await applyAll(ctx, items, clock.now().toISOString());
      return results.filter((r) => r.status === 'updated').length;
    },

    async features(tenantId: string): Promise<Features> {
      return (await context(tenantId)).features;
    },

    async setFeatures(actor: Actor, patch: Partial<Features>): Promise<Features> {
      if (actor.role !== 'admin' && actor.role !== 'readwrite') throw forbidden('Changing directory synchronization features needs an administrator or an app with the readwrite role.');
      const { t, features } = await context(actor.tenantId);
      for (const [k, v] of Object.entries(patch)) {
        if (!(k in defaultSyncFeatures)) throw badRequest(`Unknown directory synchronization feature '${k}'. Known: ${Object.keys(defaultSyncFeatures).join(', ')}.`, k);
        if (typeof v !== 'boolean') throw badRequest(`Feature '${k}' must be true or false.`, k);
      }
      const next = { ...features, ...patch };
      await db.updateTable('tenants').set({ sync_features: JSON.stringify(next) }).where('id', '=', t.id).execute();
      await recordAudit(db, deps, actor, {
        category: 'DirectoryManagement',
        activity: 'Update directory synchronization features',
        operationType: 'Update',
        result: 'success',
        targets: [{ id: t.id, displayName: t.display_name, type: 'Company', modifiedProperties: Object.entries(patch).map(([k, v]) => ({ displayName: k, oldValue: String(features[k as keyof Features]), newValue: String(v) })) }],
      });
      return next;
    },
  };
}

export type SyncService = ReturnType<typeof createSyncService>;

