// Sync runs the agent reports (at a run's start and end), kept 7 days, for the portal and
// `GET /sync/v1/runs`: what ran, how it ended, its counts and errors, whether one is running, and
// the lists the portal acts on (pending deletes of a threshold-stopped run, a staging run's
// pending exports, the deletes a run made).
import { badRequest, forbidden } from '../../shared/errors.ts';
import { isSync, type Actor, type Deps } from '../services/context.ts';
import { SYNC_RUN_RETENTION_DAYS, syncRunReport, type SyncRunReport } from './sync-wire.ts';

type RunList = NonNullable<SyncRunReport['pendingDeletes']>;

export function createSyncRunService(deps: Deps) {
  const { db, clock } = deps;
  return {
    /** Records (or updates) a run the agent reports; keeps the last 7 days. */
    async reportRun(actor: Actor, body: unknown): Promise<void> {
      if (!isSync(actor)) throw forbidden(`Only an app with the sync role can report sync runs; '${actor.name}' has the ${actor.role} role.`);
      const r = syncRunReport.safeParse(body);
      if (!r.success) {
        const issue = r.error.issues[0]!;
        throw badRequest(`Invalid run report: ${issue.path.join('.') || 'body'}: ${issue.message}.`, issue.path.join('.'));
      }
      const run = r.data;
      const now = clock.now().toISOString();
      const row = {
        agent: actor.name,
        kind: run.kind,
        status: run.status,
        in_progress: run.inProgress ? 1 : 0,
        started_at: run.startedAt,
        ended_at: run.endedAt ?? null,
        counts: JSON.stringify(run.counts),
        errors: JSON.stringify(run.errors),
        message: run.message ?? null,
        updated_at: now,
        pending_deletes: run.pendingDeletes ? JSON.stringify(run.pendingDeletes) : null,
        pending_exports: run.pendingExports ? JSON.stringify(run.pendingExports) : null,
        deleted: run.deleted ? JSON.stringify(run.deleted) : null,
      };
      await db
        .insertInto('sync_runs')
        .values({ tenant_id: actor.tenantId, run_id: run.runId, ...row })
        .onConflict((oc) => oc.columns(['tenant_id', 'run_id']).doUpdateSet(row))
        .execute();
      // Pending lists are a snapshot: only this agent's latest one is kept (an agent stopped by
      // the threshold reports the same list every cycle; 7 days of them would fill the store).
      for (const column of ['pending_deletes', 'pending_exports'] as const) {
        if (row[column] === null) continue;
        await db.updateTable('sync_runs').set({ [column]: null }).where('tenant_id', '=', actor.tenantId).where('agent', '=', actor.name).where('run_id', '!=', run.runId).where(column, 'is not', null).execute();
      }
      const cutoff = new Date(clock.now().getTime() - SYNC_RUN_RETENTION_DAYS * 86_400_000).toISOString();
      await db.deleteFrom('sync_runs').where('tenant_id', '=', actor.tenantId).where('started_at', '<', cutoff).execute();
    },

    /** Reported runs, newest first, and whether one is in progress now. */
    async runs(tenantId: string, top = 20) {
      const rows = await db.selectFrom('sync_runs').selectAll().where('tenant_id', '=', tenantId).orderBy('started_at', 'desc').limit(top).execute();
      const runs = rows.map((r) => ({
        runId: r.run_id,
        agent: r.agent,
        kind: r.kind,
        status: r.status,
        inProgress: r.in_progress === 1,
        startedAt: r.started_at,
        endedAt: r.ended_at,
        counts: JSON.parse(r.counts) as Record<string, number>,
        errors: JSON.parse(r.errors) as unknown[],
        message: r.message,
        lastReportedAt: r.updated_at,
        ...(r.pending_deletes ? { pendingDeletes: JSON.parse(r.pending_deletes) as RunList } : {}),
        ...(r.pending_exports ? { pendingExports: JSON.parse(r.pending_exports) as NonNullable<SyncRunReport['pendingExports']> } : {}),
        ...(r.deleted ? { deleted: JSON.parse(r.deleted) as RunList } : {}),
      }));
      return { inProgress: runs.some((r) => r.inProgress), runs };
    },

  };
}
