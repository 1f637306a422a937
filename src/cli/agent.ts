// `nimbus agent [--config F] [--no-wait]`: the long-running sync agent. Runs a delta cycle
// every sync.interval and within seconds of a change in the source, a "sync now" or "allow
// deletes" request in the cloud, or a config change; holds the tenant's export lease; serves
// Prometheus /metrics; logs JSON lines to stderr (never secrets). SIGTERM / SIGINT stop it
// after the current export batch. Exit codes: 0 stopped cleanly, 2 could not run.
import type { Command } from 'commander';
import { pino } from 'pino';
import { ENV_OVERRIDES, loadSyncConfig } from '../sync/config.ts';
import { SyncError } from '../sync/errors.ts';
import { AgentMetrics, serveMetrics, type MetricsServer } from '../sync/scheduler/metrics.ts';
import { startScheduler, type Scheduler } from '../sync/scheduler/scheduler.ts';
import { SYNC_EXIT } from './sync.ts';

export function agentCommands(program: Command): void {
  program
    .command('agent')
    .description('run the sync agent: cycles every sync.interval and within seconds of a change, "sync now" requests, Prometheus /metrics')
    .option('--config <file>', 'sync configuration (env NIMBUS_CONFIG, default ./nimbus.yaml); re-read when it changes')
    .option('--no-wait', 'when another agent holds the export lease of the tenant, exit (code 2) instead of waiting as a standby')
    .addHelpText(
      'after',
      `\nLogs: JSON lines on stderr (level: NIMBUS_LOG_LEVEL, default info).\nEnvironment overrides:\n${ENV_OVERRIDES.map((o) => `  ${o.env.padEnd(34)} ${o.path}: ${o.doc}`).join('\n')}\n\nExit codes: 0 stopped cleanly (SIGTERM/SIGINT), 2 could not run (configuration, metrics address, lease held with --no-wait).`,
    )
    .action(async (opts: { config?: string; wait: boolean }) => {
      // Synchronous writes: every line is out before the process exits, and order is kept.
      const log = pino({ level: process.env.NIMBUS_LOG_LEVEL ?? 'info', base: { pid: process.pid, component: 'nimbus-agent' } }, pino.destination({ fd: 2, sync: true }));
      const load = () => loadSyncConfig(opts.config ? { file: opts.config } : {});
      let metricsServer: MetricsServer | undefined;
      try {
        const config = load();
        const metrics = new AgentMetrics({ version: '0.1.0', source: config.source.type, tenant: config.target.tenant });
        const ref: { scheduler?: Scheduler } = {};
        if (config.sync.metrics !== 'off') {
          metricsServer = await serveMetrics(config.sync.metrics, metrics, () => ref.scheduler?.status() ?? { starting: true });
          log.info({ url: `${metricsServer.url}/metrics` }, 'serving Prometheus metrics');
        }
        const scheduler = startScheduler({ config, reload: load, logger: log, metrics, waitForLease: opts.wait });
        ref.scheduler = scheduler;
        log.info({ config: config.file, source: config.source.type, tenant: config.target.tenant, intervalMs: config.sync.interval, changePollMs: config.sync.changePoll, cloudPollMs: config.sync.cloudPoll, holder: scheduler.holder }, 'agent started');
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals) => {
          if (++signals > 1) {
            log.warn({ signal: sig }, 'second signal: exiting now (the next run resumes from what the cloud confirmed)');
            process.exit(SYNC_EXIT.couldNotRun);
          }
          scheduler.stop(sig);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        try {
          await scheduler.done;
        } finally {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
        }
        log.info('agent stopped');
        process.exitCode = 0;
      } catch (err) {
        if (!(err instanceof SyncError)) throw err;
        log.error({ code: err.code }, err.message);
        process.stderr.write(`error: ${err.message}\n`);
        process.exitCode = SYNC_EXIT.couldNotRun;
      } finally {
        await metricsServer?.close();
      }
    });
}
