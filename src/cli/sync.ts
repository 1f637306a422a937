// `nimbus sync [--config F] [--full] [--json]`: one sync cycle (import -> sync -> export) with
// a progress line on a terminal and a summary. Exit codes: 0 done, 1 done with per-object
// errors, 2 could not run (config, connection, directory sync not activated), 3 stopped by
// the deletion threshold.
import type { Command } from 'commander';
import { openSyncAgent } from '../sync/agent.ts';
import { ENV_OVERRIDES, loadSyncConfig } from '../sync/config.ts';
import type { Progress, RunReport } from '../sync/engine/run.ts';
import { SyncError } from '../sync/errors.ts';
import { globals } from './common.ts';

export const SYNC_EXIT = { ok: 0, objectErrors: 1, couldNotRun: 2, deletionThreshold: 3 } as const;

export function exitCodeOf(r: RunReport): number {
  switch (r.status) {
    case 'success':
      return SYNC_EXIT.ok;
    case 'completed-with-errors':
      return SYNC_EXIT.objectErrors;
    case 'stopped-deletion-threshold-exceeded':
      return SYNC_EXIT.deletionThreshold;
    default:
      return SYNC_EXIT.couldNotRun;
  }
}

const n = (x: number) => x.toLocaleString('en-US');

function summary(r: RunReport): string[] {
  const c = r.counts;
  const lines = [
    `Sync run ${r.runId}: ${r.status} in ${(r.durationMs / 1000).toFixed(1)} s`,
    `  read ${n(c.read)} entries: ${n(c.users)} users, ${n(c.groups)} groups, ${n(c.ignored)} other; ${n(c.inScope)} in scope, ${n(c.outOfScope)} out of scope`,
    `  exported: ${n(c.adds)} adds, ${n(c.updates)} updates, ${n(c.deletes)} deletes, ${n(c.unchanged)} unchanged, ${n(c.errors)} errors (${n(c.batches)} batches)`,
  ];
  if (c.provisioningErrors) lines.push(`  ${n(c.provisioningErrors)} objects exported with a provisioning error (duplicate attribute; the cloud shows it on the object)`);
  if (c.unresolved) lines.push(`  ${n(c.unresolved)} objects name a manager or member that is not in the cloud (out of scope or failed); the cloud sets the reference when that object arrives`);
  if (r.message) lines.push(`${r.status === 'failed' ? 'error' : 'note'}: ${r.message}`);
  if (r.pendingDeletes) {
    lines.push(`Deletes this run would have made (${n(r.pendingDeletes.length)}):`);
    for (const d of r.pendingDeletes.slice(0, 50)) lines.push(`  ${d.type} ${d.dn} (${d.reason})`);
    if (r.pendingDeletes.length > 50) lines.push(`  ... and ${n(r.pendingDeletes.length - 50)} more (--json lists all)`);
  }
  if (r.errors.length) {
    lines.push('Per-object errors:');
    for (const e of r.errors.slice(0, 20)) lines.push(`  [${e.phase}] ${e.dn ?? e.anchor ?? ''}: ${e.message}`);
    if (r.counts.errors > 20) lines.push(`  ... and ${n(r.counts.errors - 20)} more (--json lists up to 1000)`);
  }
  return lines;
}

export function syncCommands(program: Command): void {
  program
    .command('sync')
    .description('run one sync cycle: import from the source, compute changes, export them to the cloud directory')
    .option('--config <file>', 'sync configuration (env NIMBUS_CONFIG, default ./nimbus.yaml)')
    .option('--full', 'full import (deletes found by difference) and recompute every object (after changing mapping rules); without it, sources that support deltas (AD) read only changes; still exports only differences')
    .option('--json', 'print the run report as JSON')
    .addHelpText('after', `\nEnvironment overrides:\n${ENV_OVERRIDES.map((o) => `  ${o.env.padEnd(34)} ${o.path}: ${o.doc}`).join('\n')}\n\nExit codes: 0 done, 1 done with per-object errors, 2 could not run, 3 stopped by the deletion threshold.`)
    .action(async (opts: { config?: string; full?: boolean }, cmd: Command) => {
      const json = !!globals(cmd).json;
      const tty = !json && process.stderr.isTTY;
      let line = '';
      const onProgress = tty
        ? (p: Progress) => {
            line = `  ${p.phase.padEnd(6)} ${n(p.done)}${p.total ? `/${n(p.total)}` : ''} objects  ${n(Math.round(p.rate))}/s`;
            process.stderr.write(`\r${line}\x1b[K`);
          }
        : undefined;
      try {
        const config = loadSyncConfig(opts.config ? { file: opts.config } : {});
        const agent = await openSyncAgent(config);
        let report: RunReport;
        try {
          report = await agent.run({ full: !!opts.full, ...(onProgress ? { onProgress } : {}) });
        } finally {
          await agent.close();
        }
        if (line) process.stderr.write('\r\x1b[K');
        if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else (report.status === 'failed' ? process.stderr : process.stdout).write(`${summary(report).join('\n')}\n`);
        process.exitCode = exitCodeOf(report);
      } catch (err) {
        if (line) process.stderr.write('\r\x1b[K');
        if (!(err instanceof SyncError)) throw err;
        if (json) process.stdout.write(`${JSON.stringify({ status: 'failed', code: err.code, message: err.message }, null, 2)}\n`);
        process.stderr.write(`error: ${err.message}\n`);
        process.exitCode = SYNC_EXIT.couldNotRun;
      }
    });
}
