// One sync run: import (stream the source into the connector space) -> sync (compute the
// desired cloud values of what changed) -> export (send only the difference, in batches,
// marking each object exported only after the cloud confirmed it). Every step persists its
// progress, so a killed run and a rerun reach the same end state.
import { createHash, randomUUID } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import { MAX_SYNC_BATCH, MAX_SYNC_BODY_BYTES, syncGroupAttributes, syncUserAttributes, type SyncGroupAttributes, type SyncItem, type SyncResult, type SyncUserAttributes } from '../../cloud/sync/sync-wire.ts';
import { isEntryError, type LdapValue, type SourceConnector, type SourceEntry } from '../connectors/connector.ts';
import type { DeletionThreshold } from '../config.ts';
import { SyncError, type SyncErrorCode } from '../errors.ts';
import type { Exporter, SyncRunReport } from './exporter.ts';
import type { Mapper, StagedEntry } from './mapping.ts';
import { pendingCounts, pendingSummary } from './pending.ts';
import { dnRef, first, normalizeDn, objectTypeOf, scopeOf, text, values, type ObjectType, type ScopeRules } from './scope.ts';
import { deferIndexes, EXPORT_TOTAL, importWriter, PENDING_DELETES, PENDING_UPSERTS, restoreIndexes, type ConnectorSpace, type ObjectRow } from './space.ts';

export interface Engine {
  space: ConnectorSpace;
  connector: SourceConnector;
  exporter: Exporter;
  scope: ScopeRules;
  mapper: Mapper;
  /**
   * More pending deletes than this: export nothing, stop (AD Connect default 500). A number of
   * objects, or `N%` of the objects exported so far.
   */
  deletionThreshold: DeletionThreshold;
  /** Staging mode (sync.staging): import and sync, export nothing. RunOptions.staging overrides it. */
  staging?: boolean;
  /** Objects per export batch, <= MAX_SYNC_BATCH (5000). */
  batchSize: number;
  now?: () => Date;
}

export type Phase = 'check' | 'import' | 'sync' | 'export';

export interface Progress {
  phase: Phase;
  done: number;
  total?: number;
  /** Objects per second in this phase so far. */
  rate: number;
}

export interface RunOptions {
  /**
   * Full import (deletes found by difference) and recompute every object's desired values (after
   * rule changes); exports still send only differences. Without it, a connector with deltaImport
   * and a saved watermark (same source, same scope rules) runs a delta import.
   */
  full?: boolean;
  onProgress?: (p: Progress) => void;
  /**
   * Test hook, called after the cloud confirmed export batch `n` (1-based) and before the
   * connector space records it: the worst moment for a crash. Throwing here simulates one.
   */
  onBatchApplied?: (n: number) => void | Promise<void>;
  signal?: AbortSignal;
  /**
   * Lift sync.deletionThreshold for this one run (`nimbus sync --allow-deletes`, or an
   * administrator's "allow these deletes" relayed by the cloud); the report lists the deletes.
   */
  allowDeletes?: boolean;
  /** Staging for this run (`nimbus sync --staging`): import and sync, export nothing. Default: Engine.staging. */
  staging?: boolean;
}

export type RunStatus = 'success' | 'completed-with-errors' | 'stopped-deletion-threshold-exceeded' | 'staged' | 'failed';

export interface RunCounts {
  read: number;
  users: number;
  groups: number;
  inScope: number;
  outOfScope: number;
  /** Entries that are neither users nor groups (OUs, computers, contacts). */
  ignored: number;
  adds: number;
  updates: number;
  deletes: number;
  unchanged: number;
  /** Per-object errors (import, mapping, export). */
  errors: number;
  /** Objects exported with a provisioning error (duplicate attribute, kept by the cloud). */
  provisioningErrors: number;
  /** Objects still waiting for references that are not in the cloud. */
  unresolved: number;
  batches: number;
  /** Staging runs: exports waiting for the first run with staging off (`nimbus sync pending` lists them). */
  pendingAdds?: number;
  pendingUpdates?: number;
  /** Staging runs and runs stopped by the deletion threshold: deletes waiting. */
  pendingDeletes?: number;
}

export interface ObjectError {
  anchor?: string;
  dn?: string;
  phase: 'import' | 'sync' | 'export';
  message: string;
}

export interface PendingDelete {
  anchor: string;
  type: ObjectType;
  dn: string;
  reason: 'deleted-in-source' | 'out-of-scope';
}

/** full: a full import with every object recomputed (--full); full-import: a full import; delta: a delta import. */
export type RunKind = 'full' | 'full-import' | 'delta';

export interface RunReport {
  runId: number;
  kind: RunKind;
  status: RunStatus;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  counts: RunCounts;
  /** The first 1000 per-object errors (all are on the objects in the connector space). */
  errors: ObjectError[];
  /** When stopped by the deletion threshold: every delete the run would have made. */
  pendingDeletes?: PendingDelete[];
  /** The deletes this run made (the first 1000; counts.deletes has the total). */
  deleted?: PendingDelete[];
  /** Deletes were not computed because some entries could not be read. */
  deletesWithheld?: boolean;
  code?: SyncErrorCode;
  message?: string;
  /** Whether the cloud directory accepted the run report. */
  reportedToCloud?: boolean;
}

const hash = (s: string) => createHash('sha1').update(s).digest('base64');

/**
 * Objects per connector-space commit in the big phases (import, sync step, export records).
 * Each commit writes every page it dirtied, and these phases touch rows and index entries all
 * over the space (imports come in source order, the sync step and the export go in DN order),
 * so a commit per 2000 objects rewrote most of the space each time: at 100k objects, commits
 * every 20000 took the three phases from 71 s to 53 s. A crash loses at most this much work,
 * which the rerun does again (the export is idempotent by source anchor).
 */
const COMMIT_EVERY = 20_000;

/** Groups small writes into one transaction per COMMIT_EVERY objects. */
function committer(db: Database) {
  let pending = 0;
  return {
    write<T>(objects: number, f: () => T): T {
      if (!db.inTransaction) db.exec('BEGIN');
      const r = f();
      pending += objects;
      if (pending >= COMMIT_EVERY) this.commit();
      return r;
    },
    commit(): void {
      if (db.inTransaction) db.exec('COMMIT');
      pending = 0;
    },
  };
}
const MAX_ERRORS = 1000;
/** Stay under the cloud's request body limit with room for JSON framing. */
const MAX_BATCH_BYTES = (MAX_SYNC_BODY_BYTES * 3) / 4;
/**
 * At most ~150k member anchors of groups in one batch. The cloud resolves a new group's whole
 * member list while it applies the batch, so the batch's size shows in the process's peak: a
 * first sync at 100k in one process peaked at 461-506 MB (20 runs) with batches of 12 MB,
 * 455-492 MB (10 runs) with 6 MB, 431-461 MB (8 runs) with 4 MB, 427-454 MB with 3 MB. Each
 * batch is a commit, and each commit rewrites most of the memberships' member index (one entry
 * per membership, keyed by the member, so a batch's new entries land on nearly every page of
 * it): against 3 MB the whole in-process run took 0.935x as long with 6 MB (median of three
 * pairs) and 0.952x with 4 MB (three noisier pairs); 4 MB against 6 MB 0.996x.
 */
export const MAX_GROUP_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * The rows in export batches, in order: each batch takes rows while their stored JSON fits the
 * byte limit of their type, and at least one row, however large.
 */
export function* exportBatches<R extends { type: string; desired: string | null }>(rows: readonly R[]): Generator<R[]> {
  for (let from = 0; from < rows.length; ) {
    let bytes = 0;
    let i = from;
    for (; i < rows.length; i++) {
      const r = rows[i]!;
      const limit = r.type === 'group' ? MAX_GROUP_BATCH_BYTES : MAX_BATCH_BYTES;
      if (i > from && bytes + r.desired!.length > limit) break;
      bytes += r.desired!.length;
    }
    yield rows.slice(from, i);
    from = i;
  }
}

/**
 * Connector-space meta key: '1' when some staged object may be anchored on
 * mS-DS-ConsistencyGuid (its anchor is then not its objectGUID, and a delta finds it by a scan),
 * '0' when a complete import saw none; missing: not known yet (the delta scans once).
 */
const CONSISTENCY_KEY = 'anchors.consistency';

/**
 * What an object's `manager` values give its connector-space row: has_refs (a group, or a user
 * naming a manager), manager_ref (dnRef of an in-scope user's one manager; null for none or
 * several, which a delta reads whole) and the DN keys an in-scope user names (export_first).
 */
