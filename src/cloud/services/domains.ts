// Custom domains: add (unverified, with a TXT record to publish), verify by DNS lookup,
// set default, remove (refused while objects use it). A name is verified in one tenant only.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { badRequest, NimbusError, notFound } from '../../shared/errors.ts';
import { asciiLower, fqdnProblem } from '../../shared/upn.ts';
import type { TxtLookup } from '../dns.ts';
import type { DomainTable } from '../store/schema.ts';
import { recordAudit } from './audit.ts';
import { likeEscape } from './query.ts';
import { requireAdmin, type Actor, type Deps } from './context.ts';

export const TXT_PREFIX = 'nimbus-verification=';

export function domainToGraph(d: DomainTable) {
  return {
    id: d.name,
    authenticationType: d.authentication_type,
    isAdminManaged: true,
    isDefault: d.is_default === 1,
    isInitial: d.is_initial === 1,
    isRoot: true,
    isVerified: d.is_verified === 1,
    supportedServices: d.is_verified === 1 ? ['Email', 'OfficeCommunicationsOnline'] : [],
    passwordValidityPeriodInDays: 2147483647,
    passwordNotificationWindowInDays: 14,
    state: null,
  };
}

export function verificationRecords(d: DomainTable) {
  return [
    {
      '@odata.type': '#microsoft.graph.domainDnsTxtRecord',
      id: `txt-${d.verification_code}`,
      isOptional: false,
      label: d.name,
      recordType: 'Txt',
      supportedService: 'Email',
      ttl: 3600,
      text: `${TXT_PREFIX}${d.verification_code}`,
    },
  ];
}

export interface DomainHooks {
  /** Called after a domain became verified (sync recomputes fallback UPNs on it). */
  onVerified?: (tenantId: string, name: string) => Promise<unknown>;
}

