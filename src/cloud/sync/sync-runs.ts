// Sync runs the agent reports (at a run's start and end), kept 7 days, for the portal and
// `GET /sync/v1/runs`: what ran, how it ended, its counts and errors, and whether one is running.
import { badRequest, forbidden } from '../../shared/errors.ts';
import { isSync, type Actor, type Deps } from '../services/context.ts';
import { SYNC_RUN_RETENTION_DAYS, syncRunReport } from './sync-wire.ts';

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
      };
      await db
        .insertInto('sync_runs')
        .values({ tenant_id: actor.tenantId, run_id: run.runId, ...row })
        .onConflict((oc) => oc.columns(['tenant_id', 'run_id']).doUpdateSet(row))
        .execute();
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
      }));
      return { inProgress: runs.some((r) => r.inProgress), runs };
    },

  };
}
