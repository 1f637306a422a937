// `nimbus app create|list|delete|rotate-secret --tenant T`: app registrations for the
// OAuth2 client-credentials flow. Secrets are printed once and never stored in clear.
import type { Command } from 'commander';
import { appToJson } from '../cloud/auth/apps.ts';
import { cliActor } from '../cloud/services/context.ts';
import { action, output, table, withServices } from './common.ts';

export function appCommands(program: Command): void {
  const app = program.command('app').description('register apps that call the Graph API (client id + secret)');
  const tenantOpt = ['--tenant <tenant>', 'tenant id, name or verified domain'] as const;
  const secretLines = (clientId: string, secret: string, tenantId: string) => [
    `  client id:     ${clientId}`,
    `  client secret: ${secret}`,
    `  token URL:     /${tenantId}/oauth2/v2.0/token (scope https://graph.microsoft.com/.default)`,
    'The secret is shown only now; store it in a file readable only by the agent.',
  ];

  app
    .command('create')
    .requiredOption(...tenantOpt)
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--role <role>', 'read | readwrite | sync')
    .option('--json', 'print JSON')
    .description('register an app and print its client id and secret (once)')
    .action(
      action(async (opts: { tenant: string; name: string; role: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const { app: a, secret } = await svc.apps.create(cliActor(t.id), opts.name, opts.role);
          output(cmd, { ...appToJson(a), clientSecret: secret, tenantId: t.id }, [`Registered app '${a.name}' with role ${a.role}.`, ...secretLines(a.client_id, secret, t.id)]);
        });
      }),
    );

  app
    .command('list')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description("list the tenant's apps")
    .action(
      action(async (opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const rows = (await svc.apps.list(t.id)).map(appToJson);
          output(cmd, rows, rows.length ? table(rows, ['name', 'clientId', 'role', 'secretHint', 'secretCreatedDateTime']) : 'No apps yet.');
        });
      }),
    );

  app
    .command('delete')
    .argument('<client-id>', 'the app to delete')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('delete an app; its tokens stop working at once')
    .action(
      action(async (clientId: string, opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          await svc.apps.remove(cliActor(t.id), clientId);
          output(cmd, { deleted: clientId }, `Deleted app ${clientId}.`);
        });
      }),
    );

  app
    .command('rotate-secret')
    .argument('<client-id>', 'the app')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('replace the app secret and print the new one (once)')
    .action(
      action(async (clientId: string, opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const { app: a, secret } = await svc.apps.rotate(cliActor(t.id), clientId);
          output(cmd, { ...appToJson(a), clientSecret: secret, tenantId: t.id }, [`New secret for '${a.name}'; the old one no longer works.`, ...secretLines(a.client_id, secret, t.id)]);
        });
      }),
    );
}
