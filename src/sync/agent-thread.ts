// The sync agent on a worker thread of its own, exporting through an exporter that stays on
// this thread: the engine's CPU work (parsing, connector space, sync step) runs on one core
// while the cloud directory applies batches on this one (the embedded `nimbus start`).
import { Worker } from 'node:worker_threads';
import type { RunnableAgent } from './agent.ts';
import type { Secret, SyncConfig } from './config.ts';
import type { Exporter } from './engine/exporter.ts';
import type { Progress, RunOptions, RunReport } from './engine/run.ts';
import { SyncError, type SyncErrorCode } from './errors.ts';

/**
 * The exporter methods the worker may call, forwarded to the real exporter on this thread.
 * `identity` is a plain value sent at start; `close` is not forwarded: whoever passed the
 * exporter owns it (the embedded demo keeps using it for leases and requests after the agent
 * is closed), so the worker's `close()` of its bridge closes nothing here.
 */
const BRIDGED = ['check', 'export', 'reportRun', 'lookup', 'acquireLease', 'releaseLease', 'pendingRequests', 'updateRequest'] as const;
export type BridgedMethod = (typeof BRIDGED)[number];

/** An error as it crosses the thread: a SyncError keeps its code, anything else its name and message. */
export type WireError = { kind: 'sync'; code: SyncErrorCode; message: string } | { kind: 'error'; name: string; message: string };

export function toWire(err: unknown): WireError {
  if (err instanceof SyncError) return { kind: 'sync', code: err.code, message: err.message };
  if (err instanceof Error) return { kind: 'error', name: err.name, message: err.message };
  return { kind: 'error', name: 'Error', message: String(err) };
}

export function fromWire(w: WireError): Error {
  if (w.kind === 'sync') return new SyncError(w.code, w.message);
  const err = new Error(w.message);
  err.name = w.name;
  return err;
}

type SecretName = keyof SyncConfig['secrets'];

/** What the worker starts with (workerData): the config without its Secret objects, which cannot be cloned, and their values. */
export interface AgentThreadStart {
  config: Omit<SyncConfig, 'secrets'>;
  /** Revealed in memory only, to rebuild the Secret objects in the worker; never logged. */
  secrets: Partial<Record<SecretName, { value: string; source: string }>>;
  identity: string;
  inFlight?: number;
  /** The bridged methods the real exporter has (the optional ones are left out when it lacks them). */
  methods: BridgedMethod[];
}

/** Run options that cross the thread; progress and abort travel as messages. */
export interface WireRunOptions {
  full?: boolean;
  allowDeletes?: boolean;
  staging?: boolean;
  progress: boolean;
  aborted: boolean;
}

export type ToWorker =
  | { type: 'run'; opts: WireRunOptions }
  | { type: 'abort' }
  | { type: 'reply'; id: number; ok: true; value: unknown }
  | { type: 'reply'; id: number; ok: false; error: WireError }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'open-failed'; error: WireError }
  | { type: 'call'; id: number; method: BridgedMethod; args: unknown[] }
  | { type: 'progress'; progress: Progress }
  | { type: 'ran'; ok: true; report: RunReport }
  | { type: 'ran'; ok: false; error: WireError }
  | { type: 'closed'; error?: WireError };

/**
 * The worker's first code. Compiled (dist/, .js) it imports its module. From the TypeScript
 * sources it registers tsx first: worker threads do not inherit the loader hooks that let this
 * process run TypeScript (bin/nimbus.js registers tsx in-process; Vitest transforms on its own).
 * Both are passed as absolute URLs: the worker's own resolution would start from the current
 * directory, which need not be this project. A failed import is thrown outside the promise so
 * that it reaches the worker's 'error' event whatever --unhandled-rejections says.
 */
function bootCode(): string {
  const source = import.meta.url.endsWith('.ts');
  const entry = JSON.stringify(new URL(`./agent-thread-worker${source ? '.ts' : '.js'}`, import.meta.url).href);
  const fail = '.catch((err) => process.nextTick(() => { throw err; }))';
  if (!source) return `import(${entry})${fail};`;
  return `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${entry}); })${fail};`;
}

interface Deferred<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

export interface ThreadAgentOptions {
  /** Where the agent exports; called on this thread. The caller keeps owning it (close it after the agent). */
  exporter: Exporter;
}

/**
 * Opens the agent on a worker thread: resolves once the worker has built it (config problems
 * reject here with the same SyncError as openSyncAgent). One run at a time; close() waits for
 * a run in progress and ends the thread.
 */