function managerRefs(type: ObjectType, managers: readonly LdapValue[], inScope: boolean): { hasRefs: number; managerRef: number | null; keys: string[] } {
  const keys = inScope && type === 'user' ? managers.map((m) => normalizeDn(text(m)!)) : [];
  return { hasRefs: type === 'group' || managers.length > 0 ? 1 : 0, managerRef: keys.length === 1 ? dnRef(keys[0]!) : null, keys };
}

function anchorOf(e: SourceEntry): string | undefined {
  const v = first(e, 'mS-DS-ConsistencyGuid') ?? first(e, 'objectGUID');
  if (v === undefined) return undefined;
  return (typeof v === 'string' ? Buffer.from(v, 'utf8') : v).toString('base64');
}

function stage(e: SourceEntry): StagedEntry {
  const attrs: Record<string, string[]> = {};
  for (const [k, vs] of Object.entries(e.attributes)) attrs[k] = vs.map((v) => (typeof v === 'string' ? v : v.toString('base64')));
  return { dn: e.dn, attrs };
}

/**
 * One run, reported to the cloud directory at its start (in progress) and its end, so the
 * portal shows it wherever the agent runs. Reporting is best-effort: it never fails a run.
 */
export async function runSync(engine: Engine, opts: RunOptions = {}): Promise<RunReport> {
  const runId = randomUUID();
  const startedAt = (engine.now ? engine.now() : new Date()).toISOString();
  const kind = runKind(engine, opts);
  const report = async (run: SyncRunReport) => {
    try {
      await engine.exporter.reportRun?.(run);
      return true;
    } catch {
      return false;
    }
  };
  await report({ runId, kind, status: 'in-progress', inProgress: true, startedAt, counts: {}, errors: [] });
  const r = await runSyncOnce(engine, opts);
  // For the portal: what a stopped run would delete, what a staging run would export, what a run deleted.
  const listed = (items: PendingDelete[], total: number) => ({ total, items: items.slice(0, MAX_REPORTED).map((d) => ({ ...d, dn: d.dn.slice(0, 2048) })) });
  const summary = r.status === 'staged' ? pendingSummary(engine.space.sqlite, MAX_REPORTED) : undefined;
  const reported = await report({
    runId,
    kind,
    status: r.status,
    inProgress: false,
    startedAt,
    endedAt: r.endedAt,
    counts: { ...r.counts },
    errors: r.errors.slice(0, 100).map((e) => ({ ...e })),
    message: r.message ?? null,
    ...(r.pendingDeletes ? { pendingDeletes: listed(r.pendingDeletes, r.pendingDeletes.length) } : {}),
    ...(summary ? { pendingExports: { ...summary, items: summary.items.map((i) => ({ ...i, dn: i.dn.slice(0, 2048) })) } } : {}),
    ...(r.deleted?.length ? { deleted: listed(r.deleted, r.counts.deletes) } : {}),
  });
  return { ...r, reportedToCloud: reported };
}

/** Objects listed in a run report to the cloud (pending deletes, pending exports, deletes made). */
const MAX_REPORTED = 1000;

/** The largest number of deletes a run may make, and how to say it in a message. */
function deletionLimit(engine: Engine): { limit: number; text: string } {
  const t = engine.deletionThreshold;
  if (typeof t === 'number') return { limit: t, text: String(t) };
  const exported = (engine.space.sqlite.prepare('SELECT count(*) AS n FROM objects WHERE exported_hash IS NOT NULL').get() as { n: number }).n;
  const limit = (exported * Number(t.slice(0, -1))) / 100;
  return { limit, text: `${t} of ${exported} exported objects = ${Math.floor(limit)}` };
}

async function runSyncOnce(engine: Engine, opts: RunOptions = {}): Promise<RunReport> {
  const { space, exporter, mapper } = engine;
  const db = space.sqlite;
  const now = () => (engine.now ? engine.now() : new Date());
  const started = now();
  const counts: RunCounts = { read: 0, users: 0, groups: 0, inScope: 0, outOfScope: 0, ignored: 0, adds: 0, updates: 0, deletes: 0, unchanged: 0, errors: 0, provisioningErrors: 0, unresolved: 0, batches: 0 };
  const errors: ObjectError[] = [];
  const fail = (e: ObjectError) => {
    counts.errors++;
    if (errors.length < MAX_ERRORS) errors.push(e);
  };
  // Delta import when the connector can and a complete earlier import left a watermark.
  const watermark = deltaWatermark(engine, opts);
  const kind = runKind(engine, opts);
  const runId = Number(db.prepare('INSERT INTO runs (kind, started_at, status) VALUES (?, ?, ?)').run(kind, started.toISOString(), 'in-progress').lastInsertRowid);
  let phaseStart = Date.now();
  let lastTick = 0;
  const progress = (phase: Phase, done: number, total?: number, force = false) => {
    if (!opts.onProgress) return;
    const t = Date.now();
    if (!force && t - lastTick < 100) return;
    lastTick = t;
    opts.onProgress({ phase, done, ...(total !== undefined ? { total } : {}), rate: done / Math.max(0.001, (t - phaseStart) / 1000) });
  };
  const startPhase = (phase: Phase) => {
    phaseStart = Date.now();
    progress(phase, 0, undefined, true);
  };

  const finish = (status: RunStatus, extra: Partial<RunReport> = {}): RunReport => {
    const ended = now();
    const report: RunReport = { runId, kind, status, startedAt: started.toISOString(), endedAt: ended.toISOString(), durationMs: ended.getTime() - started.getTime(), counts, errors, ...extra };
    db.prepare('UPDATE runs SET ended_at = ?, status = ?, counts = ?, message = ? WHERE id = ?').run(report.endedAt, status, JSON.stringify(counts), extra.message ?? null, runId);
    return report;
  };

  try {
    // ---- check: fail fast (unreachable, credentials, sync not activated) before reading anything.
    startPhase('check');
    const staging = opts.staging ?? engine.staging ?? false;
    let notActivated: string | undefined;
    try {
      await exporter.check();
    } catch (err) {
      // A staging agent exports nothing, so it may run before directory sync is activated.
      if (!(staging && err instanceof SyncError && err.code === 'DirectorySyncNotActivated')) throw err;
      notActivated = err.message;
    }
    const target = space.getMeta('target');
    if (target !== exporter.identity) {
      // Exports to another tenant or server say nothing about this one: export everything again.
      db.exec('UPDATE objects SET exported_hash = NULL, cloud_id = NULL, match = NULL, cloud_upn = NULL, unresolved = NULL; UPDATE object_values SET exported = NULL; DELETE FROM objects WHERE present = 0');
      space.setMeta('target', exporter.identity);
    }

    // ---- import
    startPhase('import');
    // A killed first import left its deferred indexes unbuilt (space.ts).
    restoreIndexes(space);
    const imp = watermark !== undefined ? importDelta(engine, watermark, opts.signal, runId, counts, fail, (n) => progress('import', n)) : importAll(engine, runId, opts, counts, fail, (n) => progress('import', n));
    const { topologyChanged, deletesWithheld } = await imp;
    progress('import', counts.read, counts.read, true);

    // ---- sync
    startPhase('sync');
    const rulesChanged = space.getMeta('rules') !== mapper.fingerprint;
    // (Rows dirty already are left alone: SQLite rewrites a row an UPDATE matches even when
    // nothing changes, and after a first import every row is dirty.)
    if (opts.full || rulesChanged) db.prepare('UPDATE objects SET dirty = 1 WHERE present = 1 AND in_scope = 1 AND dirty = 0').run();
    else if (topologyChanged) db.prepare('UPDATE objects SET dirty = 1 WHERE present = 1 AND in_scope = 1 AND has_refs = 1 AND dirty = 0').run();
    // Deletes are known once the import is (the sync step does not change them): a run that
    // exports runs its export beside the sync step, sending what is computed while it computes
    // the rest; a staging run or one the threshold stops only computes.
    const withheld = 'Some source entries could not be read, so deletions were not computed in this run; fix them and run again.';
    const deleteCount = (db.prepare(`SELECT count(*) AS n FROM objects WHERE ${PENDING_DELETES}`).get() as { n: number }).n;
    const threshold = deleteCount > 0 ? deletionLimit(engine) : { limit: 0, text: '' };
    const stopped = deleteCount > threshold.limit && !opts.allowDeletes;
    const deleted: PendingDelete[] = [];
    if (staging || stopped) await syncAll(engine, fail, (n) => progress('sync', n), now);
    else {
      const frontier = new SyncFrontier();
      const stop = { requested: false };
      let exporting = false;
      const computing = syncAll(engine, fail, (n) => !exporting && progress('sync', n), now, frontier, stop);
      try {
        await exportAll(engine, opts, counts, fail, (n, total) => {
          if (!exporting) startPhase('export');
          exporting = true;
          progress('export', n, total);
        }, now, deleted, frontier);
      } catch (err) {
        stop.requested = true;
        await computing.catch(() => undefined);
        throw err;
      }
      await computing;
      progress('export', counts.adds + counts.updates + counts.deletes + counts.unchanged, undefined, true);
    }
    space.setMeta('rules', mapper.fingerprint);

    // ---- staging: everything is computed; the pending exports stay for `nimbus sync pending`.
    if (staging) {
      const p = pendingCounts(db);
      Object.assign(counts, { pendingAdds: p.adds, pendingUpdates: p.updates, pendingDeletes: p.deletes });
      const notes = [
        `Staging mode: nothing was exported; ${p.adds} adds, ${p.updates} updates and ${p.deletes} deletes are pending (nimbus sync pending lists them). The first run with staging off exports them.`,
        ...(deleteCount > threshold.limit ? [`That run will stop at the deletion threshold (${deleteCount} deletes, more than sync.deletionThreshold ${threshold.text}) unless run with --allow-deletes.`] : []),
        ...(deletesWithheld ? [withheld] : []),
        ...(notActivated ? [notActivated] : []),
      ];
      return finish('staged', { ...(deletesWithheld ? { deletesWithheld } : {}), message: notes.join(' ') });
    }

    // ---- export (done above, beside the sync step), unless the deletion threshold stops it
    if (stopped) {
      startPhase('export');
      const pendingDeletes: PendingDelete[] = [];
      for (const r of db.prepare(`SELECT anchor, type, dn, present FROM objects WHERE ${PENDING_DELETES} ORDER BY dn`).iterate() as IterableIterator<Pick<ObjectRow, 'anchor' | 'type' | 'dn' | 'present'>>)
        pendingDeletes.push({ anchor: r.anchor, type: r.type, dn: r.dn, reason: r.present ? 'out-of-scope' : 'deleted-in-source' });
      counts.pendingDeletes = deleteCount;
      return finish('stopped-deletion-threshold-exceeded', {
        pendingDeletes,
        ...(deletesWithheld ? { deletesWithheld } : {}),
        message: `This run would delete ${deleteCount} objects in the cloud, more than sync.deletionThreshold (${threshold.text}); nothing was exported. Check the list; if the deletions are intended, run \`nimbus sync --allow-deletes\` once (or allow them in the portal), or raise sync.deletionThreshold (NIMBUS_SYNC_DELETION_THRESHOLD).`,
      });
    }
    const status: RunStatus = counts.errors > 0 ? 'completed-with-errors' : 'success';
    const allowed = opts.allowDeletes && deleteCount > threshold.limit ? `Deletion threshold lifted for this run: ${counts.deletes} objects deleted (more than sync.deletionThreshold ${threshold.text}).` : undefined;
    const message = [allowed, deletesWithheld ? withheld : undefined].filter(Boolean).join(' ');
    return finish(status, { ...(deletesWithheld ? { deletesWithheld } : {}), ...(deleted.length ? { deleted } : {}), ...(message ? { message } : {}) });
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    if (err instanceof SyncError) return finish('failed', { code: err.code, message: err.message });
    finish('failed', { message: (err as Error).message });
    throw err;
  }
}

