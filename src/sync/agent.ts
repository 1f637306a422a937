// Composition root of the sync agent: config -> connector, connector space, scope rules,
// mapper, exporter -> engine, built once; the CLI and tests go through this.
import type { SourceConnector } from './connectors/connector.ts';
import { createLdifConnector } from './connectors/ldif/ldif-connector.ts';
import { domainOfBaseDn, type SyncConfig } from './config.ts';
import { SyncError } from './errors.ts';
import type { Exporter } from './engine/exporter.ts';
import { createHttpExporter } from './engine/exporter-http.ts';
import { createMapper } from './engine/mapping.ts';
import { runSync, type RunOptions, type RunReport } from './engine/run.ts';
import { compileScope } from './engine/scope.ts';
import { openConnectorSpace, type ConnectorSpace } from './engine/space.ts';

export interface SyncAgent {
  space: ConnectorSpace;
  run(opts?: RunOptions): Promise<RunReport>;
  close(): Promise<void>;
}

function connectorFor(config: SyncConfig): SourceConnector {
  if (config.source.type === 'ldif') return createLdifConnector({ path: config.source.path! });
  throw new SyncError('ConfigInvalid', `${config.file}: source.type: the AD (LDAP) connector is not available in this build yet; export the directory with ldifde -f export.ldif and use source.type: ldif with source.path.`);
}

export interface AgentOverrides {
  /** Use this exporter instead of HTTP (the embedded, in-process mode). */
  exporter?: Exporter;
}

/** Builds the agent. Config problems surface here, before anything is read or exported. */
export async function openSyncAgent(config: SyncConfig, overrides: AgentOverrides = {}): Promise<SyncAgent> {
  const scope = compileScope(config.source);
  const domain = config.source.domain?.toLowerCase() ?? domainOfBaseDn(config.source.baseDn);
  const mapper = createMapper(config.mapping, { domain });
  const connector = connectorFor(config);
  const exporter =
    overrides.exporter ??
    createHttpExporter({
      url: config.target.url,
      tenant: config.target.tenant,
      clientId: config.target.clientId,
      clientSecret: config.secrets.clientSecret!,
      ...(config.target.caFile ? { caFile: config.target.caFile } : {}),
    });
  const space = await openConnectorSpace(config.sync.dataDir);
  return {
    space,
    run: (opts) => runSync({ space, connector, exporter, scope, mapper, deletionThreshold: config.sync.deletionThreshold, batchSize: config.target.batchSize }, opts),
    async close() {
      await connector.close();
      await exporter.close();
      await space.close();
    },
  };
}
