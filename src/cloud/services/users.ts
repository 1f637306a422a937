// Users with Graph semantics: required properties, verified UPN domains, one address space,
// soft delete, manager, directory-sync ownership of on-premises attributes.
import { sql } from 'kysely';
import { badRequest, notFound } from '../../shared/errors.ts';
import { asciiLower, smtpAddress, splitUpn, upnProblem } from '../../shared/upn.ts';
import { parseSelect, toColumn, toGraph, USER_PROPS } from '../model/properties.ts';
import type { UserTable } from '../store/schema.ts';
import { recordAudit } from './audit.ts';
import { isSync, requireWrite, type Actor, type Deps } from './context.ts';
import { addressClaims, claimAddresses, findObject, nextSeq, refId } from './objects.ts';
import { checkPasswordComplexity, hashPassword } from './passwords.ts';
import { deltaPage, listObjects, countObjects, type ListParams } from './query.ts';
import { checkMail, checkMailNickname, checkProxyAddresses, get, requireProps, validateBody, type ValidBody } from './validate.ts';
import { objectId } from './ids.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function userGraph(row: Record<string, unknown>, select?: string) {
  return toGraph(row, parseSelect('user', select));
}

export function createUserService(deps: Deps) {
  const { db, clock, config } = deps;

  async function load(tenantId: string, idOrUpn: string, opts: { deleted?: boolean } = {}): Promise<UserTable> {
    let q = db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId);
    q = UUID.test(idOrUpn) ? q.where('id', '=', idOrUpn.toLowerCase()) : q.where(sql<boolean>`lower(upn) = ${asciiLower(idOrUpn)}`);
    q = opts.deleted ? q.where('deleted_at', 'is not', null) : q.where('deleted_at', 'is', null);
    const u = await q.executeTakeFirst();
    if (!u) throw notFound(`Resource '${idOrUpn}' does not exist or one of its queried reference-property objects are not present.`);
    return u;
  }

  async function checkUpnDomain(tenantId: string, upn: string): Promise<void> {
    const problem = upnProblem(upn);
    if (problem) throw badRequest(`Invalid value for property 'userPrincipalName': '${upn}' is not valid: ${problem}.`, 'userPrincipalName');
    const domain = asciiLower(splitUpn(upn)!.domain);
    const verified = await db.selectFrom('domains').select('name').where('tenant_id', '=', tenantId).where('is_verified', '=', 1).execute();
    if (!verified.some((d) => d.name === domain))
      throw badRequest(
        `The domain portion of the userPrincipalName property is invalid: '${domain}' is not a verified domain of this tenant. Use one of: ${verified.map((d) => d.name).join(', ')}.`,
        'userPrincipalName',
      );
  }

  /** Applies validated values to a row; returns the changed column names. */
  function apply(row: Record<string, unknown>, v: ValidBody): string[] {
    const changed: string[] = [];
    let extra: Record<string, unknown> | undefined;
    for (const [p, val] of v.values) {
      if (p.column) {
        row[p.column] = toColumn(p, val);
      } else {
        extra ??= JSON.parse((row.extra as string) || '{}') as Record<string, unknown>;
        extra[p.name] = val;
      }
      changed.push(p.name);
    }
    if (extra) row.extra = JSON.stringify(extra);
    return changed;
  }

  async function checkValues(tenantId: string, v: ValidBody) {
    const upn = get<string>(v, 'userPrincipalName');
    if (upn !== undefined) await checkUpnDomain(tenantId, upn);
    const nick = get<string | null>(v, 'mailNickname');
    if (nick !== undefined) checkMailNickname(nick);
    const mail = get<string | null>(v, 'mail');
    if (typeof mail === 'string') checkMail(mail);
    const proxies = get<string[] | null>(v, 'proxyAddresses');
    if (proxies) checkProxyAddresses(proxies);
    const dn = get<string>(v, 'displayName');
    if (dn !== undefined && (dn === null || dn.trim() === '')) throw badRequest("Invalid value for property 'displayName': it must not be empty.", 'displayName');
  }

  /** Cloud-managed users: SMTP proxy address follows mail, as Exchange Online does. */
  function proxiesFor(row: Record<string, unknown>, v: ValidBody): void {
    if (get(v, 'proxyAddresses') === undefined && get(v, 'mail') !== undefined && row.on_prem_sync_enabled !== 1) {
      const mail = row.mail as string | null;
      const current = JSON.parse(row.proxy_addresses as string) as string[];
      // The old primary address goes; secondary ones stay unless they repeat the new mail.
      const others = current.filter((p) => {
        if (p.startsWith('SMTP:')) return false;
        const a = smtpAddress(p);
        return !(mail && a && asciiLower(a) === asciiLower(mail));
      });
      row.proxy_addresses = JSON.stringify(mail ? [`SMTP:${mail}`, ...others] : others);
    }
  }

  async function passwordFrom(v: ValidBody, required: boolean): Promise<{ hash: string | null; force: boolean } | undefined> {
    const pp = v.special.passwordProfile;
    if (pp === undefined) {
      if (required) throw badRequest("Missing required property for a new user: passwordProfile (with a password).", 'passwordProfile');
      return undefined;
    }
    if (pp === null || typeof pp !== 'object' || Array.isArray(pp)) throw badRequest("Invalid value for property 'passwordProfile': expected an object with 'password'.", 'passwordProfile');
    const o = pp as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!['password', 'forceChangePasswordNextSignIn', 'forceChangePasswordNextSignInWithMfa', '@odata.type'].includes(k))
        throw badRequest(`Property 'passwordProfile.${k}' does not exist.`, `passwordProfile.${k}`);
    if (typeof o.password !== 'string') throw badRequest("Invalid value for property 'passwordProfile.password': expected a string.", 'passwordProfile.password');
    checkPasswordComplexity(o.password);
    if (o.forceChangePasswordNextSignIn !== undefined && typeof o.forceChangePasswordNextSignIn !== 'boolean')
      throw badRequest("Invalid value for property 'passwordProfile.forceChangePasswordNextSignIn': expected a boolean.", 'passwordProfile.forceChangePasswordNextSignIn');
    return { hash: await hashPassword(o.password, config.passwordScryptLogN), force: o.forceChangePasswordNextSignIn !== false };
  }

  const special = ['passwordProfile', 'manager@odata.bind'];

  return {
    load,

    async create(actor: Actor, body: unknown): Promise<Record<string, unknown>> {
      requireWrite(actor);
      const v = validateBody('user', actor, body, { special, synced: false });
      // Users created by directory sync carry no cloud password (it stays on-premises).
      requireProps('user', v, ['accountEnabled', 'displayName', 'mailNickname', 'userPrincipalName', ...(isSync(actor) ? [] : ['passwordProfile'])]);
      await checkValues(actor.tenantId, v);
      const pw = await passwordFrom(v, !isSync(actor));
      const now = clock.now().toISOString();
      const row: Record<string, unknown> = {
        tenant_id: actor.tenantId,
        id: objectId(),
        seq: 0,
        created_at: now,
        deleted_at: null,
        proxy_addresses: '[]',
        on_prem_provisioning_errors: '[]',
        extra: JSON.stringify({ forceChangePasswordNextSignIn: pw?.force ?? false }),
        user_type: 'Member',
        password_hash: pw?.hash ?? null,
      };
      for (const p of USER_PROPS) if (p.column && !(p.column in row)) row[p.column] = p.kind === 'strings' || p.kind === 'json' ? '[]' : null;
      apply(row, v);
      proxiesFor(row, v);
      if (isSync(actor) && row.immutable_id) row.on_prem_sync_enabled = 1;
      const managerRef = v.special['manager@odata.bind'];
      await db.transaction().execute(async (trx) => {
        const claims = addressClaims({ upn: row.upn as string, mail: row.mail as string | null, proxyAddresses: JSON.parse(row.proxy_addresses as string) as string[] });
        await claimAddresses(trx, actor.tenantId, row.id as string, claims);
        if (managerRef !== undefined) {
          const mid = refId(managerRef, 'manager@odata.bind');
          const m = await findObject(trx, actor.tenantId, mid);
          if (m?.type !== 'user') throw badRequest(`Invalid manager reference: user '${mid}' does not exist in this tenant.`, 'manager@odata.bind');
          row.manager_id = mid;
        }
        row.seq = await nextSeq(trx, actor.tenantId);
        await trx.insertInto('users').values(row as unknown as UserTable).execute();
        await recordAudit(trx, deps, actor, {
          category: 'UserManagement',
          activity: 'Add user',
          operationType: 'Add',
          result: 'success',
          targets: [{ id: row.id as string, displayName: row.display_name as string, type: 'User', userPrincipalName: row.upn as string }],
        });
      });
      return toGraph(row, USER_PROPS.filter((p) => p.default || ['accountEnabled', 'mailNickname', 'createdDateTime', 'onPremisesImmutableId'].includes(p.name)));
    },

    async get(actor: Actor, idOrUpn: string, select?: string) {
      return toGraph(await load(actor.tenantId, idOrUpn) as unknown as Record<string, unknown>, parseSelect('user', select));
    },

    async update(actor: Actor, idOrUpn: string, body: unknown): Promise<void> {
      requireWrite(actor);
      const existing = await load(actor.tenantId, idOrUpn);
      const synced = existing.on_prem_sync_enabled === 1;
      const v = validateBody('user', actor, body, { special, synced });
      await checkValues(actor.tenantId, v);
      const pw = await passwordFrom(v, false);
      if (pw && synced && !isSync(actor))
        throw badRequest('The password of a user synchronized from on-premises is managed there; change it in Active Directory.', 'passwordProfile');
      const row = { ...existing } as unknown as Record<string, unknown>;
      const changed = apply(row, v);
      proxiesFor(row, v);
      if (pw) row.password_hash = pw.hash;
      await db.transaction().execute(async (trx) => {
        const claims = addressClaims({ upn: row.upn as string, mail: row.mail as string | null, proxyAddresses: JSON.parse(row.proxy_addresses as string) as string[] });
        await claimAddresses(trx, actor.tenantId, existing.id, claims);
        if (v.special['manager@odata.bind'] !== undefined) {
          const mid = refId(v.special['manager@odata.bind'], 'manager@odata.bind');
          const m = await findObject(trx, actor.tenantId, mid);
          if (m?.type !== 'user' || mid === existing.id) throw badRequest(`Invalid manager reference: '${mid}' is not another user of this tenant.`, 'manager@odata.bind');
          row.manager_id = mid;
        }
        row.seq = await nextSeq(trx, actor.tenantId);
        const { tenant_id: _t, id: _i, ...set } = row;
        await trx.updateTable('users').set(set as Partial<UserTable>).where('tenant_id', '=', actor.tenantId).where('id', '=', existing.id).execute();
        await recordAudit(trx, deps, actor, {
          category: 'UserManagement',
          activity: 'Update user',
          operationType: 'Update',
          result: 'success',
          targets: [{ id: existing.id, displayName: existing.display_name, type: 'User', userPrincipalName: row.upn as string, modifiedProperties: changed.map((c) => ({ displayName: c, oldValue: null, newValue: null })) }],
        });
      });
    },

    list: (actor: Actor, q: ListParams) => listObjects(db, actor.tenantId, 'user', q),
    count: (actor: Actor, filter?: string) => countObjects(db, actor.tenantId, 'user', filter),
    delta: (actor: Actor, p: Omit<Parameters<typeof deltaPage>[3], 'now' | 'tokenDays'>) =>
      deltaPage(db, actor.tenantId, 'user', { ...p, now: clock.now(), tokenDays: config.deltaTokenDays }),

    async getManager(actor: Actor, idOrUpn: string, select?: string) {
      const u = await load(actor.tenantId, idOrUpn);
      const m = u.manager_id ? await findObject(db, actor.tenantId, u.manager_id) : undefined;
      if (!m) throw notFound(`Resource 'manager' does not exist or one of its queried reference-property objects are not present.`);
      return { '@odata.type': '#microsoft.graph.user', ...toGraph(m.row, parseSelect('user', select)) };
    },

    async setManager(actor: Actor, idOrUpn: string, ref: unknown): Promise<void> {
      requireWrite(actor);
      const u = await load(actor.tenantId, idOrUpn);
      if (u.on_prem_sync_enabled === 1 && !isSync(actor))
        throw badRequest('Unable to update the manager of a user synchronized from on-premises; change it in the on-premises directory.', 'manager');
      const mid = ref === null ? null : refId(ref);
      if (mid !== null) {
        const m = await findObject(db, actor.tenantId, mid);
        if (m?.type !== 'user') throw notFound(`Resource '${mid}' does not exist or one of its queried reference-property objects are not present.`);
        if (mid === u.id) throw badRequest('A user cannot be their own manager.', 'manager');
      }
      await db.transaction().execute(async (trx) => {
        const seq = await nextSeq(trx, actor.tenantId);
        await trx.updateTable('users').set({ manager_id: mid, seq }).where('tenant_id', '=', actor.tenantId).where('id', '=', u.id).execute();
      });
    },

    async directReports(actor: Actor, idOrUpn: string, q: ListParams) {
      const u = await load(actor.tenantId, idOrUpn);
      return listObjects(db, actor.tenantId, 'user', q, { where: sql`manager_id = ${u.id}` });
    },
  };
}

export type UserService = ReturnType<typeof createUserService>;