export async function openSyncAgentThread(config: SyncConfig, opts: ThreadAgentOptions): Promise<RunnableAgent> {
  if ('wrapConnector' in opts) throw new Error('wrapConnector is a test hook of the same-thread agent (openSyncAgent); a connector cannot be passed to the worker thread.');
  const { exporter } = opts;
  const { secrets, ...plain } = config;
  const revealed: AgentThreadStart['secrets'] = {};
  for (const [name, s] of Object.entries(secrets) as [SecretName, Secret | undefined][]) if (s) revealed[name] = { value: s.reveal(), source: s.source };
  const start: AgentThreadStart = { config: plain, secrets: revealed, identity: exporter.identity, ...(exporter.inFlight !== undefined ? { inFlight: exporter.inFlight } : {}), methods: BRIDGED.filter((m) => typeof exporter[m] === 'function') };
  const worker = new Worker(bootCode(), { eval: true, workerData: start });

  let opening: Deferred<void> | undefined;
  let running: (Deferred<RunReport> & { onProgress?: (p: Progress) => void }) | undefined;
  let closing: (Deferred<void> & { ended: boolean }) | undefined;
  let closed: Promise<void> | undefined;
  let current: Promise<unknown> | undefined;
  /** Set once the worker is gone other than by close(): every later call fails with it. */
  let dead: Error | undefined;

  const post = (m: ToWorker) => worker.postMessage(m);
  const die = (err: Error) => {
    if (dead || closing?.ended) return;
    dead = err;
    opening?.reject(err);
    running?.reject(err);
    // The thread is gone, and its resources (connector space, connections) with it.
    closing?.resolve();
  };
  worker.on('error', (err) => die(new Error(`The sync agent's worker thread stopped on an uncaught error: ${err.message}`, { cause: err })));
  worker.on('messageerror', (err) => die(new Error(`The sync agent's worker thread sent a message that could not be read: ${err.message}`, { cause: err })));
  worker.on('exit', (code) => {
    if (closing) {
      closing.ended = true;
      closing.resolve();
    }
    die(new Error(`The sync agent's worker thread exited unexpectedly (exit code ${code}).`));
  });

  /** An exporter call from the worker: run on this thread, answer with the value or the error. */
  const serve = async (id: number, method: BridgedMethod, args: unknown[]) => {
    let reply: ToWorker;
    try {
      if (!exporter[method]) throw new Error(`The exporter has no method ${method}.`);
      reply = { type: 'reply', id, ok: true, value: await (exporter[method] as (...a: unknown[]) => Promise<unknown>).call(exporter, ...args) };
    } catch (err) {
      reply = { type: 'reply', id, ok: false, error: toWire(err) };
    }
    try {
      post(reply);
    } catch (err) {
      // A value that cannot be cloned: the worker still gets an answer (unless it is gone).
      try {
        post({ type: 'reply', id, ok: false, error: toWire(err) });
      } catch {
        // The worker has ended; die() has already failed its run.
      }
    }
  };

  worker.on('message', (m: FromWorker) => {
    switch (m.type) {
      case 'ready':
        opening?.resolve();
        return;
      case 'open-failed':
        opening?.reject(fromWire(m.error));
        return;
      case 'call':
        void serve(m.id, m.method, m.args);
        return;
      case 'progress':
        running?.onProgress?.(m.progress);
        return;
      case 'ran':
        if (m.ok) running?.resolve(m.report);
        else running?.reject(fromWire(m.error));
        return;
      case 'closed':
        if (m.error) closing?.reject(fromWire(m.error));
        else closing?.resolve();
        return;
    }
  });

  try {
    await new Promise<void>((resolve, reject) => (opening = { resolve, reject }));
  } catch (err) {
    await worker.terminate();
    throw err;
  } finally {
    opening = undefined;
  }
  // Idle, the thread does not keep the process alive (a same-thread agent holds no handle either).
  worker.unref();

  return {
    async run(o: RunOptions = {}) {
      if (o.onBatchApplied) throw new Error('onBatchApplied is a test hook of the same-thread agent (openSyncAgent); the thread agent cannot call it across threads.');
      if (dead) throw dead;
      if (closed) throw new Error('The sync agent was closed.');
      if (running) throw new SyncError('RunInProgress', 'This agent is already running a sync; wait for it to finish.');
      const signal = o.signal;
      const onAbort = () => post({ type: 'abort' });
      const ran = new Promise<RunReport>((resolve, reject) => (running = { resolve, reject, ...(o.onProgress ? { onProgress: o.onProgress } : {}) }));
      current = ran.catch(() => undefined);
      worker.ref();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        post({
          type: 'run',
          opts: { ...(o.full !== undefined ? { full: o.full } : {}), ...(o.allowDeletes !== undefined ? { allowDeletes: o.allowDeletes } : {}), ...(o.staging !== undefined ? { staging: o.staging } : {}), progress: !!o.onProgress, aborted: !!signal?.aborted },
        });
        return await ran;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        running = undefined;
        if (!dead && !closed) worker.unref();
      }
    },
    close() {
      closed ??= (async () => {
        // As with the same-thread agent, close comes after the run: let one in progress end.
        await current;
        if (dead) return;
        worker.ref();
        const done = new Promise<void>((resolve, reject) => (closing = { resolve, reject, ended: false }));
        post({ type: 'close' });
        try {
          await done;
        } finally {
          // The agent has closed its connector space and connector: nothing is left to wait for.
          if (!closing!.ended) {
            closing!.ended = true;
            await worker.terminate();
          }
        }
      })();
      return closed;
    },
  };
}
