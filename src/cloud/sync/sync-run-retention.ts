// Retention of the sync runs agents report, across every tenant: reportRun prunes a tenant's
// old runs when a new report arrives, this also prunes tenants whose agent stopped reporting.
// Called with the hourly purge of `nimbus serve`.
import type { Store } from '../store/store.ts';
import { SYNC_RUN_RETENTION_DAYS } from './sync-wire.ts';

/** Deletes reported runs that started more than `days` before `now`; returns how many. */
export async function pruneSyncRuns(db: Store, now: Date, days = SYNC_RUN_RETENTION_DAYS): Promise<number> {
  const cutoff = new Date(now.getTime() - days * 86_400_000).toISOString();
  const r = await db.deleteFrom('sync_runs').where('started_at', '<', cutoff).executeTakeFirst();
  return Number(r.numDeletedRows);
}