// ---------------------------------------------------------------- import

async function importAll(
  engine: Engine,
  runId: number,
  opts: RunOptions,
  counts: RunCounts,
  fail: (e: ObjectError) => void,
  tick: (n: number) => void,
): Promise<{ topologyChanged: boolean; deletesWithheld: boolean }> {
  const db = engine.space.sqlite;
  const find = db.prepare<[string], Pick<ObjectRow, 'id' | 'type' | 'dn' | 'in_scope' | 'scope_reason' | 'import_hash' | 'present' | 'seen_run'>>('SELECT id, type, dn, in_scope, scope_reason, import_hash, present, seen_run FROM objects WHERE anchor = ?');
  const write = importWriter(db);
  const touch = db.prepare('UPDATE objects SET seen_run = ? WHERE id = ?');
  let topologyChanged = false;
  let unreadable = 0;
  let seenInScope = 0;
  // DN keys of the users this import's users name as their manager (export_first).
  const managerKeys = new Set<string>();
  let consistency = false;
  let inTx = 0;
  // Commit after the first 1000 entries, then every COMMIT_EVERY: bounded work lost on a crash,
  // and few commits (each one writes every page it dirtied, and new anchors and DNs land all
  // over their indexes' pages).
  let commitEvery = 1000;
  // Into an empty connector space, the DN indexes are built after the import (space.ts).
  const deferred = db.prepare('SELECT 1 FROM objects LIMIT 1').get() === undefined;
  if (deferred) deferIndexes(engine.space);
  for await (const item of engine.connector.fullImport(opts.signal)) {
    counts.read++;
    if (inTx === 0) db.exec('BEGIN');
    inTx++;
    if (isEntryError(item)) {
      unreadable++;
      fail({ phase: 'import', ...(item.dn ? { dn: item.dn } : {}), message: `${item.location ? `${item.location}: ` : ''}${item.error}` });
    } else {
      const type = objectTypeOf(item);
      if (!type) counts.ignored++;
      else {
        const anchor = anchorOf(item);
        if (first(item, 'mS-DS-ConsistencyGuid') !== undefined) consistency = true;
        if (!anchor || anchor.length > 60) {
          fail({ phase: 'import', dn: item.dn, message: anchor ? 'the source anchor is longer than 60 characters' : 'the entry has neither mS-DS-ConsistencyGuid nor objectGUID; export it with objectGUID (ldifde exports it by default; ldapsearch needs it in the attribute list)' });
        } else {
          const prev = find.get(anchor);
          // A newer read of an object this import read already replaces it, counted once.
          const again = prev?.seen_run === runId && item.reread === true;
          if (again) counts.read--;
          else counts[type === 'user' ? 'users' : 'groups']++;
          const scope = scopeOf(item, engine.scope);
          const inScope = scope.inScope ? 1 : 0;
          const reason = scope.inScope ? null : scope.reason;
          if (again) {
            // (counted when first read)
          } else if (inScope) {
            counts.inScope++;
            seenInScope++;
          } else counts.outOfScope++;
          // Out-of-scope objects keep no attributes: scope is re-evaluated on every import anyway.
          const staged = inScope ? JSON.stringify(stage(item).attrs) : null;
          const h = staged ? hash(`${type}\n${item.dn}\n${staged}`) : '';
          const { hasRefs, managerRef, keys } = managerRefs(type, values(item, 'manager'), inScope === 1);
          for (const k of keys) managerKeys.add(k);
          const dnKey = normalizeDn(item.dn);
          if (!prev) {
            write.insert(anchor, type, item.dn, dnKey, inScope, reason, runId, h, staged, hasRefs, managerRef);
            if (inScope) topologyChanged = true;
          } else if (prev.seen_run === runId && !again) {
            fail({ phase: 'import', anchor, dn: item.dn, message: `the source anchor ${anchor} appears twice in the source (also ${prev.dn}); the second entry was skipped` });
          } else if (prev.import_hash === h && prev.in_scope === inScope && prev.present === 1 && prev.type === type && prev.scope_reason === reason && prev.dn === item.dn) {
            touch.run(runId, prev.id);
          } else {
            if (prev.dn !== item.dn || prev.in_scope !== inScope || prev.present !== 1) topologyChanged = true;
            write.update(prev.id, type, item.dn, dnKey, inScope, reason, runId, h, staged, hasRefs, managerRef);
          }
        }
      }
    }
    if (inTx >= commitEvery) {
      db.exec('COMMIT');
      inTx = 0;
      commitEvery = COMMIT_EVERY;
      tick(counts.read);
    }
  }
  if (inTx) db.exec('COMMIT');
  if (deferred) restoreIndexes(engine.space);
  const live = (db.prepare('SELECT count(*) AS n FROM objects WHERE present = 1 AND in_scope = 1 AND seen_run != ?').get(runId) as { n: number }).n;
  if (seenInScope === 0 && live > 0)
    throw new SyncError(
      'SourceEmpty',
      `The source returned no in-scope objects, but ${live} were synced before. That looks like a source problem (wrong file, empty export, scope settings), not ${live} deletions, so nothing was changed. Check source.path / source.include / source.filter and run again.`,
    );
  if (unreadable > 0) {
    // Entries that could not be read would not come back in a delta: the next run is full again.
    engine.space.setMeta(WATERMARK_KEY, '');
    rememberManagers(db, managerKeys);
    if (consistency) engine.space.setMeta(CONSISTENCY_KEY, '1');
    return { topologyChanged, deletesWithheld: true };
  }
  const wm = engine.connector.fullImportWatermark?.();
  const gone = db.transaction(() => {
    // Deletes by difference: present objects a complete import did not see are gone from the source.
    const n = db.prepare('UPDATE objects SET present = 0, dirty = 0 WHERE present = 1 AND seen_run != ?').run(runId).changes;
    // Objects never exported need no cloud delete.
    db.prepare('DELETE FROM objects WHERE present = 0 AND exported_hash IS NULL').run();
    // The delta watermark, in the same commit as the state it describes.
    engine.space.setMeta(WATERMARK_KEY, wm === undefined ? '' : JSON.stringify({ source: engine.connector.identity, scope: scopeFingerprint(engine.scope), watermark: wm }));
    rememberManagers(db, managerKeys);
    // A complete import saw every object: whether any is anchored on mS-DS-ConsistencyGuid is known.
    engine.space.setMeta(CONSISTENCY_KEY, consistency ? '1' : '0');
    return n;
  })();
  return { topologyChanged: topologyChanged || gone > 0, deletesWithheld: false };
}

