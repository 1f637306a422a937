// `nimbus sync runs | errors | explain <id>`: read-only views of the agent's connector space
// (run history, every object's current error, one object's path from the source entry to
// the cloud object). They open the space without the run lock, so they work during a run.
// Exit codes: 0 done, 2 no connector space, unknown or ambiguous object, bad config.
import type { Command } from 'commander';
import { domainOfBaseDn, loadSyncConfig, type SyncConfig } from '../sync/config.ts';
import { explainObject, findObjects, listRuns, objectErrors, similarObjects, type Candidate, type ErrorEntry, type Explanation } from '../sync/engine/explain.ts';
import type { Exporter } from '../sync/engine/exporter.ts';
import { httpExporterFor } from '../sync/engine/exporter-http.ts';
import { createMapper } from '../sync/engine/mapping.ts';
import { compileScope } from '../sync/engine/scope.ts';
import { requireConnectorSpace } from '../sync/engine/space.ts';
import { action, EXIT, globals, table, UsageError } from './common.ts';

interface InspectOpts {
  config?: string;
  json?: boolean;
}

const configOf = (cmd: Command) => {
  const o = globals(cmd) as InspectOpts;
  return loadSyncConfig(o.config ? { file: o.config } : {});
};

const openSpace = (config: SyncConfig) => requireConnectorSpace(config.sync.dataDir, config.file);

// ---------------------------------------------------------------- explain

/** The id named no object, or several: exit 2 with what to try, or the candidates. */
export class ExplainLookupError extends Error {
  constructor(
    message: string,
    readonly code: 'ObjectNotFound' | 'AmbiguousObject',
    readonly candidates: { anchor: string; type: string; dn: string; matchedOn?: string }[],
  ) {
    super(message);
  }
}

export interface ExplainResult extends Explanation {
  /** The cloud object now (Graph's shape), or why it could not be fetched. */
  cloud: { fetched: boolean; object: Record<string, unknown> | null; note: string };
}

function exporterFor(config: SyncConfig): Exporter {
  // Explain answers a person at a terminal: give up on an unreachable cloud quickly.
  return httpExporterFor(config, { maxAttempts: 2, timeoutMs: 15_000 });
}

