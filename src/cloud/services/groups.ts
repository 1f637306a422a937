// Groups with Graph semantics: required properties, Microsoft 365 (Unified) groups get a
// mail address, members through members/$ref and members@odata.bind, nested groups.
import { sql } from 'kysely';
import { badRequest, notFound } from '../../shared/errors.ts';
import { asciiLower } from '../../shared/upn.ts';
import { GROUP_PROPS, parseSelect, toColumn, toGraph, USER_PROPS } from '../model/properties.ts';
import type { GroupTable } from '../store/schema.ts';
import { recordAudit } from './audit.ts';
import { isSync, requireWrite, type Actor, type Deps } from './context.ts';
import { addressClaims, claimAddresses, findObject, nextSeq, refId } from './objects.ts';
import { countObjects, deltaPage, listObjects, parseTop, type ListParams } from './query.ts';
import { checkMailNickname, checkProxyAddresses, get, requireProps, validateBody } from './validate.ts';
import { objectId } from './ids.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_BIND = 20;

export function createGroupService(deps: Deps) {
  const { db, clock, config } = deps;

  async function load(tenantId: string, id: string): Promise<GroupTable> {
    const g = UUID.test(id)
      ? await db.selectFrom('groups').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id.toLowerCase()).where('deleted_at', 'is', null).executeTakeFirst()
      : undefined;
    if (!g) throw notFound(`Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
    return g;
  }

  async function addMembers(trx: typeof db, actor: Actor, group: GroupTable, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const seq = await nextSeq(trx, actor.tenantId);
    for (const mid of ids) {
      if (mid === group.id) throw badRequest('A group cannot be a member of itself.', 'members');
      const m = await findObject(trx, actor.tenantId, mid);
      if (!m) throw notFound(`Resource '${mid}' does not exist or one of its queried reference-property objects are not present.`);
      const exists = await trx.selectFrom('memberships').select('member_id').where('tenant_id', '=', actor.tenantId).where('group_id', '=', group.id).where('member_id', '=', mid).executeTakeFirst();
      if (exists) throw badRequest(`One or more added object references already exist for the following modified properties: 'members' (${mid} is already a member).`, 'members');
      await trx.insertInto('memberships').values({ tenant_id: actor.tenantId, group_id: group.id, member_id: mid, member_type: m.type }).execute();
      await trx.insertInto('membership_changes').values({ tenant_id: actor.tenantId, seq, group_id: group.id, member_id: mid, member_type: m.type, removed: 0 }).execute();
    }
    await trx.updateTable('groups').set({ seq }).where('tenant_id', '=', actor.tenantId).where('id', '=', group.id).execute();
  }

  function bindIds(v: unknown): string[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw badRequest("Invalid value for 'members@odata.bind': expected an array of object URLs.", 'members@odata.bind');
    if (v.length > MAX_BIND) throw badRequest(`Invalid value for 'members@odata.bind': at most ${MAX_BIND} members can be added in one request (got ${v.length}).`, 'members@odata.bind');
    return [...new Set(v.map((x) => refId(x, 'members@odata.bind')))];
  }

  const lockedMembership = (g: GroupTable, actor: Actor) => {
    if (g.on_prem_sync_enabled === 1 && !isSync(actor))
      throw badRequest(`Unable to update the members of group '${g.display_name}': it is synchronized from on-premises. Change its members in the on-premises directory.`, 'members');
  };

  return {
    load,

    async create(actor: Actor, body: unknown): Promise<Record<string, unknown>> {
      requireWrite(actor);
      const v = validateBody('group', actor, body, { special: ['members@odata.bind', 'owners@odata.bind'], synced: false });
      requireProps('group', v, ['displayName', 'mailEnabled', 'mailNickname', 'securityEnabled']);
      const nick = get<string>(v, 'mailNickname')!;
      checkMailNickname(nick);
      const types = get<string[]>(v, 'groupTypes') ?? [];
      for (const t of types) if (!['Unified', 'DynamicMembership'].includes(t)) throw badRequest(`Invalid value for property 'groupTypes': '${t}' is not Unified or DynamicMembership.`, 'groupTypes');
      if (types.includes('DynamicMembership')) throw badRequest("Dynamic membership groups are not supported: leave 'DynamicMembership' out of groupTypes.", 'groupTypes');
      const unified = types.includes('Unified');
      if (get<boolean>(v, 'mailEnabled') && !unified && !isSync(actor))
        throw badRequest("Mail-enabled security groups and distribution groups cannot be created through the API: set mailEnabled to false, or create a Microsoft 365 group with groupTypes ['Unified'].", 'mailEnabled');
      const proxies = get<string[]>(v, 'proxyAddresses');
      if (proxies) checkProxyAddresses(proxies);
      const now = clock.now().toISOString();
      const row: Record<string, unknown> = { tenant_id: actor.tenantId, id: objectId(), seq: 0, created_at: now, deleted_at: null, extra: '{}' };
      for (const p of GROUP_PROPS) if (p.column && !(p.column in row)) row[p.column] = p.kind === 'strings' || p.kind === 'json' ? '[]' : null;
      for (const [p, val] of v.values) if (p.column) row[p.column] = toColumn(p, val);
      if (unified && !row.mail) {
        const def = await db.selectFrom('domains').select('name').where('tenant_id', '=', actor.tenantId).where('is_default', '=', 1).executeTakeFirstOrThrow();
        row.mail = `${nick}@${def.name}`;
        row.proxy_addresses = JSON.stringify([`SMTP:${row.mail as string}`]);
      }
      if (isSync(actor) && row.on_prem_sync_enabled === null && row.on_prem_security_identifier) row.on_prem_sync_enabled = 1;
      const members = bindIds(v.special['members@odata.bind']);
      await db.transaction().execute(async (trx) => {
        await claimAddresses(trx, actor.tenantId, row.id as string, addressClaims({ mail: row.mail as string | null, proxyAddresses: JSON.parse(row.proxy_addresses as string) as string[] }));
        row.seq = await nextSeq(trx, actor.tenantId);
        await trx.insertInto('groups').values(row as unknown as GroupTable).execute();
        await addMembers(trx, actor, row as unknown as GroupTable, members);
        await recordAudit(trx, deps, actor, { category: 'GroupManagement', activity: 'Add group', operationType: 'Add', result: 'success', targets: [{ id: row.id as string, displayName: row.display_name as string, type: 'Group' }] });
      });
      return toGraph(row, GROUP_PROPS);
    },

    async get(actor: Actor, id: string, select?: string) {
      return toGraph(await load(actor.tenantId, id) as unknown as Record<string, unknown>, parseSelect('group', select));
    },

    async update(actor: Actor, id: string, body: unknown): Promise<void> {
      requireWrite(actor);
      const g = await load(actor.tenantId, id);
      const v = validateBody('group', actor, body, { special: ['members@odata.bind'], synced: g.on_prem_sync_enabled === 1 });
      const nick = get<string>(v, 'mailNickname');
      if (nick !== undefined) checkMailNickname(nick);
      const proxies = get<string[]>(v, 'proxyAddresses');
      if (proxies) checkProxyAddresses(proxies);
      const members = bindIds(v.special['members@odata.bind']);
      if (members.length) lockedMembership(g, actor);
      const row = { ...g } as unknown as Record<string, unknown>;
      for (const [p, val] of v.values) if (p.column) row[p.column] = toColumn(p, val);
      await db.transaction().execute(async (trx) => {
        await claimAddresses(trx, actor.tenantId, g.id, addressClaims({ mail: row.mail as string | null, proxyAddresses: JSON.parse(row.proxy_addresses as string) as string[] }));
        row.seq = await nextSeq(trx, actor.tenantId);
        const { tenant_id: _t, id: _i, ...set } = row;
        await trx.updateTable('groups').set(set as Partial<GroupTable>).where('tenant_id', '=', actor.tenantId).where('id', '=', g.id).execute();
        await addMembers(trx, actor, g, members);
        await recordAudit(trx, deps, actor, { category: 'GroupManagement', activity: 'Update group', operationType: 'Update', result: 'success', targets: [{ id: g.id, displayName: g.display_name, type: 'Group' }] });
      });
    },

    async addMember(actor: Actor, id: string, ref: unknown): Promise<void> {
      requireWrite(actor);
      const g = await load(actor.tenantId, id);
      lockedMembership(g, actor);
      const mid = refId(ref);
      await db.transaction().execute(async (trx) => addMembers(trx, actor, g, [mid]));
    },

    async removeMember(actor: Actor, id: string, memberId: string): Promise<void> {
      requireWrite(actor);
      const g = await load(actor.tenantId, id);
      lockedMembership(g, actor);
      const mid = asciiLower(memberId);
      await db.transaction().execute(async (trx) => {
        const m = await trx.selectFrom('memberships').select('member_type').where('tenant_id', '=', actor.tenantId).where('group_id', '=', g.id).where('member_id', '=', mid).executeTakeFirst();
        if (!m) throw notFound(`Resource '${memberId}' is not a member of group '${g.display_name}'.`);
        const seq = await nextSeq(trx, actor.tenantId);
        await trx.deleteFrom('memberships').where('tenant_id', '=', actor.tenantId).where('group_id', '=', g.id).where('member_id', '=', mid).execute();
        await trx.insertInto('membership_changes').values({ tenant_id: actor.tenantId, seq, group_id: g.id, member_id: mid, member_type: m.member_type, removed: 1 }).execute();
        await trx.updateTable('groups').set({ seq }).where('tenant_id', '=', actor.tenantId).where('id', '=', g.id).execute();
      });
    },

    /** Direct members, users and groups, keyset-paged by member id. */
    async members(actor: Actor, id: string, q: { top?: string; skiptoken?: string }) {
      const g = await load(actor.tenantId, id);
      const top = parseTop(q.top);
      let mq = db.selectFrom('memberships').select(['member_id', 'member_type']).where('tenant_id', '=', actor.tenantId).where('group_id', '=', g.id);
      if (q.skiptoken) mq = mq.where('member_id', '>', Buffer.from(q.skiptoken, 'base64url').toString());
      const ms = await mq.orderBy('member_id').limit(top + 1).execute();
      const page = ms.slice(0, top);
      const userIds = page.filter((m) => m.member_type === 'user').map((m) => m.member_id);
      const groupIds = page.filter((m) => m.member_type === 'group').map((m) => m.member_id);
      const users = userIds.length ? await db.selectFrom('users').selectAll().where('tenant_id', '=', actor.tenantId).where('id', 'in', userIds).where('deleted_at', 'is', null).execute() : [];
      const groups = groupIds.length ? await db.selectFrom('groups').selectAll().where('tenant_id', '=', actor.tenantId).where('id', 'in', groupIds).where('deleted_at', 'is', null).execute() : [];
      const byId = new Map<string, Record<string, unknown>>();
      const uSel = USER_PROPS.filter((p) => p.default);
      for (const u of users) byId.set(u.id, { '@odata.type': '#microsoft.graph.user', ...toGraph(u, uSel) });
      for (const gr of groups) byId.set(gr.id, { '@odata.type': '#microsoft.graph.group', ...toGraph(gr, GROUP_PROPS.filter((p) => p.default)) });
      const items = page.map((m) => byId.get(m.member_id)).filter((x): x is Record<string, unknown> => x !== undefined);
      return { items, nextSkiptoken: ms.length > top ? Buffer.from(page[page.length - 1]!.member_id).toString('base64url') : undefined };
    },

    /** Groups the object is a direct member of. */
    memberOf: (actor: Actor, memberId: string, q: ListParams) =>
      listObjects(db, actor.tenantId, 'group', q, {
        where: sql`id in (select group_id from memberships where tenant_id = ${actor.tenantId} and member_id = ${memberId})`,
      }),

    list: (actor: Actor, q: ListParams) => listObjects(db, actor.tenantId, 'group', q),
    count: (actor: Actor, filter?: string) => countObjects(db, actor.tenantId, 'group', filter),
    delta: (actor: Actor, p: Omit<Parameters<typeof deltaPage>[3], 'now' | 'tokenDays'>) =>
      deltaPage(db, actor.tenantId, 'group', { ...p, now: clock.now(), tokenDays: config.deltaTokenDays }),
  };
}

export type GroupService = ReturnType<typeof createGroupService>;
