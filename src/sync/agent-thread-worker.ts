// The worker-thread side of agent-thread.ts: builds the agent with an exporter whose calls go
// to the main thread as messages, runs it on request and relays progress, results and errors.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openSyncAgent, type SyncAgent } from './agent.ts';
import { Secret, type SyncConfig } from './config.ts';
import type { Exporter } from './engine/exporter.ts';
import { fromWire, toWire, type AgentThreadStart, type BridgedMethod, type FromWorker, type ToWorker, type WireRunOptions } from './agent-thread.ts';

if (isMainThread || !parentPort) throw new Error('agent-thread-worker.ts runs on the worker thread that openSyncAgentThread starts; import agent-thread.ts instead.');
const port = parentPort;
const start = workerData as AgentThreadStart;
const post = (m: FromWorker) => port.postMessage(m);

// ---- the exporter bridge
const calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
let nextId = 1;
function call<T>(method: BridgedMethod, args: unknown[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const id = nextId++;
    calls.set(id, { resolve, reject });
    post({ type: 'call', id, method, args });
  });
}
const has = new Set(start.methods);
const bridge: Exporter = {
  identity: start.identity,
  ...(start.inFlight !== undefined ? { inFlight: start.inFlight } : {}),
  check: () => call('check', []),
  export: (items) => call('export', [items]),
  ...(has.has('reportRun') ? { reportRun: (run) => call<void>('reportRun', [run]) } : {}),
  ...(has.has('lookup') ? { lookup: (type, cloudId) => call<Record<string, unknown> | null>('lookup', [type, cloudId]) } : {}),
  ...(has.has('acquireLease') ? { acquireLease: (holder, ttlSeconds) => call<Awaited<ReturnType<NonNullable<Exporter['acquireLease']>>>>('acquireLease', [holder, ttlSeconds]) } : {}),
  ...(has.has('releaseLease') ? { releaseLease: (holder) => call<void>('releaseLease', [holder]) } : {}),
  ...(has.has('pendingRequests') ? { pendingRequests: () => call<Awaited<ReturnType<NonNullable<Exporter['pendingRequests']>>>>('pendingRequests', []) } : {}),
  ...(has.has('updateRequest') ? { updateRequest: (id, update) => call<void>('updateRequest', [id, update]) } : {}),
  // The main thread's caller owns the real exporter; closing the agent closes nothing there.
  close: async () => {},
};

// ---- the agent
const secrets: SyncConfig['secrets'] = {};
for (const [name, s] of Object.entries(start.secrets) as [keyof SyncConfig['secrets'], { value: string; source: string }][]) secrets[name] = new Secret(s.value, s.source);
const config: SyncConfig = { ...start.config, secrets };
let agent: SyncAgent | undefined;
let abort: AbortController | undefined;

async function run(o: WireRunOptions): Promise<void> {
  abort = new AbortController();
  if (o.aborted) abort.abort();
  try {
    const report = await agent!.run({
      ...(o.full !== undefined ? { full: o.full } : {}),
      ...(o.allowDeletes !== undefined ? { allowDeletes: o.allowDeletes } : {}),
      ...(o.staging !== undefined ? { staging: o.staging } : {}),
      ...(o.progress ? { onProgress: (progress) => post({ type: 'progress', progress }) } : {}),
      signal: abort.signal,
    });
    post({ type: 'ran', ok: true, report });
  } catch (err) {
    post({ type: 'ran', ok: false, error: toWire(err) });
  } finally {
    abort = undefined;
  }
}

async function close(): Promise<void> {
  try {
    await agent?.close();
    agent = undefined;
    post({ type: 'closed' });
  } catch (err) {
    post({ type: 'closed', error: toWire(err) });
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'reply': {
      const c = calls.get(m.id);
      calls.delete(m.id);
      if (m.ok) c?.resolve(m.value);
      else c?.reject(fromWire(m.error));
      return;
    }
    case 'run':
      void run(m.opts);
      return;
    case 'abort':
      abort?.abort();
      return;
    case 'close':
      void close();
      return;
  }
});

try {
  agent = await openSyncAgent(config, { exporter: bridge });
  post({ type: 'ready' });
} catch (err) {
  post({ type: 'open-failed', error: toWire(err) });
}
