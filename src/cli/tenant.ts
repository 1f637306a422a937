// `nimbus tenant create|list`: tenants and their initial domains.
import type { Command } from 'commander';
import { action, output, table, withServices } from './common.ts';

export function tenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('create and list tenants (one organization\'s directory each)');
  tenant
    .command('create')
    .argument('<name>', 'short name: lower-case letters, digits and hyphens; the initial domain becomes <name>.<service suffix>')
    .option('--display-name <text>', 'organization display name (default: the name)')
    .option('--json', 'print JSON')
    .description('create a tenant with its verified initial domain')
    .action(
      action(async (name: string, opts: { displayName?: string }, cmd: Command) => {
        const t = await withServices(cmd, (svc) => svc.tenants.create(name, opts.displayName));
        output(cmd, { id: t.id, name: t.name, initialDomain: t.initial_domain }, [`Created tenant ${t.name}`, `  id:             ${t.id}`, `  initial domain: ${t.initial_domain} (verified, default)`]);
      }),
    );
  tenant
    .command('list')
    .option('--json', 'print JSON')
    .description('list tenants')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const ts = await withServices(cmd, (svc) => svc.tenants.list());
        const rows = ts.map((t) => ({ id: t.id, name: t.name, initialDomain: t.initial_domain, dirSync: t.sync_enabled === null ? 'never' : t.sync_enabled ? 'activated' : 'deactivated' }));
        output(cmd, rows, rows.length ? table(rows, ['name', 'id', 'initialDomain', 'dirSync']) : 'No tenants yet. Create one with: nimbus tenant create NAME');
      }),
    );
}
