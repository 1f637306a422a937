// The agent's scheduler (`nimbus agent`): holds the tenant's export lease, runs a delta cycle
// every sync.interval, and sooner when the source changed (change-probe.ts), an administrator
// asked in the cloud ("sync now", "allow deletes"), or the config file changed (a full cycle
// when scope or rules changed). A failed cycle is retried with backoff; stop() (SIGTERM) ends
// the current cycle after its current export batch, gives the lease back and returns.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { openSyncAgent, type RunnableAgent } from '../agent.ts';
import type { SyncConfig } from '../config.ts';
import type { Exporter, LeaseState, SyncRequest } from '../engine/exporter.ts';
import { httpExporterFor } from '../engine/exporter-http.ts';
import type { RunReport } from '../engine/run.ts';
import { SyncError } from '../errors.ts';
import { backoffDelay, type BackoffOptions } from './backoff.ts';
import { createChangeProbe, type ChangeProbe } from './change-probe.ts';
import { watchConfig } from './config-watch.ts';
import type { AgentMetrics, CycleTrigger } from './metrics.ts';

/** The lease lasts this long unless renewed; renewed every third of it, so two missed renewals are survived. */
export const DEFAULT_LEASE_TTL_MS = 30_000;

export interface SchedulerOptions {
  config: SyncConfig;
  /** Reloads the config file (loadSyncConfig); called when the file changed on disk. */
  reload: () => SyncConfig;
  logger: Logger;
  metrics: AgentMetrics;
  /** Builds the engine for a config; default openSyncAgent (HTTP exporter). Only run and close are used (the run's kind comes from its report). */
  openAgent?: (config: SyncConfig) => Promise<RunnableAgent>;
  /** The control channel to the cloud (lease, requests); default an HTTP exporter of config.target. */
  openControl?: (config: SyncConfig) => Promise<Exporter> | Exporter;
  /** Lease holder id; default host:pid:random. */
  holder?: string;
  leaseTtlMs?: number;
  /** When another agent holds the lease: wait for it (default), or stop with SyncError 'LeaseHeld'. */
  waitForLease?: boolean;
  backoff?: BackoffOptions;
  /** Called after every cycle (tests, the bench). */
  onCycle?: (c: CycleResult) => void;
}

export interface CycleResult {
  trigger: CycleTrigger;
  full: boolean;
  allowDeletes: boolean;
  /** The run's kind, from its report (full, full-import, delta). */
  kind?: string;
  report?: RunReport;
  error?: Error;
  requests: SyncRequest[];
}

export interface Scheduler {
  readonly holder: string;
  /** Resolves when the loop ended (after stop(), or a refused lease without waitForLease). */
  readonly done: Promise<void>;
  /** Ends after the current export batch; idempotent. */
  stop(reason?: string): void;
  status(): Record<string, unknown>;
}

const OK_STATUSES = new Set(['success', 'completed-with-errors', 'stopped-deletion-threshold-exceeded']);

export function newHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

const defaultControl = (config: SyncConfig): Exporter => httpExporterFor(config);