/**
 * Users named as a manager by the users an import read go into export_first (migration 0004):
 * the sync step computes them first and the export sends them first, top of each chain first,
 * so their reports find them in the cloud instead of waiting there. (An override of the
 * manager flow in mapping.user may name others; they are then exported in DN order.)
 */
function rememberManagers(db: Database, keys: ReadonlySet<string>): void {
  if (keys.size === 0) return;
  db.prepare("INSERT OR IGNORE INTO export_first (anchor) SELECT o.anchor FROM json_each(?) j JOIN objects o ON o.dn_key = j.value WHERE o.type = 'user' AND o.in_scope = 1 AND o.present = 1").run(JSON.stringify([...keys]));
}

// ---------------------------------------------------------------- delta import

const runKind = (engine: Engine, opts: RunOptions): RunKind => (opts.full ? 'full' : deltaWatermark(engine, opts) !== undefined ? 'delta' : 'full-import');

/** Connector-space meta key of the saved delta watermark: `{ source, scope, watermark }` as JSON. */
export const WATERMARK_KEY = 'source.watermark';

const scopeFingerprint = (s: ScopeRules) => JSON.stringify({ include: s.include, exclude: s.exclude, filter: s.filter?.toString() ?? null });

/**
 * The watermark a delta import starts from, or undefined for a full import: `--full`, a
 * connector without deltas, no complete import yet, another source, or changed scope rules
 * (out-of-scope objects keep no attributes, so only a full import can bring them in).
 */
function deltaWatermark(engine: Engine, opts: RunOptions): string | undefined {
  if (opts.full || !engine.connector.deltaImport) return undefined;
  const saved = engine.space.getMeta(WATERMARK_KEY);
  if (!saved) return undefined;
  try {
    const w = JSON.parse(saved) as { source: string; scope: string; watermark: string };
    return w.source === engine.connector.identity && w.scope === scopeFingerprint(engine.scope) ? w.watermark : undefined;
  } catch {
    return undefined;
  }
}

/** Delta values over the staged copy: returned attributes replace (case-insensitively), empty ones are cleared. */
function mergeStaged(staged: Record<string, string[]>, delta: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = { ...staged };
  const keyOf = new Map(Object.keys(out).map((k) => [k.toLowerCase(), k]));
  for (const [k, vs] of Object.entries(delta)) {
    const old = keyOf.get(k.toLowerCase());
    if (old !== undefined) delete out[old];
    if (vs.length) out[k] = vs;
  }
  return out;
}

/** The index REFERRERS reads: built by the first delta that needs it (see migration 0007). */
export const REFERRERS_INDEX = 'CREATE INDEX IF NOT EXISTS objects_refs ON objects (manager_ref) WHERE has_refs = 1';

/**
 * The objects whose references a delta must look at, given the dnRef of the changed DN keys (a JSON array):
 * users whose manager is one of them, and the objects read whole (groups; users whose manager
 * is not known as a key). Both parts read the partial index objects_refs (REFERRERS_INDEX).
 */
export const REFERRERS = `SELECT id, type, dn, NULL AS imported FROM objects WHERE has_refs = 1 AND manager_ref IN (SELECT value FROM json_each(?)) AND present = 1 AND in_scope = 1 AND type = 'user'
  UNION ALL
  SELECT o.id, o.type, o.dn, i.imported FROM objects o JOIN object_imports i ON i.id = o.id WHERE o.has_refs = 1 AND o.manager_ref IS NULL AND o.present = 1 AND o.in_scope = 1`;

/**
 * After a delta: (1) a rename or move changes the DN in every `member` and `manager` value that
 * names the object, but AD reports only the renamed object, not the groups and users whose
 * values changed with it (link values follow their target by GUID, [MS-ADTS] 3.1.1.1.6), so
 * those values are rewritten in the staged copies; likewise a deleted object's link values are
 * gone from its referrers in AD, so they are dropped from the staged copies (unless an object
 * holds that DN again); (2) objects whose references name an object that appeared, disappeared
 * or changed scope (`touched`, DN keys) are marked for recompute. One pass over the staged
 * copies that hold references, instead of recomputing all of them as a full import does when
 * the topology changes.
 */
function refreshReferences(engine: Engine, moved: Map<string, string>, touched: Set<string>, deleted: Set<string>): void {
  const db = engine.space.sqlite;
  const held = db.prepare<[string], { n: number }>('SELECT 1 AS n FROM objects WHERE dn_key = ? AND present = 1');
  const dropped = new Set([...deleted].filter((k) => held.get(k) === undefined));
  // A user's one reference, its manager, is its manager_ref: only the users whose manager is one
  // of the changed DNs are read. Groups, and users whose manager is not known as a key (several
  // values, or spelled otherwise), are read whole. Both from the index objects_refs.
  db.exec(REFERRERS_INDEX);
  const changed = JSON.stringify([...new Set([...touched, ...moved.keys()].map(dnRef))]);
  const todo = db.prepare<[string], Pick<ObjectRow, 'id' | 'type' | 'dn' | 'imported'>>(REFERRERS).all(changed);
  const whole = db.prepare<[number], { imported: string }>('SELECT imported FROM object_imports WHERE id = ?');
  const write = importWriter(db);
  const rehash = db.prepare<[string, number, number, number | null, number]>('UPDATE objects SET import_hash = ?, dirty = max(dirty, ?), has_refs = ?, manager_ref = ? WHERE id = ?');
  const markDirty = db.prepare('UPDATE objects SET dirty = 1 WHERE id = ?');
  for (const r of todo) {
    const attrs = JSON.parse(r.imported ?? whole.get(r.id)!.imported) as Record<string, string[]>;
    let rewritten = false;
    let dirty = false;
    for (const k of Object.keys(attrs)) {
      if (!/^(member|manager)$/i.test(k)) continue;
      attrs[k] = attrs[k]!.flatMap((v) => {
        const key = normalizeDn(v);
        if (touched.has(key)) dirty = true;
        if (dropped.has(key)) {
          rewritten = true;
          return [];
        }
        const to = moved.get(key);
        if (to === undefined) return [v];
        rewritten = true;
        return [to];
      });
      if (!attrs[k].length) delete attrs[k];
    }
    if (rewritten) {
      const staged = JSON.stringify(attrs);
      write.setImported(r.id, staged);
      // (The referrers are in scope.)
      const { hasRefs, managerRef } = managerRefs(r.type, Object.entries(attrs).find(([k]) => /^manager$/i.test(k))?.[1] ?? [], true);
      rehash.run(hash(`${r.type}\n${r.dn}\n${staged}`), dirty ? 1 : 0, hasRefs, managerRef, r.id);
    } else if (dirty) markDirty.run(r.id);
  }
}

/**
 * Applies a delta import: changed entries are merged with their staged copy (a delta carries
 * only changed attributes), entries without one are read whole from the source, tombstones
 * become pending deletes. The watermark is saved in the commit after the last change, so a
 * killed run reads the same changes again (applying them twice gives the same state).
 */
