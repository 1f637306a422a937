// The embedded default behind `nimbus start`: a demo tenant with directory sync activated
// and a verified custom domain, a cloud user waiting to be soft-matched, and an agent that
// syncs the bundled sample on-premises directory (samples/corp.ldif) in-process, on a timer.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { cliActor } from '../cloud/services/context.ts';
import { GLOBAL_ADMIN } from '../cloud/services/directory.ts';
import type { Services } from '../cloud/services/index.ts';
import type { TenantTable } from '../cloud/store/schema.ts';
import { generatePassword } from '../cloud/services/passwords.ts';
import { upnProblem } from '../shared/upn.ts';
import type { RunnableAgent } from '../sync/agent.ts';
import { openSyncAgentThread } from '../sync/agent-thread.ts';
import { isEntryError } from '../sync/connectors/connector.ts';
import { createLdifConnector } from '../sync/connectors/ldif/ldif-connector.ts';
import { configSchema, type SyncConfig } from '../sync/config.ts';
import { SyncError } from '../sync/errors.ts';
import { createInProcessExporter } from '../sync/engine/exporter-inprocess.ts';
import type { RunReport } from '../sync/engine/run.ts';
import { first, objectTypeOf, text } from '../sync/engine/scope.ts';
import { AgentMetrics } from '../sync/scheduler/metrics.ts';
import { startScheduler, type CycleResult, type Scheduler } from '../sync/scheduler/scheduler.ts';

export const SAMPLE_LDIF = resolve(dirname(fileURLToPath(import.meta.url)), '../../samples/corp.ldif');
const SAMPLE_BASE_DN = 'DC=corp,DC=example,DC=com';
const VERIFIED_DOMAIN = 'contoso.com';

export interface Demo {
  tenant: TenantTable;
  lines: string[];
  /** Time between sync cycles (sync.interval, from NIMBUS_SYNC_INTERVAL; default 60s). */
  intervalMs: number;
  /** Runs one sync cycle now. */
  syncOnce(): Promise<RunReport>;
  /**
   * Hands the agent to the scheduler, as `nimbus agent` runs it: a cycle now and every interval,
   * and at once when an administrator asks in the portal ("Sync now", "allow these deletes").
   */
  schedule(onCycle: (c: CycleResult) => void): Scheduler;
  close(): Promise<void>;
}

/** First user in the sample whose UPN is on the verified domain: the soft-match showcase. */
async function softMatchCandidate(ldif: string): Promise<{ upn: string; displayName: string } | undefined> {
  for await (const item of createLdifConnector({ path: ldif }).fullImport()) {
    if (isEntryError(item) || objectTypeOf(item) !== 'user') continue;
    const upn = text(first(item, 'userPrincipalName'));
    if (upn && upn.toLowerCase().endsWith(`@${VERIFIED_DOMAIN}`) && !upnProblem(upn)) return { upn, displayName: text(first(item, 'displayName')) ?? upn };
  }
  return undefined;
}

