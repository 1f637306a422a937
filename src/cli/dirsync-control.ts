// `nimbus dirsync sync-now | allow-deletes | requests --tenant T`: ask the tenant's sync agent
// to run now, or to run once with the deletion threshold lifted; the agent (`nimbus agent`)
// picks requests up within seconds (sync.cloudPoll). The same as POST /sync/v1/requests.
import type { Command } from 'commander';
import { cliActor } from '../cloud/services/context.ts';
import { createSyncControlService } from '../cloud/sync/sync-control.ts';
import { action, output, table, withServices } from './common.ts';

export function dirsyncControlCommands(dirsync: Command, confirm: (question: string, yes: boolean | undefined) => Promise<void>): void {
  dirsync
    .command('sync-now')
    .requiredOption('--tenant <tenant>', 'tenant id, name or verified domain')
    .option('--json', 'print JSON')
    .description("ask the tenant's sync agent to run a cycle now (picked up within seconds)")
    .action(
      action(async (opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const { request, created } = await createSyncControlService(svc.deps).createRequest(cliActor(t.id), { kind: 'sync-now' });
          output(cmd, request, created ? `Requested a sync run for ${t.name} (${request.id}); the agent picks it up within seconds.` : `A sync run for ${t.name} was already requested (${request.id}) and waits for the agent.`);
        });
      }),
    );

  dirsync
    .command('allow-deletes')
    .requiredOption('--tenant <tenant>', 'tenant id, name or verified domain')
    .option('--yes', 'confirm without asking')
    .option('--json', 'print JSON')
    .description("let the agent's next run delete in the cloud beyond sync.deletionThreshold (one run)")
    .action(
      action(async (opts: { tenant: string; yes?: boolean }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          await confirm(`The next sync run for '${t.name}' will make every deletion it finds, even beyond the deletion threshold (nimbus sync --json or the portal lists them).`, opts.yes);
          const { request, created } = await createSyncControlService(svc.deps).createRequest(cliActor(t.id), { kind: 'allow-deletes' });
          output(cmd, request, created ? `Allowed the deletes of the next sync run for ${t.name} (${request.id}); the agent picks it up within seconds.` : `The deletes of the next run for ${t.name} were already allowed (${request.id}); the request waits for the agent.`);
        });
      }),
    );

  dirsync
    .command('requests')
    .requiredOption('--tenant <tenant>', 'tenant id, name or verified domain')
    .option('--json', 'print JSON')
    .description('list recent sync-now / allow-deletes requests and the export lease (which agent exports)')
    .action(
      action(async (opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const control = createSyncControlService(svc.deps);
          const requests = await control.requests(cliActor(t.id), { top: 20 });
          const lease = await control.lease(t.id);
          output(cmd, { lease, requests }, [
            lease ? `Export lease: ${lease.holder} (app '${lease.agent}') until ${lease.expiresAt}` : 'Export lease: not held (no agent running)',
            requests.length ? table(requests.map((r) => ({ ...r })), ['kind', 'status', 'requestedAt', 'requestedBy', 'result']) : 'No requests.',
          ]);
        });
      }),
    );
}