export function startScheduler(o: SchedulerOptions): Scheduler {
  const log = o.logger;
  const holder = o.holder ?? newHolderId();
  const ttlMs = o.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  const renewMs = Math.max(1000, Math.floor(ttlMs / 3));
  const openAgent = o.openAgent ?? ((c: SyncConfig) => openSyncAgent(c));
  const openControl = o.openControl ?? defaultControl;

  let config = o.config;
  let stopping = false;
  let wake: (() => void) | undefined;
  let cycleAbort: AbortController | undefined;
  const state = {
    lease: undefined as LeaseState | undefined,
    leaseHeld: false,
    leaseRenewedAt: 0,
    failures: 0,
    lastCycleAt: undefined as string | undefined,
    lastStatus: undefined as string | undefined,
    lastSuccessAt: undefined as string | undefined,
    running: false,
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(t);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  /** Takes or renews the lease; false when another agent holds it (logged once per holder). */
  let waitingFor: string | undefined;
  async function lease(control: Exporter): Promise<boolean> {
    if (config.sync.staging) {
      // A staging agent exports nothing, so it takes no lease: a warm standby must never keep
      // the exporting agent waiting. Switched to staging while holding it: give it back.
      if (state.lease?.acquired) {
        await control.releaseLease?.(holder).catch(() => undefined);
        state.lease = undefined;
        log.info({ holder }, 'staging mode: export lease released');
      }
      state.leaseHeld = true;
      o.metrics.lease(false);
      return true;
    }
    if (!control.acquireLease) {
      state.leaseHeld = true;
      return true;
    }
    try {
      const l = await control.acquireLease(holder, Math.ceil(ttlMs / 1000));
      state.lease = l;
      if (l.acquired) {
        if (!state.leaseHeld) log.info({ holder, expiresAt: l.expiresAt }, 'export lease acquired');
        state.leaseHeld = true;
        state.leaseRenewedAt = Date.now();
        waitingFor = undefined;
      } else {
        if (state.leaseHeld) log.error({ holder, heldBy: l.holder }, 'export lease lost to another agent; stopping exports');
        state.leaseHeld = false;
        if (waitingFor !== l.holder) {
          waitingFor = l.holder;
          log.warn(
            { holder, heldBy: l.holder, heldByApp: l.agent, expiresAt: l.expiresAt },
            `another agent (${l.holder}, app '${l.agent}') holds the export lease of tenant '${config.target.tenant}' until ${l.expiresAt}; this agent waits and takes over if that agent stops or dies`,
          );
        }
      }
    } catch (err) {
      // The cloud is unreachable: keep a held lease until its own expiry would have passed.
      log.warn({ err: (err as Error).message }, 'could not take or renew the export lease');
      if (state.leaseHeld && Date.now() - state.leaseRenewedAt >= ttlMs) {
        log.error({ holder }, 'export lease expired without renewal (cloud unreachable); exports pause until it is taken again');
        state.leaseHeld = false;
      }
    }
    o.metrics.lease(state.leaseHeld);
    return state.leaseHeld;
  }

  async function claim(control: Exporter, reqs: SyncRequest[]): Promise<SyncRequest[]> {
    const out: SyncRequest[] = [];
    for (const r of reqs) {
      try {
        await control.updateRequest?.(r.id, { holder, status: 'claimed' });
        out.push(r);
        o.metrics.request(r.kind);
        log.info({ request: r.id, kind: r.kind, requestedBy: r.requestedBy, requestedAt: r.requestedAt }, `picked up a '${r.kind}' request from the cloud directory`);
      } catch (err) {
        log.warn({ request: r.id, err: (err as Error).message }, 'could not claim a request; it stays pending');
      }
    }
    return out;
  }

  async function loop(): Promise<void> {
    let control = await openControl(config);
    let agent: RunnableAgent | undefined;
    let probe: ChangeProbe = createChangeProbe(config);
    // A change the source reports itself (AD change notification) is looked at now, not at the next poll.
    const listen = (p: ChangeProbe) =>
      p.onChange?.(() => {
        nextProbe = 0;
        wake?.();
      });
    const watcher = watchConfig(config.file, o.reload, config);
    let forceFull = false;
    let fullTrigger: CycleTrigger | undefined;
    let nextDue = Date.now();
    let trigger: CycleTrigger = 'start';
    let lastToken: string | undefined;
    let nextProbe = 0;
    let nextCloudPoll = 0;
    let nextRenew = 0;
    let pending: SyncRequest[] = [];
    listen(probe);
    const tickMs = () => Math.max(50, Math.min(1000, config.sync.changePoll > 0 ? config.sync.changePoll : 1000, config.sync.cloudPoll, renewMs));

    const reopen = async (next: SyncConfig, fields: string[], scope: boolean) => {
      const targetChanged = fields.some((f) => f.startsWith('target.')) || fields.includes('secrets');
      if (targetChanged && state.leaseHeld) await control.releaseLease?.(holder).catch(() => undefined);
      if (targetChanged) {
        await control.close();
        state.leaseHeld = false;
        o.metrics.lease(false);
      }
      await agent?.close();
      agent = undefined;
      await probe.close();
      if (fields.includes('sync.metrics')) log.warn('sync.metrics changed; the new address takes effect when the agent restarts');
      config = next;
      if (targetChanged) control = await openControl(config);
      probe = createChangeProbe(config);
      listen(probe);
      lastToken = undefined;
      if (scope) {
        forceFull = true;
        fullTrigger = 'config';
      }
      nextDue = scope ? Date.now() : Math.min(nextDue, Date.now() + config.sync.interval);
      nextRenew = 0;
    };

    try {
      while (!stopping) {
        const now = Date.now();
        // ---- the config file
        const c = watcher.check();
        if (c.kind === 'invalid') log.error({ file: config.file }, `the changed config file does not load; keeping the last good configuration: ${c.message}`);
        else if (c.kind === 'changed') {
          log.info({ file: config.file, changed: c.change.fields, full: c.change.scope }, c.change.scope ? 'config changed (scope or rules): the next cycle is a full one' : 'config changed; reloaded');
          await reopen(c.config, c.change.fields, c.change.scope);
        }
        // ---- the lease
        if (now >= nextRenew) {
          await lease(control);
          nextRenew = Date.now() + (state.leaseHeld ? renewMs : Math.min(renewMs, 5000));
          if (!state.leaseHeld && o.waitForLease === false && state.lease && !state.lease.acquired) {
            const l = state.lease;
            throw new SyncError(
              'RunInProgress',
              `Another agent (${l.holder}, app '${l.agent}') holds the export lease of tenant '${config.target.tenant}' until ${l.expiresAt}. Stop that agent, or run this one without --no-wait to wait as a standby and take over when the lease is released or expires.`,
            );
          }
        }
        if (!state.leaseHeld) {
          await sleep(Math.max(50, nextRenew - Date.now()));
          continue;
        }
        // ---- requests from the cloud directory
        // Requests ("sync now", "allow these deletes") are for the exporting agent, not a standby.
        if (now >= nextCloudPoll && control.pendingRequests && !config.sync.staging) {
          try {
            pending = await control.pendingRequests();
          } catch (err) {
            log.debug({ err: (err as Error).message }, 'could not read requests from the cloud directory');
          }
          nextCloudPoll = Date.now() + config.sync.cloudPoll;
        }
        // ---- the source
        if (config.sync.changePoll > 0 && now >= nextProbe) {
          const tok = await probe.token();
          if (tok !== undefined && lastToken !== undefined && tok !== lastToken && trigger !== 'retry') {
            log.debug({ probe: probe.kind }, 'the source changed');
            trigger = 'change';
            nextDue = Math.min(nextDue, Date.now());
          }
          if (tok !== undefined && lastToken === undefined) lastToken = tok;
          nextProbe = Date.now() + config.sync.changePoll;
        }
        if (pending.length > 0) {
          trigger = 'request';
          nextDue = Math.min(nextDue, Date.now());
        }
        if (forceFull && fullTrigger) {
          trigger = fullTrigger;
          fullTrigger = undefined;
        }
        if (Date.now() < nextDue) {
          await sleep(Math.min(tickMs(), nextDue - Date.now()));
          continue;
        }

        // ---- a cycle
        if (control.pendingRequests && !config.sync.staging) pending = await control.pendingRequests().catch(() => pending);
        if (stopping) break;
        const requests = await claim(control, pending);
        pending = [];
        const allowDeletes = requests.some((r) => r.kind === 'allow-deletes');
        const full = forceFull;
        const result: CycleResult = { trigger, full, allowDeletes, requests };
        o.metrics.cycle(trigger);
        const tokenBefore = config.sync.changePoll > 0 ? await probe.token() : undefined;
        cycleAbort = new AbortController();
        // stop() may have come while the requests were claimed: this cycle ends at its first batch.
        if (stopping) cycleAbort.abort();
        // Renew the lease while the cycle runs; losing it stops the cycle after its current batch.
        let renewing = false;
        const renewer = setInterval(() => {
          if (renewing) return;
          renewing = true;
          void lease(control)
            .then((held) => {
              if (!held) cycleAbort?.abort();
            })
            .finally(() => (renewing = false));
        }, renewMs);
        state.running = true;
        const t0 = Date.now();
        log.info({ trigger, full, allowDeletes }, 'cycle started');
        try {
          agent ??= await openAgent(config);
          const report = await agent.run({ full, signal: cycleAbort.signal, ...(allowDeletes ? { allowDeletes } : {}) });
          result.report = report;
          result.kind = report.kind;
          o.metrics.run(result.kind, report);
          const c = report.counts;
          const fields = { runId: report.runId, kind: result.kind, status: report.status, durationMs: report.durationMs, read: c.read, adds: c.adds, updates: c.updates, deletes: c.deletes, unchanged: c.unchanged, errors: c.errors, batches: c.batches, trigger };
          if (report.status === 'failed' && report.code === 'Aborted' && stopping) log.info(fields, 'cycle stopped after its current export batch; the next run exports the rest');
          else if (report.status === 'failed') log.error({ ...fields, code: report.code }, `cycle failed: ${report.message ?? 'unknown error'}`);
          else if (report.status === 'stopped-deletion-threshold-exceeded') log.warn({ ...fields, pendingDeletes: report.pendingDeletes?.length }, `${report.message ?? 'stopped by the deletion threshold'} Or allow them once in the cloud: nimbus dirsync allow-deletes --tenant ${config.target.tenant}`);
          else log.info(fields, 'cycle ended');
        } catch (err) {
          result.error = err as Error;
          o.metrics.cycleError(err);
          log.error({ err: (err as Error).message, code: err instanceof SyncError ? err.code : undefined, trigger }, 'cycle failed');
        } finally {
          clearInterval(renewer);
          state.running = false;
          cycleAbort = undefined;
        }
        const ok = result.report !== undefined && OK_STATUSES.has(result.report.status);
        state.lastCycleAt = new Date().toISOString();
        state.lastStatus = result.report?.status ?? 'failed';
        for (const r of requests) {
          const update = ok ? { holder, status: 'done' as const, runId: String(result.report!.runId), result: result.report!.status } : { holder, status: 'pending' as const };
          await control.updateRequest?.(r.id, update).catch((err: Error) => log.warn({ request: r.id, err: err.message }, 'could not report the request back to the cloud directory'));
        }
        if (ok) {
          if (tokenBefore !== undefined) lastToken = tokenBefore;
          state.failures = 0;
          if (result.report!.status !== 'stopped-deletion-threshold-exceeded') state.lastSuccessAt = state.lastCycleAt;
          forceFull = false;
          nextDue = t0 + config.sync.interval;
          trigger = 'interval';
        } else if (!stopping) {
          state.failures++;
          const wait = backoffDelay(state.failures, o.backoff);
          log.warn({ failures: state.failures, retryInMs: wait }, 'cycle failed; retrying with backoff');
          nextDue = Date.now() + wait;
          trigger = 'retry';
          // A broken connection (DC restarted, network) is not reused: the retry reconnects.
          await agent?.close().catch(() => undefined);
          agent = undefined;
        }
        o.metrics.failures(state.failures);
        o.onCycle?.(result);
      }
    } finally {
      await agent?.close().catch(() => undefined);
      await probe.close();
      if (state.leaseHeld && control.releaseLease) {
        await control.releaseLease(holder).then(
          () => log.info({ holder }, 'export lease released'),
          (err: Error) => log.warn({ err: err.message }, 'could not release the export lease; it expires by itself'),
        );
        state.leaseHeld = false;
        o.metrics.lease(false);
      }
      await control.close();
    }
  }

  const done = loop();
  return {
    holder,
    done,
    stop(reason) {
      if (stopping) return;
      stopping = true;
      log.info({ reason }, state.running ? 'stopping after the current export batch' : 'stopping');
      cycleAbort?.abort();
      wake?.();
    },
    status: () => ({ holder, leaseHeld: state.leaseHeld, running: state.running, failures: state.failures, lastCycleAt: state.lastCycleAt, lastStatus: state.lastStatus, lastSuccessAt: state.lastSuccessAt }),
  };
}