/** Prepares the demo tenant once (idempotent on later starts) and builds the in-process agent. */
export async function startDemo(svc: Services, dataDir: string, tenantName: string, opts: { interval?: string } = {}): Promise<Demo> {
  // Checked before anything is created. The agent's own config schema parses the interval, so NIMBUS_SYNC_INTERVAL reads as it
  // does for `nimbus agent` (60s, 5m, 500ms).
  const parsed = configSchema.safeParse({
    source: { type: 'ldif', path: SAMPLE_LDIF, baseDn: SAMPLE_BASE_DN },
    target: { type: 'nimbus', url: 'http://127.0.0.1', tenant: tenantName, clientId: 'embedded' },
    sync: { dataDir: join(dataDir, 'agent'), interval: opts.interval ?? '60s' },
  });
  if (!parsed.success) throw new SyncError('ConfigInvalid', `NIMBUS_SYNC_INTERVAL: ${parsed.error.issues[0]!.message}.`);
  const raw = parsed.data;
  if (raw.sync.interval < 1000) throw new SyncError('ConfigInvalid', `NIMBUS_SYNC_INTERVAL '${opts.interval}' is below one second.`);
  let tenant = await svc.tenants.resolve(tenantName);
  const lines: string[] = [];
  const adminFile = join(dataDir, 'demo-admin.password');
  if (!tenant) {
    tenant = await svc.tenants.create(tenantName, 'Contoso (demo)');
    const op = cliActor(tenant.id);
    // The operator running the demo has local access: the domain is verified without DNS.
    await svc.domains.add(op, VERIFIED_DOMAIN);
    await svc.domains.verify(op, VERIFIED_DOMAIN, { force: true });
    const candidate = await softMatchCandidate(SAMPLE_LDIF);
    if (candidate) {
      await svc.users.create(op, {
        accountEnabled: true,
        displayName: `${candidate.displayName} (cloud)`,
        mailNickname: candidate.upn.split('@')[0]!,
        userPrincipalName: candidate.upn,
        passwordProfile: { password: generatePassword(), forceChangePasswordNextSignIn: true },
      });
    }
    const password = generatePassword();
    const admin = await svc.users.create(op, {
      accountEnabled: true,
      displayName: 'Demo Administrator',
      mailNickname: 'admin',
      userPrincipalName: `admin@${tenant.initial_domain}`,
      passwordProfile: { password, forceChangePasswordNextSignIn: false },
    });
    await svc.directory.assignRole(op, GLOBAL_ADMIN, admin.id as string);
    writeFileSync(adminFile, `${password}\n`, { mode: 0o600 });
    // Running the demo is the operator's confirmation to activate directory sync.
    await svc.organization.setDirSync(op, true);
    if (candidate) lines.push(`Cloud-only user ${candidate.upn} was created first; the first sync soft-matches it (no duplicate).`);
  }
  const config: SyncConfig = { ...raw, file: 'embedded demo', secrets: {} };
  const exporter = await createInProcessExporter(svc, tenant.id);
  // One agent (one connector space) at a time; the scheduler closes it after a failed cycle and opens it again.
  // The agent runs on a worker thread of its own and exports through this thread's exporter:
  // the cloud directory applies a batch here while the engine computes the next one there.
  let current: RunnableAgent | undefined;
  const open = async (): Promise<RunnableAgent> => {
    const a = current ?? (await openSyncAgentThread(config, { exporter }));
    current = a;
    return { run: (o) => a.run(o), close: async () => { if (current === a) current = undefined; await a.close(); } };
  };
  lines.push(
    `Demo tenant: ${tenant.name} (id ${tenant.id}); verified domains ${VERIFIED_DOMAIN} and ${tenant.initial_domain}`,
    `Demo administrator: admin@${tenant.initial_domain}, password in ${existsSync(adminFile) ? adminFile : '(created by an earlier version)'}`,
    `On-premises sample: ${SAMPLE_LDIF} (${SAMPLE_BASE_DN}; .local and corp.example.com suffixes fall back to @${tenant.initial_domain})`,
  );
  return {
    tenant,
    lines,
    intervalMs: config.sync.interval,
    syncOnce: async () => (await open()).run(),
    schedule: (onCycle) =>
      startScheduler({
        config,
        reload: () => config,
        logger: pino({ level: process.env.NIMBUS_LOG_LEVEL ?? 'warn' }),
        metrics: new AgentMetrics({ version: '0.1.0', source: 'ldif', tenant: tenant.name }),
        openAgent: open,
        openControl: () => exporter,
        onCycle,
      }),
    close: async () => {
      await current?.close();
      current = undefined;
    },
  };
}

export function describeRun(r: RunReport): string {
  const c = r.counts;
  return `sync ${r.status}: ${c.adds} added, ${c.updates} updated, ${c.deletes} deleted, ${c.unchanged} unchanged, ${c.errors} errors, ${c.provisioningErrors} provisioning errors (${(r.durationMs / 1000).toFixed(1)} s)`;
}

export const readAdminPassword = (dataDir: string) => readFileSync(join(dataDir, 'demo-admin.password'), 'utf8').trim();