async function importDelta(
  engine: Engine,
  watermark: string,
  signal: AbortSignal | undefined,
  runId: number,
  counts: RunCounts,
  fail: (e: ObjectError) => void,
  tick: (n: number) => void,
): Promise<{ topologyChanged: boolean; deletesWithheld: boolean }> {
  const db = engine.space.sqlite;
  type Prev = Pick<ObjectRow, 'id' | 'anchor' | 'type' | 'dn' | 'in_scope' | 'scope_reason' | 'import_hash' | 'present' | 'imported'>;
  const cols = 'id, anchor, type, dn, in_scope, scope_reason, import_hash, present, imported';
  const byAnchor = db.prepare<[string], Prev>(`SELECT ${cols} FROM objects_full WHERE anchor = ?`);
  // An entry whose objectGUID anchors an object here is a user, group or contact (not a container).
  const delta = engine.connector.deltaImport!(watermark, signal, (objectGuid) => byAnchor.get(objectGuid) !== undefined);
  // Objects anchored on ms-DS-ConsistencyGuid are found by the objectGUID in their staged copy.
  const byGuid = db.prepare<[string], Prev>(`SELECT ${cols} FROM objects_full WHERE json_extract(imported, '$.objectGUID[0]') = ? LIMIT 1`);
  // The lookup by objectGUID scans the table, so it only runs when some anchor is not the objectGUID.
  let consistencyAnchors: boolean | undefined;
  const find = (guid: string) => {
    const hit = byAnchor.get(guid);
    if (hit) return hit;
    if (consistencyAnchors === undefined) {
      const known = engine.space.getMeta(CONSISTENCY_KEY);
      consistencyAnchors = known !== undefined ? known === '1' : db.prepare("SELECT 1 FROM objects o JOIN object_imports i ON i.id = o.id WHERE o.anchor IS NOT json_extract(i.imported, '$.objectGUID[0]') LIMIT 1").get() !== undefined;
      engine.space.setMeta(CONSISTENCY_KEY, consistencyAnchors ? '1' : '0');
    }
    return consistencyAnchors ? byGuid.get(guid) : undefined;
  };
  const write = importWriter(db);
  const gone = db.prepare('UPDATE objects SET present = 0, dirty = 0 WHERE anchor = ? AND present = 1');
  let inTx = 0;
  const commitEvery = 1000;
  // Renamed or moved objects, old DN key -> new DN: references to them are rewritten below.
  const moved = new Map<string, string>();
  // DN keys of objects that appeared, disappeared or changed scope: their referrers are recomputed.
  const touched = new Set<string>();
  // DN keys of the objects deleted (their referrers' link values went with them, in AD).
  const deleted = new Set<string>();
  const managerKeys = new Set<string>();

  const upsert = (entry: SourceEntry, anchor: string, prev: Prev | undefined) => {
    if (consistencyAnchors !== true && first(entry, 'mS-DS-ConsistencyGuid') !== undefined) {
      consistencyAnchors = true;
      engine.space.setMeta(CONSISTENCY_KEY, '1');
    }
    const type = objectTypeOf(entry);
    if (!type) {
      counts.ignored++;
      // A user that became a computer, say: no longer ours, so gone from the cloud's view.
      if (prev?.present && gone.run(anchor).changes > 0) touched.add(normalizeDn(prev.dn));
      return;
    }
    counts[type === 'user' ? 'users' : 'groups']++;
    const scope = scopeOf(entry, engine.scope);
    const inScope = scope.inScope ? 1 : 0;
    const reason = scope.inScope ? null : scope.reason;
    counts[inScope ? 'inScope' : 'outOfScope']++;
    const staged = inScope ? JSON.stringify(stage(entry).attrs) : null;
    const h = staged ? hash(`${type}\n${entry.dn}\n${staged}`) : '';
    const { hasRefs, managerRef, keys } = managerRefs(type, values(entry, 'manager'), inScope === 1);
    for (const k of keys) managerKeys.add(k);
    if (!prev) {
      write.insert(anchor, type, entry.dn, normalizeDn(entry.dn), inScope, reason, runId, h, staged, hasRefs, managerRef);
      if (inScope) touched.add(normalizeDn(entry.dn));
    } else if (prev.import_hash !== h || prev.in_scope !== inScope || prev.present !== 1 || prev.type !== type || prev.scope_reason !== reason || prev.dn !== entry.dn) {
      // Scope or presence changed: referrers gain or lose the object. A rename or move alone
      // leaves what their references resolve to (the same anchor) as it was: their values are
      // rewritten, not recomputed; only a referrer that named the new DN before (a dangling
      // reference) is.
      if (prev.in_scope !== inScope || prev.present !== 1) touched.add(normalizeDn(prev.dn)).add(normalizeDn(entry.dn));
      else if (prev.dn !== entry.dn) touched.add(normalizeDn(entry.dn));
      if (normalizeDn(prev.dn) !== normalizeDn(entry.dn)) moved.set(normalizeDn(prev.dn), entry.dn);
      write.update(prev.id, type, entry.dn, normalizeDn(entry.dn), inScope, reason, runId, h, staged, hasRefs, managerRef);
    }
  };

  try {
    for await (const ch of delta.changes) {
      counts.read++;
      // Changes without a staged copy are read whole first, outside the transaction.
      let whole: SourceEntry | null | undefined;
      let prev: Prev | undefined;
      let guid: string | undefined;
      if (ch.kind === 'upsert') {
        const g = first(ch.entry, 'objectGUID');
        guid = g === undefined ? undefined : (typeof g === 'string' ? Buffer.from(g, 'utf8') : g).toString('base64');
        prev = guid ? find(guid) : undefined;
        if (!prev?.imported && ch.whole) whole = ch.entry;
        else if (!prev?.imported) {
          whole = await engine.connector.readEntry?.(ch.entry.dn);
          if (whole === null) {
            // Not a user or group (a changed OU or container): nothing to sync.
            counts.ignored++;
            continue;
          }
          if (!whole) {
            fail({ phase: 'import', dn: ch.entry.dn, message: 'the entry changed but could not be read whole (gone meanwhile?); the next full import settles it' });
            continue;
          }
        }
      }
      if (inTx === 0) db.exec('BEGIN');
      inTx++;
      if (ch.kind === 'delete') {
        const p = find(ch.objectGuid);
        if (p && gone.run(p.anchor).changes > 0) {
          touched.add(normalizeDn(p.dn));
          deleted.add(normalizeDn(p.dn));
        }
      } else if (whole) {
        const anchor = anchorOf(whole);
        if (!anchor || anchor.length > 60) fail({ phase: 'import', dn: whole.dn, message: anchor ? 'the source anchor is longer than 60 characters' : 'the entry has neither mS-DS-ConsistencyGuid nor objectGUID' });
        else upsert(whole, anchor, prev ?? byAnchor.get(anchor));
      } else {
        // Merge in staged form (binary values as base64), the form the connector space keeps.
        const merged = mergeStaged(JSON.parse(prev!.imported!) as Record<string, string[]>, stage(ch.entry).attrs);
        upsert({ dn: ch.entry.dn, attributes: merged }, prev!.anchor, prev);
      }
      if (inTx >= commitEvery) {
        db.exec('COMMIT');
        inTx = 0;
        tick(counts.read);
      }
    }
    // Read before the final transaction: it is a search, and a failure must leave no half-commit.
    let live: Set<string> | undefined;
    if (delta.liveObjectGuids) {
      live = new Set<string>();
      for await (const g of delta.liveObjectGuids()) live.add(g);
    }
    if (inTx === 0) db.exec('BEGIN');
    if (live) {
      const rows = db.prepare<[], { anchor: string; dn: string; guid: string }>("SELECT anchor, dn, COALESCE(json_extract(imported, '$.objectGUID[0]'), anchor) AS guid FROM objects_full WHERE present = 1").all();
      if (live.size === 0 && rows.length > 0) throw new SyncError('SourceEmpty', `The source listed no objects, but ${rows.length} were synced before; nothing was changed. Check the bind account's rights and run again.`);
      for (const r of rows) {
        if (live.has(r.guid) || gone.run(r.anchor).changes === 0) continue;
        touched.add(normalizeDn(r.dn));
        deleted.add(normalizeDn(r.dn));
      }
    }
    if (moved.size || touched.size) refreshReferences(engine, moved, touched, deleted);
    rememberManagers(db, managerKeys);
    engine.space.setMeta(WATERMARK_KEY, JSON.stringify({ source: engine.connector.identity, scope: scopeFingerprint(engine.scope), watermark: delta.watermark() }));
    db.prepare('DELETE FROM objects WHERE present = 0 AND exported_hash IS NULL').run();
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  // refreshReferences marked exactly the objects whose references changed: no blanket recompute.
  return { topologyChanged: false, deletesWithheld: false };
}

// ---------------------------------------------------------------- sync

/**
 * How far the sync step got, for the export that runs beside it. The sync step computes the
 * users in export_first (stage 0, in `managers` order), then the other users and then the
 * groups in DN order (stages 1 and 2, `key` the last (dn_key, anchor) computed); everything
 * before the frontier may be exported, nothing after it yet.
 */
export class SyncFrontier {
  stage = 0;
  key: [string, string] | null = null;
  /** Stage 0: the users to compute first, top of each management chain first, and how many are computed. */
  managers: string[] = [];
  managersDone = 0;
  private waiters: (() => void)[] = [];
  private failure: { error: unknown } | undefined;

  advance(stage: number, key: [string, string] | null): void {
    this.stage = stage;
    this.key = key;
    this.wake();
  }

  /** The sync step failed: the export stops waiting. */
  fail(error: unknown): void {
    this.failure = { error };
    this.wake();
  }

  /** Resolves at the next advance (throws the sync step's error if it failed). */
  async changed(): Promise<void> {
    if (!this.failure) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure) throw this.failure.error;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** The last stage of the sync step: everything is computed. */
const SYNC_DONE = 3;

/**
 * Computes the desired values of every dirty object, in export order: the users named as a
 * manager (export_first), then the other users, then the groups, by DN (so new object_values
 * rows are appended in the order the export reads them). With a frontier, it tells the export
 * after each chunk and lets it run (the export's batches go out while the next chunk is
 * computed); `stop.requested` ends it between chunks.
 */
async function syncAll(engine: Engine, fail: (e: ObjectError) => void, tick: (n: number) => void, now: () => Date, frontier?: SyncFrontier, stop?: { requested: boolean }): Promise<void> {
  const db = engine.space.sqlite;
  type Dirty = Pick<ObjectRow, 'id' | 'anchor' | 'type' | 'dn' | 'dn_key' | 'values_id' | 'desired_hash' | 'exported_hash' | 'imported'>;
  const COLUMNS = 'o.id, o.anchor, o.type, o.dn, o.dn_key, o.values_id, o.desired_hash, o.exported_hash, i.imported';
  // The dirty users of export_first with the manager their staged copy names, to put them in
  // chain order before computing them (CROSS JOIN: from export_first, not from every dirty object).
  const firstUsers = db.prepare<[], { anchor: string; manager: string | null }>(
    "SELECT o.anchor, json_extract(i.imported, '$.manager[0]') AS manager FROM export_first f CROSS JOIN objects o ON o.anchor = f.anchor LEFT JOIN object_imports i ON i.id = o.id WHERE o.dirty = 1 ORDER BY o.dn_key, o.anchor",
  );
  const byAnchors = db.prepare<[string], Dirty>(`SELECT ${COLUMNS} FROM json_each(?) j CROSS JOIN objects o ON o.anchor = j.value LEFT JOIN object_imports i ON i.id = o.id WHERE o.dirty = 1 ORDER BY j.key`);
  const usersByDn = db.prepare<[], Dirty>(`SELECT ${COLUMNS} FROM objects o LEFT JOIN object_imports i ON i.id = o.id WHERE o.dirty = 1 AND o.type = 'user' ORDER BY o.dn_key, o.anchor LIMIT 2000`);
  // Groups without their imported values, read one group at a time as it is computed: a
  // chunk's members all at once were 50 MB of text for 5k groups (two of 100k members each),
  // and twice that parsed, the agent's largest heap. In chunks of 250, not 2000: each group's
  // members are resolved on their own anyway, and the export waits for a chunk before it can
  // send its groups. At 100k (513k members) a chunk of 2000 took ~1.5 s while the cloud, done
  // with the users, waited; in one process the export phase took 1.6 s less on average (six
  // pairs; over HTTP three pairs were mixed).
  const groupsByDn = db.prepare<[], Dirty>(
    `SELECT ${COLUMNS.replace('i.imported', 'NULL AS imported')} FROM objects o WHERE o.dirty = 1 AND o.type = 'group' ORDER BY o.dn_key, o.anchor LIMIT 250`,
  );
  const importedOf = db.prepare('SELECT imported FROM object_imports WHERE id = ?').pluck() as Statement<[number], string | undefined>;
  // DN keys in (a JSON array), anchors out in the same order: one statement for a group's
  // members or a chunk's managers instead of one per reference (100k for an all-users group).
  const byDns = db.prepare(
    'SELECT (SELECT o.anchor FROM objects o WHERE o.dn_key = j.value AND o.in_scope = 1 AND o.present = 1 LIMIT 1) AS anchor FROM json_each(?) j ORDER BY j.key',
  ).pluck() as Statement<[string], string | null>;
  /**
   * The in-scope anchors of these DNs (null: no DN, not in the space or out of scope), in their
   * order. The keys are looked up sorted and once each: neighbouring keys share index pages,
   * which halves SQLite's time for a large group against lookups in member order.
   */
  // Each DN once per step (KeyMemo): 20k entries are ~4 MB of the agent's heap. Not for a step
  // that computes most of a large space (a first sync): its memo would hold a fifth of the
  // members at 100k objects, at the run's peak of memory, for no measurable gain.
  const toCompute = db.prepare('SELECT count(*) FROM objects WHERE dirty = 1').pluck().get() as number;
  const memo: KeyMemo<string> = { answers: new Map(), max: toCompute <= MEMO_MAX ? MEMO_MAX : 0 };
  const resolveAll = (dns: readonly (string | null)[]) => lookupSorted(dns.map((dn) => (dn === null ? null : normalizeDn(dn))), (unique) => byDns.all(JSON.stringify(unique)), memo);
  const addValues = db.prepare<[string]>('INSERT INTO object_values (desired) VALUES (?)');
  // The exported values were implied by the old desired ones (EXPORTED_VALUES): keep them before they change.
  const changeValues = db.prepare<[number, string, number]>('UPDATE object_values SET exported = CASE WHEN exported IS NULL AND ? THEN desired ELSE exported END, desired = ? WHERE id = ?');
  const setComputed = db.prepare<[number | null, string, number]>('UPDATE objects SET values_id = ?, desired_hash = ?, dirty = 0, error = NULL, error_at = NULL WHERE id = ?');
  const setError = db.prepare<[string, string, number]>('UPDATE objects SET dirty = 0, error = ?, error_at = ? WHERE id = ?');
  const setDesired = (r: Dirty, desired: string, h: string) => {
    let values = r.values_id;
    if (values === null) values = Number(addValues.run(desired).lastInsertRowid);
    // Unchanged values (a full run, a rename elsewhere) are not written again.
    else if (r.desired_hash !== h) changeValues.run(r.exported_hash !== null ? 1 : 0, desired, values);
    setComputed.run(values, h, r.id);
  };
  const commits = committer(db);
  // Stage 0, top of each chain first: a manager's own manager is then in the cloud before it.
  const first = firstUsers.all();
  const firstManagers = resolveAll(first.map((r) => r.manager));
  const order = managersInOrder(first.map((r, i) => ({ anchor: r.anchor, manager: firstManagers[i]! })));
  if (frontier) frontier.managers = order;
  let managersDone = 0;
  const nextManagers = () => {
    while (managersDone < order.length) {
      const slice = order.slice(managersDone, managersDone + 2000);
      managersDone += slice.length;
      const rows = byAnchors.all(JSON.stringify(slice));
      if (rows.length) return rows;
    }
    return [];
  };
  const stages = [nextManagers, () => usersByDn.all(), () => groupsByDn.all()];
  let done = 0;
  try {
    for (const [stage, next] of stages.entries()) {
      frontier?.advance(stage, null);
      for (;;) {
        if (stop?.requested) return;
        const rows = next();
        if (rows.length === 0) break;
        const out: { row: Dirty; desired?: string; error?: string }[] = [];
        type Mapped = { row: Dirty; m?: Awaited<ReturnType<Engine['mapper']['map']>>; error?: string };
        const map = async (r: Dirty): Promise<Mapped> => {
          try {
            const staged: StagedEntry = { dn: r.dn, attrs: JSON.parse(r.imported ?? importedOf.get(r.id) ?? '{}') as Record<string, string[]> };
            return { row: r, m: await engine.mapper.map(r.type, staged) };
          } catch (err) {
            return { row: r, error: (err as Error).message };
          }
        };
        // Users mapped first, so that the chunk's managers resolve in one statement; groups
        // one at a time below (groupsByDn).
        const mapped: Mapped[] = [];
        for (const r of rows) mapped.push(r.type === 'user' ? await map(r) : { row: r });
        const managers = resolveAll(mapped.map((x) => (x.row.type === 'user' && x.m?.manager) || null));
        for (const [i, early] of mapped.entries()) {
          const { row: r, m, error } = early.row.type === 'user' ? early : await map(early.row);
          if (!m) {
            out.push({ row: r, error: error! });
            continue;
          }
          try {
            const a = m.attributes;
            if (r.type === 'user') a.manager = managers[i]!;
            else {
              // Members out of scope or unknown are left out, as AD Connect does.
              const anchors: string[] = [];
              for (const x of resolveAll(m.members ?? [])) if (x && x !== r.anchor) anchors.push(x);
              a.members = anchors;
            }
            const parsed = (r.type === 'user' ? syncUserAttributes : syncGroupAttributes).safeParse(a);
            if (!parsed.success) {
              const i = parsed.error.issues[0]!;
              throw new Error(`attribute ${i.path.join('.')}: ${i.message}. Fix the value in the source or override the flow in mapping.${r.type}`);
            }
            // The schema's output has the cloud's key order, so in-process and HTTP exports send
            // byte-identical attributes (the cloud compares its stored copy as text).
            out.push({ row: r, desired: JSON.stringify(parsed.data) });
          } catch (err) {
            out.push({ row: r, error: (err as Error).message });
          }
        }
        const at = now().toISOString();
        commits.write(out.length, () => {
          for (const o of out) {
            if (o.desired !== undefined) setDesired(o.row, o.desired, hash(o.desired));
            else setError.run(o.error!, at, o.row.id);
          }
        });
        for (const o of out) if (o.error) fail({ phase: 'sync', anchor: o.row.anchor, message: o.error });
        done += rows.length;
        tick(done);
        if (frontier) {
          const last = rows[rows.length - 1]!;
          frontier.managersDone = managersDone;
          frontier.advance(stage, [last.dn_key, last.anchor]);
          // Let the export take what is computed (and its answers come in) before the next chunk.
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
    commits.commit();
    frontier?.advance(SYNC_DONE, null);
  } catch (err) {
    frontier?.fail(err);
    throw err;
  }
}

/**
 * Looks `keys` up in key order, each once: `lookup` gets the distinct keys sorted and answers
 * in that order (null or undefined: not found); the answers come back in the order of `keys`,
 * null for a null key. (Positions are sorted, not a map of keys built: an all-users group has
 * 100k of them.) With a memo, keys answered before are not asked again, and new answers are
 * kept while it has room.
 */
export function lookupSorted<T>(keys: readonly (string | null)[], lookup: (unique: string[]) => readonly (T | null | undefined)[], memo?: KeyMemo<T>): (T | null)[] {
  const out = new Array<T | null>(keys.length).fill(null);
  // The positions still to look up: not null, not answered before.
  const order: number[] = [];
  keys.forEach((k, i) => {
    if (k === null) return;
    const answered = memo?.answers.get(k);
    if (answered !== undefined) out[i] = answered;
    else order.push(i);
  });
  order.sort((x, y) => (keys[x]! < keys[y]! ? -1 : keys[x]! > keys[y]! ? 1 : 0));
  const unique: string[] = [];
  for (const i of order) if (unique[unique.length - 1] !== keys[i]) unique.push(keys[i]!);
  const found = unique.length ? lookup(unique) : [];
  if (memo) for (let u = 0; u < unique.length && memo.answers.size < memo.max; u++) memo.answers.set(unique[u]!, found[u] ?? null);
  let u = -1;
  for (const i of order) {
    if (unique[u] !== keys[i]) u++;
    out[i] = found[u] ?? null;
  }
  return out;
}

const MEMO_MAX = 20_000;

/**
 * Answers lookupSorted has given, kept for later calls (up to `max` of them): the sync step's
 * groups share members (an all-users group and each department's), and each member is looked
 * up once per step instead of once per group. Only for as long as the answers cannot change
 * (one sync step: it changes no DN, scope or presence).
 */
export interface KeyMemo<T> {
  answers: Map<string, T | null>;
  max: number;
}

// ---------------------------------------------------------------- export

/**
 * Managers (in DN order, each with its own manager) by their level under the top of their
 * chain: one whose manager is not among them first, then their reports, and so on; DN order
 * within a level. A cycle's members (A manages B manages A) come last, in DN order.
 */
export function managersInOrder(rows: readonly { anchor: string; manager: string | null }[]): string[] {
  const managerOf = new Map(rows.map((r) => [r.anchor, r.manager]));
  const level = new Map<string, number>();
  const levelOf = (anchor: string): number => {
    const known = level.get(anchor);
    if (known !== undefined) return known;
    // Walk up until a known level, the top, or a repeat (a cycle), then number the path down.
    const path: string[] = [];
    const onPath = new Set<string>();
    let at: string | null | undefined = anchor;
    let base = -1;
    while (at !== null && at !== undefined && managerOf.has(at)) {
      const k = level.get(at);
      if (k !== undefined) {
        base = k;
        break;
      }
      if (onPath.has(at)) {
        base = Number.MAX_SAFE_INTEGER / 2;
        break;
      }
      onPath.add(at);
      path.push(at);
      at = managerOf.get(at);
    }
    for (let i = path.length - 1; i >= 0; i--) level.set(path[i]!, ++base);
    return level.get(anchor)!;
  };
  return rows
    .map((r, i) => ({ a: r.anchor, l: levelOf(r.anchor), i }))
    .sort((x, y) => x.l - y.l || x.i - y.i)
    .map((x) => x.a);
}

async function exportAll(
  engine: Engine,
  opts: RunOptions,
  counts: RunCounts,
  fail: (e: ObjectError) => void,
  tick: (n: number, total: number) => void,
  now: () => Date,
  deleted: PendingDelete[],
  frontier: SyncFrontier,
): Promise<void> {
  const db = engine.space.sqlite;
  const size = Math.min(MAX_SYNC_BATCH, Math.max(1, engine.batchSize));
  // `stale`: the values row still holds the exported values from before this change.
  type Pending = Pick<ObjectRow, 'id' | 'anchor' | 'type' | 'dn' | 'dn_key' | 'desired' | 'desired_hash' | 'values_id'> & { stale: number };
  const PENDING_COLUMNS = 'o.id, o.anchor, o.type, o.dn, o.dn_key, v.desired, o.desired_hash, o.values_id, v.exported IS NOT NULL AS stale';
  // In DN order (migration 0004 explains why), keyset-paged on (dn_key, anchor).
  const pendingAll = db.prepare<[string, string, string, number], Pending>(
    `SELECT ${PENDING_COLUMNS} FROM objects o JOIN object_values v ON v.id = o.values_id WHERE o.type = ? AND (o.dn_key, o.anchor) > (?, ?) AND ${PENDING_UPSERTS} ORDER BY o.dn_key, o.anchor LIMIT ?`,
  );
  // The same, up to where the sync step got.
  const pendingUpTo = db.prepare<[string, string, string, string, string, number], Pending>(
    `SELECT ${PENDING_COLUMNS} FROM objects o JOIN object_values v ON v.id = o.values_id WHERE o.type = ? AND (o.dn_key, o.anchor) > (?, ?) AND (o.dn_key, o.anchor) <= (?, ?) AND ${PENDING_UPSERTS} ORDER BY o.dn_key, o.anchor LIMIT ?`,
  );
  const deletes = db.prepare<[string, number], Pick<ObjectRow, 'anchor' | 'type' | 'dn' | 'present'>>(`SELECT anchor, type, dn, present FROM objects WHERE anchor > ? AND ${PENDING_DELETES} ORDER BY anchor LIMIT ?`);
  // `unresolved`: references the cloud holds back until their objects arrive there (it sets
  // them then, without a new export); cleared below once those objects are exported.
  const markExported = db.prepare('UPDATE objects SET exported_hash = ?, exported_at = ?, cloud_id = ?, match = ?, cloud_upn = ?, provisioning_errors = ?, unresolved = ?, error = NULL, error_at = NULL WHERE id = ?');
  // The cloud holds the desired values now: no exported copy is kept (EXPORTED_VALUES).
  const dropExported = db.prepare('UPDATE object_values SET exported = NULL WHERE id = ?');
  const markError = db.prepare('UPDATE objects SET error = ?, error_at = ?, provisioning_errors = ?, unresolved = NULL WHERE anchor = ?');
  const dropRow = db.prepare('DELETE FROM objects WHERE anchor = ?');
  const markUnexported = db.prepare('UPDATE objects SET exported_hash = NULL, exported_at = ?, match = NULL, unresolved = NULL, error = NULL WHERE anchor = ?');
  const dropExportedOf = db.prepare('UPDATE object_values SET exported = NULL WHERE id = (SELECT values_id FROM objects WHERE anchor = ?) AND exported IS NOT NULL');
  // Objects still to compute may all become exports.
  const total = (db.prepare(EXPORT_TOTAL).get() as { n: number }).n;
  // What the cloud confirmed is recorded in few commits; whatever ends the export commits
  // what was recorded (a kill loses the rest, which the next run exports again, unchanged).
  const commits = committer(db);
  let done = 0;

  // Up to exporter.inFlight batches at the cloud at once (two in-process): it applies one while
  // the answer to the one before is recorded and the next is read (and, beside the sync step,
  // computed). Over HTTP one: two requests on two connections may be applied in either order.
  const limit = Math.max(1, engine.exporter.inFlight ?? 1);
  // Answers are recorded as they come; after a failure nothing more is, and the first error ends the export.
  const inFlight = new Set<Promise<void>>();
  const state: { failure?: { error: unknown } } = {};
  const rethrow = () => {
    if (state.failure) throw state.failure.error;
  };
  const send = async (count: number, apply: () => Promise<SyncResult[]>, record: (results: SyncResult[]) => void) => {
    rethrow();
    if (opts.signal?.aborted) throw new SyncError('Aborted', 'The run was stopped between export batches; what the cloud confirmed is recorded, the rest is exported by the next run.');
    const applied = apply()
      .then(async (results) => {
        if (state.failure) return;
        if (results.length !== count) throw new SyncError('TargetRefused', `The cloud directory answered ${results.length} results for ${count} objects; the batch is retried by the next run.`);
        counts.batches++;
        await opts.onBatchApplied?.(counts.batches);
        if (state.failure) return;
        commits.write(count, () => record(results));
        done += count;
        tick(done, total);
      })
      .catch((error: unknown) => {
        state.failure ??= { error };
      });
    inFlight.add(applied);
    void applied.finally(() => inFlight.delete(applied));
    while (inFlight.size >= limit) await Promise.race(inFlight);
    rethrow();
  };
  /** Waits for every batch sent; throws the first failure. */
  const drain = async () => {
    await Promise.all(inFlight);
    rethrow();
  };

  const sendBatch = async (batch: readonly Pending[]) => {
    // desired was validated against the cloud's schema when it was computed.
    const exporter = engine.exporter;
    const apply = exporter.exportPrepared
      ? () => exporter.exportPrepared!(batch.map((r) => ({ op: 'upsert', type: r.type, sourceAnchor: r.anchor, attributesJson: r.desired! })))
      : () => exporter.export(batch.map((r) => ({ op: 'upsert', type: r.type, sourceAnchor: r.anchor, attributes: JSON.parse(r.desired!) as SyncUserAttributes & SyncGroupAttributes })));
    await send(batch.length, apply, (results) => {
      const at = now().toISOString();
      results.forEach((res, i) => {
        const r = batch[i]!;
        const perr = res.provisioningErrors?.length ? JSON.stringify(res.provisioningErrors) : null;
        if (res.status === 'error') {
          markError.run(res.message ?? 'the cloud directory refused the object', at, perr, r.anchor);
          fail({ phase: 'export', anchor: r.anchor, dn: r.dn, message: res.message ?? 'the cloud directory refused the object' });
          return;
        }
        if (res.status === 'created') counts.adds++;
        else if (res.status === 'updated' || res.status === 'restored') counts.updates++;
        else counts.unchanged++;
        if (perr) counts.provisioningErrors++;
        const unresolved = res.unresolvedReferences?.length ? JSON.stringify(res.unresolvedReferences) : null;
        markExported.run(r.desired_hash, at, res.id ?? null, res.match ?? null, res.userPrincipalName ?? null, perr, unresolved, r.id);
        if (r.stale) dropExported.run(r.values_id);
      });
    });
  };

  /** Rows in batches under the byte limits. */
  const sendRows = async (rows: readonly Pending[]) => {
    for (const batch of exportBatches(rows)) await sendBatch(batch);
  };

  const exportUpserts = async () => {
    // Managers first (users named as a manager by the users this run imported), top of the
    // chain first, each level in DN order: their reports, and managers' managers, then find
    // them in the cloud instead of waiting there for them. They go as the sync step computes
    // them, in its order (frontier.managers).
    const byAnchors = db.prepare<[string], Pending>(
      `SELECT ${PENDING_COLUMNS} FROM json_each(?) j CROSS JOIN objects o ON o.anchor = j.value JOIN object_values v ON v.id = o.values_id WHERE ${PENDING_UPSERTS} ORDER BY j.key`,
    );
    for (let sent = 0; ; ) {
      const ready = frontier.stage > 0 ? frontier.managers.length : frontier.managersDone;
      if (sent < ready) {
        for (; sent < ready; sent = Math.min(ready, sent + size)) await sendRows(byAnchors.all(JSON.stringify(frontier.managers.slice(sent, Math.min(ready, sent + size)))));
        continue;
      }
      if (frontier.stage > 0) break;
      await frontier.changed();
    }
    // Their answers are recorded before the users in DN order are read: a manager still at
    // the cloud looks pending and would be sent twice.
    await drain();
    // Users before groups: groups name users as members, users name users as managers. Each
    // up to where the sync step got: whole batches while some are at the cloud, whatever is
    // ready when none is.
    for (const [stage, type] of [[1, 'user'], [2, 'group']] as const) {
      let cursor = ['', ''] as [string, string];
      for (;;) {
        const computed = frontier.stage > stage;
        const bound = computed ? undefined : frontier.stage === stage ? frontier.key : null;
        const rows = bound === null ? [] : bound === undefined ? pendingAll.all(type, cursor[0], cursor[1], size) : pendingUpTo.all(type, cursor[0], cursor[1], bound[0], bound[1], size);
        if (rows.length > 0 && (computed || rows.length === size || inFlight.size === 0)) {
          const last = rows[rows.length - 1]!;
          cursor = [last.dn_key, last.anchor];
          await sendRows(rows);
          continue;
        }
        if (computed) break;
        await frontier.changed();
      }
    }
    await drain();
    db.prepare('DELETE FROM export_first').run();
  };

  try {
    await exportUpserts();
    // References to objects that reached the cloud later in this run (a manager in a later
    // batch) were set by the cloud when they arrived: only references to objects that are not
    // in the cloud (out of scope, failed) still wait. The WHERE matches the objects_unresolved
    // partial index (migration 0002), so a no-change run reads no rows here.
    db.prepare(
      'UPDATE objects SET unresolved = NULL WHERE unresolved IS NOT NULL AND present = 1 AND in_scope = 1 AND NOT EXISTS (SELECT 1 FROM json_each(objects.unresolved) j LEFT JOIN objects t ON t.anchor = j.value AND t.exported_hash IS NOT NULL AND t.present = 1 AND t.in_scope = 1 WHERE t.anchor IS NULL)',
    ).run();
    counts.unresolved = (db.prepare('SELECT count(*) AS n FROM objects WHERE unresolved IS NOT NULL AND present = 1 AND in_scope = 1').get() as { n: number }).n;

    let cursor = '';
    for (;;) {
      const rows = deletes.all(cursor, size);
      if (rows.length === 0) break;
      cursor = rows[rows.length - 1]!.anchor;
      const items: SyncItem[] = rows.map((r) => ({ op: 'delete', type: r.type, sourceAnchor: r.anchor }));
      await send(
        items.length,
        () => engine.exporter.export(items),
        (results) => {
          const at = now().toISOString();
          results.forEach((res, i) => {
            const r = rows[i]!;
            if (res.status === 'error') {
              markError.run(res.message ?? 'the cloud directory refused the delete', at, null, r.anchor);
              fail({ phase: 'export', anchor: r.anchor, dn: r.dn, message: res.message ?? 'the cloud directory refused the delete' });
              return;
            }
            if (res.status === 'deleted') {
              counts.deletes++;
              if (deleted.length < MAX_REPORTED) deleted.push({ anchor: r.anchor, type: r.type, dn: r.dn, reason: r.present ? 'out-of-scope' : 'deleted-in-source' });
            } else counts.unchanged++;
            // Gone from the source: forget it. Out of scope: keep the row (and why) for explain.
            if (r.present === 0) dropRow.run(r.anchor);
            else {
              markUnexported.run(at, r.anchor);
              dropExportedOf.run(r.anchor);
            }
          });
        },
      );
    }
    await drain();
  } finally {
    // Whatever ends the export, nothing the cloud may still answer is left unawaited.
    await Promise.all(inFlight);
    // A failed COMMIT leaves the transaction to runSyncOnce's rollback, which the next run repairs.
    try {
      commits.commit();
    } catch {}
  }
}