export function createDomainService(deps: Deps, lookupTxt: TxtLookup, hooks: DomainHooks = {}) {
  const { db, clock, config } = deps;
  const target = (name: string) => [{ id: name, displayName: name, type: 'Domain' }];

  async function get(tenantId: string, name: string): Promise<DomainTable> {
    const d = await db.selectFrom('domains').selectAll().where('tenant_id', '=', tenantId).where('name', '=', asciiLower(name)).executeTakeFirst();
    if (!d) throw notFound(`Domain '${name}' was not found in this tenant. List the tenant's domains with GET /v1.0/domains or nimbus domain list.`);
    return d;
  }

  async function markVerified(tenantId: string, d: DomainTable) {
    const other = await db.selectFrom('domains').select('tenant_id').where('name', '=', d.name).where('is_verified', '=', 1).executeTakeFirst();
    if (other && other.tenant_id !== tenantId)
      throw badRequest(`Domain '${d.name}' is already verified in another tenant. A domain can be verified in one tenant only: remove it there first.`, 'id');
    await db
      .updateTable('domains')
      .set({ is_verified: 1, verified_at: clock.now().toISOString() })
      .where('tenant_id', '=', tenantId)
      .where('name', '=', d.name)
      .execute();
    await hooks.onVerified?.(tenantId, d.name);
  }

  return {
    get,
    list: (tenantId: string) => db.selectFrom('domains').selectAll().where('tenant_id', '=', tenantId).orderBy('name').execute(),
    verifiedNames: async (tenantId: string) =>
      (await db.selectFrom('domains').select('name').where('tenant_id', '=', tenantId).where('is_verified', '=', 1).execute()).map((d) => d.name),

    async add(actor: Actor, rawName: string): Promise<DomainTable> {
      requireAdmin(actor, 'add a domain');
      if (typeof rawName !== 'string') throw badRequest("Property 'id' is required: the domain's fully qualified name, like contoso.com.", 'id');
      const name = asciiLower(rawName.trim().replace(/\.$/, ''));
      const problem = fqdnProblem(name);
      if (problem) throw badRequest(`Invalid domain name '${rawName}': ${problem}.`, 'id');
      if (name === config.serviceSuffix || name.endsWith(`.${config.serviceSuffix}`))
        throw badRequest(`Domain '${name}' is under the service suffix ${config.serviceSuffix}, which Nimbus owns. Add a domain your organization owns.`, 'id');
      const existing = await db.selectFrom('domains').select('name').where('tenant_id', '=', actor.tenantId).where('name', '=', name).executeTakeFirst();
      if (existing) throw badRequest(`Domain '${name}' already exists in this tenant.`, 'id');
      const d: DomainTable = {
        tenant_id: actor.tenantId,
        name,
        is_verified: 0,
        is_default: 0,
        is_initial: 0,
        authentication_type: 'Managed',
        verification_code: randomBytes(12).toString('hex'),
        created_at: clock.now().toISOString(),
        verified_at: null,
      };
      await db.insertInto('domains').values(d).execute();
      // A subdomain of a domain the tenant already verified is verified with it (as in Entra).
      const parents = await db.selectFrom('domains').select('name').where('tenant_id', '=', actor.tenantId).where('is_verified', '=', 1).where('is_initial', '=', 0).execute();
      if (parents.some((p) => name.endsWith(`.${p.name}`))) await markVerified(actor.tenantId, d);
      await recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Add unverified domain', operationType: 'Add', result: 'success', targets: target(name) });
      return get(actor.tenantId, name);
    },

    async verify(actor: Actor, name: string, opts: { force?: boolean } = {}): Promise<DomainTable> {
      requireAdmin(actor, 'verify a domain');
      const d = await get(actor.tenantId, name);
      if (d.is_verified) return d;
      const expected = `${TXT_PREFIX}${d.verification_code}`;
      if (opts.force) {
        if (actor.kind !== 'cli') throw badRequest('Forced verification is only available to an operator with local access (nimbus domain verify --force).', 'force');
      } else {
        let found: string[] = [];
        let lookupError: string | undefined;
        try {
          found = await lookupTxt(d.name);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // NXDOMAIN / NODATA are answers, not failures: the record is simply not there yet.
          if (code !== 'ENOTFOUND' && code !== 'ENODATA') lookupError = code ?? (err as Error).message;
        }
        if (!found.includes(expected)) {
          const seen = lookupError ? `the lookup failed with ${lookupError}` : found.length ? `found only: ${found.map((f) => `'${f}'`).join(', ')}` : 'no TXT records were found';
          const reason = `Domain verification failed for '${d.name}': expected a TXT record '${expected}' at ${d.name}; ${seen}. Publish the record at your DNS provider, wait for it to propagate, and verify again.`;
          await recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Verify domain', operationType: 'Verify', result: 'failure', reason, targets: target(d.name) });
          throw new NimbusError('bad_request', 'Request_BadRequest', reason, { target: 'id' });
        }
      }
      await markVerified(actor.tenantId, d);
      await recordAudit(db, deps, actor, {
        category: 'DirectoryManagement',
        activity: 'Verify domain',
        operationType: 'Verify',
        result: 'success',
        reason: opts.force ? 'forced by a local operator' : 'TXT record found',
        targets: target(d.name),
      });
      return get(actor.tenantId, d.name);
    },

    async setDefault(actor: Actor, name: string): Promise<DomainTable> {
      requireAdmin(actor, 'change the default domain');
      const d = await get(actor.tenantId, name);
      if (!d.is_verified) throw badRequest(`Domain '${d.name}' is not verified; only a verified domain can be the default. Verify it first.`, 'isDefault');
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('domains').set({ is_default: 0 }).where('tenant_id', '=', actor.tenantId).execute();
        await trx.updateTable('domains').set({ is_default: 1 }).where('tenant_id', '=', actor.tenantId).where('name', '=', d.name).execute();
      });
      await recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Set domain as default', operationType: 'Update', result: 'success', targets: target(d.name) });
      return get(actor.tenantId, d.name);
    },

    async remove(actor: Actor, name: string): Promise<void> {
      requireAdmin(actor, 'remove a domain');
      const d = await get(actor.tenantId, name);
      const refuse = async (reason: string) => {
        await recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Remove domain', operationType: 'Delete', result: 'failure', reason, targets: target(d.name) });
        throw badRequest(reason, 'id');
      };
      if (d.is_initial) await refuse(`Domain '${d.name}' is the tenant's initial domain and cannot be removed.`);
      if (d.is_default) await refuse(`Domain '${d.name}' is the default domain. Make another verified domain the default first.`);
      // Addresses hold every UPN, mail and SMTP address of live objects; deleted objects in
      // the recycle bin are counted too, because restoring them would need the domain.
      const pattern = `%@${likeEscape(d.name)}`;
      const live = await db
        .selectFrom('addresses')
        .select(['address'])
        .where('tenant_id', '=', actor.tenantId)
        .where(sql<boolean>`address like ${pattern} escape '\\'`)
        .limit(3)
        .execute();
      const liveCount = live.length
        ? Number((await db.selectFrom('addresses').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', actor.tenantId).where(sql<boolean>`address like ${pattern} escape '\\'`).executeTakeFirstOrThrow()).n)
        : 0;
      const binned = await db
        .selectFrom('users')
        .select(['upn'])
        .where('tenant_id', '=', actor.tenantId)
        .where('deleted_at', 'is not', null)
        .where(sql<boolean>`lower(upn) like ${pattern} escape '\\'`)
        .limit(3)
        .execute();
      if (liveCount > 0 || binned.length > 0) {
        const examples = [...live.map((l) => l.address), ...binned.map((b) => `${b.upn} (deleted)`)].slice(0, 3).join(', ');
        await refuse(`Domain '${d.name}' is still used by ${liveCount > 0 ? `${liveCount} address(es)` : 'deleted users in the recycle bin'} (e.g. ${examples}). Change those users' UPNs, mail and proxy addresses (or purge the deleted users) first.`);
      }
      await db.deleteFrom('domains').where('tenant_id', '=', actor.tenantId).where('name', '=', d.name).execute();
      await recordAudit(db, deps, actor, { category: 'DirectoryManagement', activity: 'Remove domain', operationType: 'Delete', result: 'success', targets: target(d.name) });
    },
  };
}

export type DomainService = ReturnType<typeof createDomainService>;
