// How the cloud directory steers sync agents: the export lease (at most one agent exports to
// a tenant at a time; a dead agent's lease expires and a standby takes over) and requests an
// administrator makes ("sync now", "allow the deletes of one run") that the agent picks up.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { badRequest, forbidden, NimbusError, notFound } from '../../shared/errors.ts';
import { recordAudit } from '../services/audit.ts';
import { isSync, requireAdmin, type Actor, type Deps } from '../services/context.ts';
import type { SyncLeaseTable, SyncRequestTable } from '../store/schema.ts';

// ---- wire shapes (the agent's HTTP exporter parses answers with these too)

export const SYNC_REQUEST_KINDS = ['sync-now', 'allow-deletes'] as const;
export type SyncRequestKind = (typeof SYNC_REQUEST_KINDS)[number];

/** POST /sync/v1/lease: take or renew the lease for `ttlSeconds`. */
export const leaseAcquireBody = z.object({ holder: z.string().min(1).max(256), ttlSeconds: z.number().int().min(1).max(3600) }).strict();

export const leaseState = z.object({
  /** Whether the caller holds the lease now. */
  acquired: z.boolean(),
  holder: z.string(),
  agent: z.string(),
  acquiredAt: z.string(),
  renewedAt: z.string(),
  expiresAt: z.string(),
});
export type LeaseState = z.infer<typeof leaseState>;

export const syncRequest = z.object({
  id: z.string(),
  kind: z.enum(SYNC_REQUEST_KINDS),
  status: z.enum(['pending', 'claimed', 'done']),
  requestedBy: z.string(),
  requestedAt: z.string(),
  claimedBy: z.string().nullable(),
  claimedAt: z.string().nullable(),
  completedAt: z.string().nullable(),
  runId: z.string().nullable(),
  result: z.string().nullable(),
});
export type SyncRequest = z.infer<typeof syncRequest>;

/** PATCH /sync/v1/requests/{id}: the lease holder claims a request, completes it, or gives it back. */
export const requestUpdateBody = z
  .object({
    holder: z.string().min(1).max(256),
    status: z.enum(['claimed', 'done', 'pending']),
    runId: z.string().max(64).optional(),
    result: z.string().max(48).optional(),
  })
  .strict();
export type RequestUpdate = z.infer<typeof requestUpdateBody>;

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw badRequest(`Invalid ${what}: ${i.path.join('.') || 'body'}: ${i.message}.`, i.path.join('.'));
  }
  return r.data;
}

const toLease = (r: SyncLeaseTable, holder?: string): LeaseState => ({
  acquired: holder !== undefined && r.holder === holder,
  holder: r.holder,
  agent: r.agent,
  acquiredAt: r.acquired_at,
  renewedAt: r.renewed_at,
  expiresAt: r.expires_at,
});

const toRequest = (r: SyncRequestTable): SyncRequest => ({
  id: r.id,
  kind: r.kind as SyncRequestKind,
  status: r.status as SyncRequest['status'],
  requestedBy: r.requested_by,
  requestedAt: r.requested_at,
  claimedBy: r.claimed_by,
  claimedAt: r.claimed_at,
  completedAt: r.completed_at,
  runId: r.run_id,
  result: r.result,
});

