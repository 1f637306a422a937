// The agent's Prometheus metrics (text exposition format 0.0.4) and the small HTTP server that
// serves them at /metrics (plus /healthz). No client library: a handful of counters, gauges
// and one histogram, rendered on request.
import { createServer, type Server } from 'node:http';
import type { RunReport } from '../engine/run.ts';
import { SyncError } from '../errors.ts';

/** Run duration buckets (seconds): a no-change delta is tens of ms, a 100k full sync minutes. */
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

class Counter {
  readonly values = new Map<string, { labels: Record<string, string>; value: number }>();
  inc(l: Record<string, string> = {}, by = 1): void {
    const key = JSON.stringify(l);
    const v = this.values.get(key) ?? { labels: l, value: 0 };
    v.value += by;
    this.values.set(key, v);
  }
  set(l: Record<string, string>, value: number): void {
    this.values.set(JSON.stringify(l), { labels: l, value });
  }
}

class Histogram {
  readonly series = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>();
  observe(l: Record<string, string>, v: number): void {
    const key = JSON.stringify(l);
    const s = this.series.get(key) ?? { labels: l, counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
    BUCKETS.forEach((b, i) => {
      if (v <= b) s.counts[i]!++;
    });
    s.sum += v;
    s.count++;
    this.series.set(key, s);
  }
}

export type CycleTrigger = 'start' | 'interval' | 'change' | 'request' | 'config' | 'retry';

export class AgentMetrics {
  readonly #runs = new Counter();
  readonly #duration = new Histogram();
  readonly #objects = new Counter();
  readonly #read = new Counter();
  readonly #errors = new Counter();
  readonly #cycles = new Counter();
  readonly #requests = new Counter();
  readonly #gauges = new Counter();
  readonly #info: Record<string, string>;

  constructor(info: Record<string, string>) {
    this.#info = info;
    this.#gauges.set({ name: 'nimbus_sync_lease_held' }, 0);
    this.#gauges.set({ name: 'nimbus_sync_consecutive_failures' }, 0);
  }

  cycle(trigger: CycleTrigger): void {
    this.#cycles.inc({ trigger });
  }

  /** One finished run: its status, duration, objects per action, per-object errors. */
  run(kind: string, r: RunReport): void {
    this.#runs.inc({ kind, status: r.status });
    this.#duration.observe({ kind }, r.durationMs / 1000);
    const c = r.counts;
    this.#read.inc({}, c.read);
    for (const [action, n] of [['add', c.adds], ['update', c.updates], ['delete', c.deletes], ['unchanged', c.unchanged], ['error', c.errors]] as const) this.#objects.inc({ action }, n);
    if (c.errors) this.#errors.inc({ type: 'object' }, c.errors);
    if (r.status === 'failed') this.#errors.inc({ type: 'run', code: r.code ?? 'unknown' });
    const at = Date.parse(r.endedAt) / 1000;
    this.#gauges.set({ name: 'nimbus_sync_last_run_timestamp_seconds' }, at);
    if (r.status === 'success' || r.status === 'completed-with-errors') this.#gauges.set({ name: 'nimbus_sync_last_success_timestamp_seconds' }, at);
  }

  /** A cycle that threw instead of returning a report (a bug or an unreachable target). */
  cycleError(err: unknown): void {
    this.#errors.inc({ type: 'run', code: err instanceof SyncError ? err.code : 'unknown' });
  }

  failures(n: number): void {
    this.#gauges.set({ name: 'nimbus_sync_consecutive_failures' }, n);
  }

  lease(held: boolean): void {
    this.#gauges.set({ name: 'nimbus_sync_lease_held' }, held ? 1 : 0);
  }

  request(kind: string): void {
    this.#requests.inc({ kind });
  }

  render(): string {
    const out: string[] = [];
    const head = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const counter = (name: string, help: string, c: Counter) => {
      head(name, 'counter', help);
      for (const v of c.values.values()) out.push(`${name}${labels(v.labels)} ${v.value}`);
    };
    head('nimbus_agent_info', 'gauge', 'The running agent (always 1).');
    out.push(`nimbus_agent_info${labels(this.#info)} 1`);
    counter('nimbus_sync_runs_total', 'Sync runs by kind (full, full-import, delta) and final status.', this.#runs);
    head('nimbus_sync_run_duration_seconds', 'histogram', 'Duration of sync runs (import, sync, export).');
    for (const s of this.#duration.series.values()) {
      BUCKETS.forEach((b, i) => out.push(`nimbus_sync_run_duration_seconds_bucket${labels({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`nimbus_sync_run_duration_seconds_bucket${labels({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`nimbus_sync_run_duration_seconds_sum${labels(s.labels)} ${s.sum}`, `nimbus_sync_run_duration_seconds_count${labels(s.labels)} ${s.count}`);
    }
    counter('nimbus_sync_objects_total', 'Objects exported per action (add, update, delete, unchanged, error).', this.#objects);
    counter('nimbus_sync_entries_read_total', 'Source entries read by imports.', this.#read);
    counter('nimbus_sync_errors_total', 'Errors: type=object (per-object) or type=run (a run failed as a whole, by code).', this.#errors);
    counter('nimbus_sync_cycles_total', 'Cycles started, by what triggered them (start, interval, change, request, config, retry).', this.#cycles);
    counter('nimbus_sync_requests_total', 'Requests from the cloud directory picked up (sync-now, allow-deletes).', this.#requests);
    for (const v of this.#gauges.values.values()) {
      const name = v.labels.name!;
      const help: Record<string, string> = {
        nimbus_sync_lease_held: 'Whether this agent holds the export lease of its tenant (1) or waits (0).',
        nimbus_sync_consecutive_failures: 'Failed cycles since the last one that ran (retried with backoff).',
        nimbus_sync_last_run_timestamp_seconds: 'When the last run ended (Unix time).',
        nimbus_sync_last_success_timestamp_seconds: 'When the last successful run ended (Unix time).',
      };
      head(name, 'gauge', help[name] ?? name);
      out.push(`${name} ${v.value}`);
    }
    return `${out.join('\n')}\n`;
  }
}

export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464 */
  url: string;
  close(): Promise<void>;
}

/** Serves /metrics and /healthz on `address` (`host:port`); rejects with a SyncError naming the address when it cannot listen. */
export async function serveMetrics(address: string, metrics: AgentMetrics, health: () => Record<string, unknown>): Promise<MetricsServer> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render());
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(health()));
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: the agent serves /metrics and /healthz.\n');
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new SyncError(
          'ConfigInvalid',
          err.code === 'EADDRINUSE'
            ? `sync.metrics: ${address} is already in use (another agent on this host?). Give this agent another address (sync.metrics or NIMBUS_SYNC_METRICS), or 'off'.`
            : `sync.metrics: cannot listen on ${address} (${err.code ?? err.message}). Give host:port (e.g. 127.0.0.1:9464), or 'off'.`,
        ),
      ),
    );
    server.listen(port, host, () => ok());
  });
  const a = server.address() as { port: number; address: string; family: string };
  const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${shown}:${a.port}`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