/** Explains one object; the cloud part through `exporter` (default: HTTP to target.url). */
export async function explainId(config: SyncConfig, id: string, opts: { cloud?: boolean; exporter?: Exporter } = {}): Promise<ExplainResult> {
  const db = openSpace(config);
  let e: Explanation;
  try {
    const found = findObjects(db, id);
    if (found.length === 0) {
      const similar = similarObjects(db, id);
      throw new ExplainLookupError(
        `No object '${id}' in the connector space ${config.sync.dataDir}. explain looks up a sAMAccountName, DN, UPN (as in the source or in the cloud), source anchor or objectGUID among the objects the last run imported; out-of-scope objects keep only their DN and anchor, so give the DN for those. A new object appears after the next nimbus sync.` +
          (similar.length ? `\nObjects whose DN contains '${id}':\n${similar.map((s) => `  ${s.type} ${s.dn} (anchor ${s.anchor})`).join('\n')}` : ''),
        'ObjectNotFound',
        similar,
      );
    }
    if (found.length > 1)
      throw new ExplainLookupError(
        `'${id}' names ${found.length} objects; give the DN or the source anchor of one:\n${found.map((c: Candidate) => `  ${c.type} ${c.dn} (anchor ${c.anchor}, matched on ${c.matchedOn})`).join('\n')}`,
        'AmbiguousObject',
        found,
      );
    const scope = compileScope(config.source);
    const mapper = createMapper(config.mapping, { domain: config.source.domain?.toLowerCase() ?? domainOfBaseDn(config.source.baseDn) });
    e = await explainObject(db, found[0]!, { scope, mapper, ...(config.source.filter ? { filter: config.source.filter } : {}) });
  } finally {
    db.close();
  }

  let cloud: ExplainResult['cloud'];
  if (!e.export.cloudId) cloud = { fetched: false, object: null, note: 'the object has no cloud counterpart yet (never exported, or removed from the cloud)' };
  else if (opts.cloud === false) cloud = { fetched: false, object: null, note: 'not fetched (--no-cloud)' };
  else {
    const exporter = opts.exporter ?? exporterFor(config);
    try {
      if (!exporter.lookup) cloud = { fetched: false, object: null, note: 'this target cannot look objects up' };
      else {
        const object = await exporter.lookup(e.object.type, e.export.cloudId);
        cloud = object
          ? { fetched: true, object, note: typeof object.deletedDateTime === 'string' ? `in the recycle bin since ${object.deletedDateTime}` : `${config.target.url} ${e.object.type}s/${e.export.cloudId}` }
          : { fetched: true, object: null, note: `the cloud directory has no ${e.object.type} ${e.export.cloudId} any more (purged, or deleted by an administrator); the next export that sends it recreates it` };
      }
    } catch (err) {
      cloud = { fetched: false, object: null, note: `the cloud object could not be fetched: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      if (!opts.exporter) await exporter.close();
    }
  }
  return { ...e, cloud };
}

const MAX_VALUES = 5;

function show(v: unknown): string {
  if (v === undefined || v === null) return '(no value)';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const head = v.slice(0, MAX_VALUES).map((x) => (typeof x === 'string' ? x : JSON.stringify(x)));
    return `${head.join('; ')}${v.length > MAX_VALUES ? `; ... (${v.length} values)` : ''}`;
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const other = (e: ErrorEntry) => {
  const o = e.conflictingObject;
  if (!o) return '';
  const name = o.displayName ?? o.id ?? o.anchor ?? '';
  return `${name}${o.dn && o.dn !== name ? ` (${o.dn})` : ''}`;
};

function explainLines(r: ExplainResult): string[] {
  const o = r.object;
  const lines = [
    `${o.type} ${o.dn}`,
    `  source anchor: ${o.anchor} (matched on ${o.matchedOn})`,
    `  in the source: ${o.inSource ? 'yes' : 'no, deleted'}; last seen by run ${o.lastImport?.runId ?? '?'}${o.lastImport?.at ? ` (${o.lastImport.at})` : ''}`,
    '',
    `Scope: ${r.scope.inScope ? 'in scope' : 'OUT OF SCOPE'}: ${r.scope.reason}`,
  ];
  if (r.source) {
    lines.push('', 'Source entry (staged copy from the last import):');
    for (const k of Object.keys(r.source).sort((a, b) => a.localeCompare(b))) lines.push(`  ${k}: ${show(r.source[k])}`);
  } else lines.push('', 'Source entry: not kept (out-of-scope objects keep only their DN and anchor).');
  if (r.flows.length) {
    lines.push('', `Attribute flows (cloud attribute <- source: value)${r.rulesChanged ? ' [the mapping changed since: the next run recomputes these]' : ''}:`);
    const w = Math.max(...r.flows.map((f) => f.attribute.length));
    for (const f of r.flows) {
      lines.push(`  ${f.pending ? '*' : ' '} ${f.attribute.padEnd(w)} <- ${f.from}: ${show(f.value)}${f.note ? ` (${f.note})` : ''}${f.problem ? `  [refused: ${f.problem}]` : ''}`);
      if (f.pending) lines.push(`    ${' '.repeat(w)}    last exported: ${show(f.exportedValue)}`);
    }
  }
  lines.push('', `Match in the cloud: ${r.match.description}`);
  const x = r.export;
  lines.push('', `Last export: ${x.description}`);
  if (x.cloudId) lines.push(`  cloud id: ${x.cloudId}${x.cloudUpn ? `, UPN in the cloud: ${x.cloudUpn}` : ''}`);
  if (x.upnNote) lines.push(`  note: ${x.upnNote}`);
  for (const p of x.provisioningErrors) lines.push(`  provisioning error (${p.category ?? ''}): ${p.attribute} '${p.value ?? ''}' conflicts with ${other(p) || 'another object'}, since ${p.since ?? '?'}`);
  for (const u of x.unresolved) lines.push(`  waiting: ${u.message}`);
  if (x.error) lines.push(`  error${x.error.at ? ` (${x.error.at})` : ''}: ${x.error.message}`);
  lines.push('', `Cloud object: ${r.cloud.note}`);
  if (r.cloud.object) {
    const keys = ['id', 'displayName', 'userPrincipalName', 'mail', 'proxyAddresses', 'accountEnabled', 'securityEnabled', 'mailEnabled', 'onPremisesImmutableId', 'onPremisesSyncEnabled', 'onPremisesUserPrincipalName', 'onPremisesDistinguishedName', 'onPremisesLastSyncDateTime', 'onPremisesProvisioningErrors', 'deletedDateTime'];
    for (const k of keys) if (r.cloud.object[k] !== undefined && r.cloud.object[k] !== null) lines.push(`  ${k}: ${show(r.cloud.object[k])}`);
  }
  return lines;
}

// ---------------------------------------------------------------- commands

const n = (x: number | undefined) => (x === undefined ? '' : x.toLocaleString('en-US'));

/** Registers `runs`, `errors` and `explain` under the `sync` command. */
export function syncInspectCommands(sync: Command): void {
  const configHelp = 'sync configuration (env NIMBUS_CONFIG, default ./nimbus.yaml)';

  sync
    .command('runs')
    .description('run history from the connector space, newest first: kind, start, end, counts per action, status (kept sync.runRetention, default 7d)')
    .option('--config <file>', configHelp)
    .option('--limit <n>', 'how many runs (1-1000)', '20')
    .option('--json', 'print the runs as JSON (with each run\'s first 100 per-object errors)')
    .action(
      action(async (opts: { limit: string }, cmd: Command) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit '${opts.limit}' must be a whole number from 1 to 1000.`);
        const config = configOf(cmd);
        const db = openSpace(config);
        try {
          const runs = listRuns(db, limit);
          if (globals(cmd).json) {
            process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
            return;
          }
          if (runs.length === 0) {
            process.stdout.write('No runs recorded yet.\n');
            return;
          }
          const rows = runs.map((r) => ({
            run: r.id,
            kind: r.kind,
            started: r.startedAt,
            seconds: r.durationMs === null ? '' : (r.durationMs / 1000).toFixed(1),
            status: r.status,
            read: n(r.counts.read),
            adds: n(r.counts.adds),
            updates: n(r.counts.updates),
            deletes: n(r.counts.deletes),
            errors: n(r.counts.errors),
            message: r.message ? r.message.slice(0, 80) : '',
          }));
          process.stdout.write(`${table(rows, ['run', 'kind', 'started', 'seconds', 'status', 'read', 'adds', 'updates', 'deletes', 'errors', 'message'])}\n`);
        } finally {
          db.close();
        }
      }),
    );

  sync
    .command('errors')
    .description('every object with an error, a provisioning error (duplicate attribute) or a reference not in the cloud yet: object, attribute, value, the other object, since when')
    .option('--config <file>', configHelp)
    .option('--json', 'print a JSON array (streamed)')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const json = !!globals(cmd).json;
        const config = configOf(cmd);
        const db = openSpace(config);
        let count = 0;
        const objects = new Set<string>();
        try {
          if (json) process.stdout.write('[');
          for (const e of objectErrors(db)) {
            if (json) process.stdout.write(`${count ? ',' : ''}\n  ${JSON.stringify(e)}`);
            else {
              if (!objects.has(e.anchor)) process.stdout.write(`${e.type} ${e.dn} (anchor ${e.anchor})\n`);
              const what = e.attribute ? `${e.attribute}${e.value !== null ? ` '${e.value}'` : ''}` : '';
              const conflict = e.kind === 'provisioning' && other(e) ? `; conflicts with ${other(e)}` : '';
              // A provisioning error's message repeats the attribute, value and other object.
              process.stdout.write(`  ${e.kind}${what ? ` ${what}` : ''}${conflict}${e.since ? `; since ${e.since}` : ''}${e.kind === 'provisioning' ? ` (${e.category ?? ''})` : `: ${e.message}`}\n`);
            }
            objects.add(e.anchor);
            count++;
          }
          if (json) process.stdout.write(`${count ? '\n' : ''}]\n`);
          else process.stdout.write(count ? `${count} error(s) on ${objects.size} object(s). nimbus sync explain <DN> shows one object's path.\n` : 'No object has an error.\n');
        } finally {
          db.close();
        }
      }),
    );

  sync
    .command('explain')
    .argument('<id>', 'sAMAccountName, DN, UPN (source or cloud), source anchor or objectGUID')
    .description("one object's path: the source entry, in or out of scope and why, attribute flows with values, the match decision in the cloud, the last export and the cloud object now")
    .option('--config <file>', configHelp)
    .option('--no-cloud', 'do not fetch the cloud object (local connector space only)')
    .option('--json', 'print the explanation as JSON')
    .addHelpText('after', '\nExit codes: 0 explained, 2 no such object (or several: give the DN or anchor), no connector space, or bad configuration.')
    .action(
      action(async (id: string, opts: { cloud?: boolean }, cmd: Command) => {
        const json = !!globals(cmd).json;
        try {
          const r = await explainId(configOf(cmd), id, { cloud: opts.cloud !== false });
          process.stdout.write(json ? `${JSON.stringify(r, null, 2)}\n` : `${explainLines(r).join('\n')}\n`);
        } catch (err) {
          if (!(err instanceof ExplainLookupError)) throw err;
          if (json) process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message, candidates: err.candidates } }, null, 2)}\n`);
          process.stderr.write(`error: ${err.message}\n`);
          process.exitCode = EXIT.usage;
        }
      }),
    );
}
