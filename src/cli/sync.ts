// `nimbus sync [--config F] [--full] [--staging] [--allow-deletes] [--json]`: one sync cycle
// (import -> sync -> export) with a progress line on a terminal and a summary, and
// `nimbus sync pending`: the exports a staging agent holds back. Exit codes: 0 done, 1 done
// with per-object errors, 2 could not run (config, connection, directory sync not activated),
// 3 stopped by the deletion threshold.
import { once } from 'node:events';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { openSyncAgent } from '../sync/agent.ts';
import { ENV_OVERRIDES, loadSyncConfig } from '../sync/config.ts';
import { pendingCounts, pendingExports, type AttributeChange, type PendingAction, type PendingExport } from '../sync/engine/pending.ts';
import type { Progress, RunReport } from '../sync/engine/run.ts';
import type { ObjectType } from '../sync/engine/scope.ts';
import { requireConnectorSpace } from '../sync/engine/space.ts';
import { SyncError } from '../sync/errors.ts';
import { globals } from './common.ts';
import { syncInspectCommands } from './sync-inspect.ts';

export const SYNC_EXIT = { ok: 0, objectErrors: 1, couldNotRun: 2, deletionThreshold: 3 } as const;

export function exitCodeOf(r: RunReport): number {
  switch (r.status) {
    case 'success':
      return SYNC_EXIT.ok;
    case 'completed-with-errors':
      return SYNC_EXIT.objectErrors;
    case 'staged':
      return r.counts.errors > 0 ? SYNC_EXIT.objectErrors : SYNC_EXIT.ok;
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
    r.status === 'staged'
      ? `  pending (staging, nothing exported): ${n(c.pendingAdds ?? 0)} adds, ${n(c.pendingUpdates ?? 0)} updates, ${n(c.pendingDeletes ?? 0)} deletes, ${n(c.errors)} errors; \`nimbus sync pending\` lists them`
      : `  exported: ${n(c.adds)} adds, ${n(c.updates)} updates, ${n(c.deletes)} deletes, ${n(c.unchanged)} unchanged, ${n(c.errors)} errors (${n(c.batches)} batches)`,
  ];
  if (c.provisioningErrors) lines.push(`  ${n(c.provisioningErrors)} objects exported with a provisioning error (duplicate attribute; the cloud shows it on the object)`);
  if (c.unresolved) lines.push(`  ${n(c.unresolved)} objects name a manager or member that is not in the cloud (out of scope or failed); the cloud sets the reference when that object arrives`);
  if (r.message) lines.push(`${r.status === 'failed' ? 'error' : 'note'}: ${r.message}`);
  if (r.pendingDeletes) {
    lines.push(`Deletes this run would have made (${n(r.pendingDeletes.length)}):`);
    for (const d of r.pendingDeletes.slice(0, 50)) lines.push(`  ${d.type} ${d.dn} (${d.reason})`);
    if (r.pendingDeletes.length > 50) lines.push(`  ... and ${n(r.pendingDeletes.length - 50)} more (--json lists all)`);
  }
  if (r.deleted?.length) {
    lines.push(`Deleted in the cloud (${n(c.deletes)}):`);
    for (const d of r.deleted.slice(0, 50)) lines.push(`  ${d.type} ${d.dn} (${d.reason})`);
    if (c.deletes > 50) lines.push(`  ... and ${n(c.deletes - 50)} more (--json lists up to 1000)`);
  }
  if (r.errors.length) {
    lines.push('Per-object errors:');
    for (const e of r.errors.slice(0, 20)) lines.push(`  [${e.phase}] ${e.dn ?? e.anchor ?? ''}: ${e.message}`);
    if (r.counts.errors > 20) lines.push(`  ... and ${n(r.counts.errors - 20)} more (--json lists up to 1000)`);
  }
  return lines;
}

/** The `sync` command, registered once; other files add subcommands to it (`sync runs`, ...). */
export function syncCommandOf(program: Command): Command {
  return program.commands.find((c) => c.name() === 'sync') ?? syncCommands(program);
}

