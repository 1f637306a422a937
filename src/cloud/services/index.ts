// The composition root of the cloud directory: store -> services, built once. Routes, the
// CLI and (later) the sync engine all take this object; nothing else constructs services.
import { systemClock, type Clock } from '../../shared/clock.ts';
import { createAppService } from '../auth/apps.ts';
import { createTokenService } from '../auth/tokens.ts';
import { directoryConfigSchema, type DirectoryConfig } from '../config.ts';
import { createTxtLookup, type TxtLookup } from '../dns.ts';
import { openStore, type Store } from '../store/store.ts';
import { createAuditService } from './audit.ts';
import { createDirectoryService } from './directory.ts';
import { createDomainService } from './domains.ts';
import { createGroupService } from './groups.ts';
import { createOrganizationService } from './organization.ts';
import { createTenantService } from './tenants.ts';
import { createUserService } from './users.ts';
import { createSyncService } from '../sync/sync-service.ts';

export interface ServicesOptions {
  db: Store;
  clock?: Clock;
  config?: Partial<DirectoryConfig>;
  lookupTxt?: TxtLookup;
}

export function createServices(opts: ServicesOptions) {
  const config = directoryConfigSchema.parse(opts.config ?? {});
  const deps = { db: opts.db, clock: opts.clock ?? systemClock, config };
  const sync = createSyncService(deps);
  return {
    deps,
    config,
    db: opts.db,
    clock: deps.clock,
    tenants: createTenantService(deps),
    domains: createDomainService(deps, opts.lookupTxt ?? createTxtLookup(config.dnsServers), { onVerified: (tenantId, name) => sync.recomputeForDomain(tenantId, name) }),
    users: createUserService(deps),
    groups: createGroupService(deps),
    directory: createDirectoryService(deps),
    organization: createOrganizationService(deps),
    apps: createAppService(deps),
    tokens: createTokenService(deps),
    audit: createAuditService(deps),
    sync,
    close: () => opts.db.destroy(),
  };
}

export type Services = ReturnType<typeof createServices>;

/** Opens the store in a data folder and builds the services on it. */
export async function openServices(dataDir: string, opts: Omit<ServicesOptions, 'db'> = {}): Promise<Services> {
  return createServices({ ...opts, db: await openStore({ dataDir }) });
}
