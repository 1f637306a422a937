// Composition root of the sync agent: config -> connector, connector space, scope rules,
// mapper, exporter -> engine, built once; the CLI and tests go through this.
import { dirname, isAbsolute, resolve } from 'node:path';
import { DEFAULT_LDAP_TIMEOUT_MS } from '../shared/ldap/ldap-config.ts';
import { createAdConnector } from './connectors/ad/ad-connector.ts';
import type { SourceConnector } from './connectors/connector.ts';
import { createLdifConnector } from './connectors/ldif/ldif-connector.ts';
import { domainOfBaseDn, type SyncConfig } from './config.ts';
import { SyncError } from './errors.ts';
import type { Exporter } from './engine/exporter.ts';
import { createMapper } from './engine/mapping.ts';
import { runSync, type RunOptions, type RunReport } from './engine/run.ts';
import { compileScope } from './engine/scope.ts';
import { openConnectorSpace, type ConnectorSpace } from './engine/space.ts';

export interface SyncAgent {
  space: ConnectorSpace;
  run(opts?: RunOptions): Promise<RunReport>;
  close(): Promise<void>;
}

/** What runs syncs, wherever the engine lives (this thread, or a worker thread: agent-thread.ts). */
export type RunnableAgent = Omit<SyncAgent, 'space'>;

function connectorFor(config: SyncConfig): SourceConnector {
  const s = config.source;
  if (s.type === 'ldif') return createLdifConnector({ path: s.path! });
  const password = config.secrets.sourcePassword;
  if (!password) throw new SyncError('ConfigInvalid', `${config.file}: source.passwordFile: is required for source.type ad (or set NIMBUS_SOURCE_PASSWORD).`);
  // loadSyncConfig resolves path and passwordFile; the CA file is relative to the config file too.
  const base = config.file === 'environment' ? process.cwd() : dirname(config.file);
  const caFile = s.caFile === undefined ? undefined : isAbsolute(s.caFile) ? s.caFile : resolve(base, s.caFile);
  return createAdConnector({
    connection: { url: s.url!, bindDn: s.bindDn!, password: () => password.reveal(), starttls: !!s.starttls, caFile, timeoutMs: DEFAULT_LDAP_TIMEOUT_MS, baseDn: s.baseDn },
    baseDn: s.baseDn!,
    ...(s.readConnections ? { readConnections: s.readConnections } : {}),
  });
}

export interface AgentOverrides {
  /** Use this exporter instead of HTTP (the embedded, in-process mode). */
  exporter?: Exporter;
  /** Wraps the source connector (tests inject failures part-way through an import). */
  wrapConnector?: (c: SourceConnector) => SourceConnector;
}

/** Builds the agent. Config problems surface here, before anything is read or exported. */
export async function openSyncAgent(config: SyncConfig, overrides: AgentOverrides = {}): Promise<SyncAgent> {
  const scope = compileScope(config.source);
  const domain = config.source.domain?.toLowerCase() ?? domainOfBaseDn(config.source.baseDn);
  const mapper = createMapper(config.mapping, { domain });
  const connector = overrides.wrapConnector ? overrides.wrapConnector(connectorFor(config)) : connectorFor(config);
  // The HTTP client is loaded only for an HTTP target: an in-process agent (nimbus start) does
  // without it, ~20 MB less on its thread.
  const exporter = overrides.exporter ?? (await import('./engine/exporter-http.ts')).httpExporterFor(config);
  const space = await openConnectorSpace(config.sync.dataDir);
  // The WAL is checkpointed once a run has ended, while the agent waits for the next: a run's
  // commits otherwise stop now and then to copy the last runs' pages (in 1% deltas at 20k
  // users, the sync step's commit took 25-140 ms, over 90 ms in three rounds of five; 10-30 ms
  // with the checkpoint here).
  let idle: NodeJS.Timeout | undefined;
  return {
    space,
    async run(opts) {
      clearTimeout(idle);
      idle = undefined;
      const report = await runSync({ space, connector, exporter, scope, mapper, deletionThreshold: config.sync.deletionThreshold, staging: config.sync.staging, batchSize: config.target.batchSize }, opts);
      // Run history: the run's errors stay with it; runs older than sync.runRetention go.
      space.recordRunErrors(report.runId, report.errors);
      space.pruneRuns(new Date(Date.parse(report.endedAt) - config.sync.runRetention));
      // After the caller has the report (a timer, not a microtask).
      idle = setTimeout(() => {
        idle = undefined;
        try {
          space.checkpoint();
        } catch {
          // Nothing is lost: the pages stay in the WAL, and the next automatic checkpoint copies them.
        }
      }, 0);
      idle.unref();
      return report;
    },
    async close() {
      clearTimeout(idle);
      await connector.close();
      await exporter.close();
      await space.close();
    },
  };
}