export function createSyncControlService(deps: Deps) {
  const { db, clock } = deps;
  const requireSync = (actor: Actor, what: string) => {
    if (!isSync(actor)) throw forbidden(`Only an app with the sync role can ${what}; '${actor.name}' has the ${actor.role} role.`);
  };
  const liveLease = async (tenantId: string) => {
    const row = await db.selectFrom('sync_leases').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst();
    return row && row.expires_at > clock.now().toISOString() ? row : undefined;
  };

  return {
    /**
     * Takes the lease when nobody holds it or the holder's lease expired, renews it for its
     * holder; otherwise answers who holds it (acquired: false). One transaction, so two agents
     * asking at once cannot both get it.
     */
    async acquireLease(actor: Actor, body: unknown): Promise<LeaseState> {
      requireSync(actor, 'take the export lease');
      const b = parse(leaseAcquireBody, body, 'lease request');
      return db.transaction().execute(async (trx) => {
        const now = clock.now();
        const at = now.toISOString();
        const expires = new Date(now.getTime() + b.ttlSeconds * 1000).toISOString();
        const row = await trx.selectFrom('sync_leases').selectAll().where('tenant_id', '=', actor.tenantId).executeTakeFirst();
        if (row && row.holder !== b.holder && row.expires_at > at) return toLease(row, b.holder);
        const next: SyncLeaseTable = {
          tenant_id: actor.tenantId,
          holder: b.holder,
          agent: actor.name,
          acquired_at: row?.holder === b.holder ? row.acquired_at : at,
          renewed_at: at,
          expires_at: expires,
        };
        await trx
          .insertInto('sync_leases')
          .values(next)
          .onConflict((oc) => oc.column('tenant_id').doUpdateSet({ holder: next.holder, agent: next.agent, acquired_at: next.acquired_at, renewed_at: at, expires_at: expires }))
          .execute();
        return toLease(next, b.holder);
      });
    },

    /** Gives the lease up (a clean shutdown), so a standby agent takes over at once. */
    async releaseLease(actor: Actor, holder: string): Promise<boolean> {
      requireSync(actor, 'release the export lease');
      const r = await db.deleteFrom('sync_leases').where('tenant_id', '=', actor.tenantId).where('holder', '=', holder).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    },

    /** The live lease, or null when no agent holds one (none taken, released or expired). */
    async lease(tenantId: string): Promise<LeaseState | null> {
      const row = await liveLease(tenantId);
      return row ? toLease(row) : null;
    },

    /**
     * An administrator asks the agent to run now, or to run once with the deletion threshold
     * lifted. A second request of a kind still pending is the same request.
     */
    async createRequest(actor: Actor, body: unknown): Promise<{ request: SyncRequest; created: boolean }> {
      requireAdmin(actor, 'request a directory synchronization run');
      const { kind } = parse(z.object({ kind: z.enum(SYNC_REQUEST_KINDS) }).strict(), body, 'sync request');
      const existing = await db.selectFrom('sync_requests').selectAll().where('tenant_id', '=', actor.tenantId).where('kind', '=', kind).where('status', '=', 'pending').executeTakeFirst();
      if (existing) return { request: toRequest(existing), created: false };
      const row: SyncRequestTable = {
        id: randomUUID(),
        tenant_id: actor.tenantId,
        kind,
        status: 'pending',
        requested_by: actor.name,
        requested_at: clock.now().toISOString(),
        claimed_by: null,
        claimed_at: null,
        completed_at: null,
        run_id: null,
        result: null,
      };
      await db.insertInto('sync_requests').values(row).execute();
      await recordAudit(db, deps, actor, {
        category: 'DirectoryManagement',
        activity: kind === 'sync-now' ? 'Request directory synchronization run' : 'Allow directory synchronization deletes',
        operationType: 'Add',
        result: 'success',
        targets: [{ id: row.id, displayName: kind, type: 'DirectorySyncRequest' }],
      });
      return { request: toRequest(row), created: true };
    },

    /** Requests, newest first; `status` narrows (the agent polls `pending`). */
    async requests(actor: Actor, opts: { status?: string; top?: number } = {}): Promise<SyncRequest[]> {
      if (!isSync(actor)) requireAdmin(actor, 'list directory synchronization requests');
      let q = db.selectFrom('sync_requests').selectAll().where('tenant_id', '=', actor.tenantId);
      if (opts.status !== undefined) {
        if (!['pending', 'claimed', 'done'].includes(opts.status)) throw badRequest(`Invalid status '${opts.status}': give pending, claimed or done.`, 'status');
        q = q.where('status', '=', opts.status);
      }
      const rows = await q.orderBy('requested_at', 'desc').orderBy('id').limit(opts.top ?? 20).execute();
      return rows.map(toRequest);
    },

    /**
     * The agent that holds the lease claims a pending request (before the run it makes for it),
     * completes a claimed one (after the run, with its id and status), or gives one back
     * (the run could not finish: the next run picks it up again).
     */
    async updateRequest(actor: Actor, id: string, body: unknown): Promise<SyncRequest> {
      requireSync(actor, 'update directory synchronization requests');
      const b = parse(requestUpdateBody, body, 'request update');
      return db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('sync_requests').selectAll().where('tenant_id', '=', actor.tenantId).where('id', '=', id).executeTakeFirst();
        if (!row) throw notFound(`Sync request '${id}' does not exist in this tenant.`);
        const lease = await trx.selectFrom('sync_leases').selectAll().where('tenant_id', '=', actor.tenantId).executeTakeFirst();
        const at = clock.now().toISOString();
        if (!lease || lease.holder !== b.holder || lease.expires_at <= at)
          throw new NimbusError('conflict', 'SyncLeaseNotHeld', `Agent '${b.holder}' does not hold the export lease of this tenant; take the lease (POST /sync/v1/lease) before handling requests.`);
        const from = row.status;
        const allowed = (b.status === 'claimed' && from === 'pending') || (b.status !== 'claimed' && from === 'claimed' && row.claimed_by === b.holder);
        if (!allowed) throw new NimbusError('conflict', 'SyncRequestStateConflict', `Sync request '${id}' is ${from}${row.claimed_by ? ` (claimed by ${row.claimed_by})` : ''}; it cannot become ${b.status}.`);
        const patch: Partial<SyncRequestTable> =
          b.status === 'claimed'
            ? { status: 'claimed', claimed_by: b.holder, claimed_at: at }
            : b.status === 'done'
              ? { status: 'done', completed_at: at, run_id: b.runId ?? null, result: b.result ?? null }
              : { status: 'pending', claimed_by: null, claimed_at: null };
        await trx.updateTable('sync_requests').set(patch).where('id', '=', id).execute();
        return toRequest({ ...row, ...patch });
      });
    },
  };
}

export type SyncControlService = ReturnType<typeof createSyncControlService>;