export function syncCommands(program: Command): Command {
  const sync = program
    .command('sync')
    .description('run one sync cycle: import from the source, compute changes, export them to the cloud directory')
    .option('--config <file>', 'sync configuration (env NIMBUS_CONFIG, default ./nimbus.yaml)')
    .option('--full', 'full import (deletes found by difference) and recompute every object (after changing mapping rules); without it, sources that support deltas (AD) read only changes; still exports only differences')
    .option('--staging', 'staging mode for this run (as sync.staging: true): import and compute everything, export nothing; `nimbus sync pending` lists what would be exported')
    .option('--allow-deletes', 'lift sync.deletionThreshold for this one run (after checking the deletes a stopped run listed); the report lists what was deleted')
    .option('--json', 'print the run report as JSON')
    .addHelpText('after', `\nEnvironment overrides:\n${ENV_OVERRIDES.map((o) => `  ${o.env.padEnd(34)} ${o.path}: ${o.doc}`).join('\n')}\n\nExit codes: 0 done, 1 done with per-object errors, 2 could not run, 3 stopped by the deletion threshold.`)
    .action(async (opts: { config?: string; full?: boolean; staging?: boolean; allowDeletes?: boolean }, cmd: Command) => {
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
          report = await agent.run({ full: !!opts.full, ...(opts.staging ? { staging: true } : {}), ...(opts.allowDeletes ? { allowDeletes: true } : {}), ...(onProgress ? { onProgress } : {}) });
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

  sync
    .command('pending')
    .description('list the exports waiting in the connector space (what the next run with staging off exports): add / update / delete per object, with attribute-level before/after')
    .option('--config <file>', 'sync configuration (env NIMBUS_CONFIG, default ./nimbus.yaml)')
    .addOption(new Option('--type <type>', 'only users or only groups').choices(['user', 'group']))
    .addOption(new Option('--action <action>', 'only adds, updates or deletes').choices(['add', 'update', 'delete']))
    .option('--json', 'JSON: {"counts", "objects": [{action, type, anchor, dn, changes: [{attribute, before, after, added, removed}]}]}')
    .addHelpText('after', '\nReads the connector space of sync.dataDir without taking the run lock, so it works while an agent runs.\nExit codes: 0 listed, 2 could not read the connector space.')
    .action(async (_opts: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<{ config?: string; json?: boolean; type?: ObjectType; action?: PendingAction }>();
      try {
        const config = loadSyncConfig(o.config ? { file: o.config } : {});
        await printPending(config.sync.dataDir, { ...(o.type ? { type: o.type } : {}), ...(o.action ? { action: o.action } : {}) }, !!o.json);
      } catch (err) {
        if (!(err instanceof SyncError)) throw err;
        if (o.json) process.stdout.write(`${JSON.stringify({ status: 'failed', code: err.code, message: err.message }, null, 2)}\n`);
        process.stderr.write(`error: ${err.message}\n`);
        process.exitCode = SYNC_EXIT.couldNotRun;
      }
    });
  syncInspectCommands(sync);
  return sync;
}

// ---------------------------------------------------------------- sync pending

const shown = (v: unknown) => {
  const s = JSON.stringify(v ?? null);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function changeLine(c: AttributeChange): string {
  if (c.added || c.removed) return `${c.attribute}: +${n(c.added?.length ?? 0)} -${n(c.removed?.length ?? 0)}${c.added?.length === 1 && !c.removed?.length ? ` (${shown(c.added[0])})` : ''}`;
  return `${c.attribute}: ${shown(c.before)} -> ${shown(c.after)}`;
}

function pendingLines(p: PendingExport): string[] {
  const name = p.userPrincipalName ?? p.displayName;
  const head = `${p.action.padEnd(6)}  ${p.type.padEnd(5)}  ${p.dn}${p.reason ? `  (${p.reason})` : name ? `  (${name})` : ''}`;
  // An add lists no attributes here (all of them are new); --json has them.
  return p.action === 'update' ? [head, ...p.changes.map((c) => `                 ${changeLine(c)}`)] : [head];
}

/** Streams the pending exports to stdout, honouring backpressure; one row in memory at a time. */
async function printPending(dataDir: string, filter: { type?: ObjectType; action?: PendingAction }, json: boolean): Promise<void> {
  const db = requireConnectorSpace(dataDir);
  const file = join(dataDir, 'connector-space.db');
  const out = process.stdout;
  // `nimbus sync pending | head`: a closed pipe ends the listing quietly.
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  try {
    // One read transaction: counts and rows come from the same snapshot, even while an agent runs.
    db.exec('BEGIN');
    const counts = pendingCounts(db);
    if (json) await write(`{"connectorSpace":${JSON.stringify(file)},"counts":${JSON.stringify(counts)},"filter":${JSON.stringify(filter)},"objects":[`);
    else await write(`Pending exports in ${file}: ${n(counts.adds)} adds, ${n(counts.updates)} updates, ${n(counts.deletes)} deletes\n`);
    let listed = 0;
    for (const p of pendingExports(db, filter)) {
      if (json) await write(`${listed ? ',' : ''}\n${JSON.stringify(p)}`);
      else {
        if (listed === 0) await write(`${'ACTION'.padEnd(6)}  ${'TYPE'.padEnd(5)}  OBJECT\n`);
        await write(`${pendingLines(p).join('\n')}\n`);
      }
      listed++;
    }
    if (json) await write(`${listed ? '\n' : ''}],"listed":${listed}}\n`);
    else if (listed === 0) await write(counts.adds + counts.updates + counts.deletes ? 'Nothing matches the filter.\n' : 'Nothing to export: the cloud has what the source says.\n');
    db.exec('COMMIT');
  } finally {
    db.close();
  }
}
