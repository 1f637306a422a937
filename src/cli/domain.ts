// `nimbus domain add|verify|list|set-default|remove --tenant T`: custom domains.
import type { Command } from 'commander';
import { domainToGraph, verificationRecords } from '../cloud/services/domains.ts';
import { cliActor } from '../cloud/services/context.ts';
import { action, output, table, withServices } from './common.ts';

export function domainCommands(program: Command): void {
  const domain = program.command('domain').description('add, verify, list and remove custom domains of a tenant');
  const tenantOpt = ['--tenant <tenant>', 'tenant id, name or verified domain'] as const;

  domain
    .command('add')
    .argument('<fqdn>', 'domain name, e.g. contoso.com')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('add an unverified domain and print the DNS TXT record to publish')
    .action(
      action(async (fqdn: string, opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const d = await svc.domains.add(cliActor(t.id), fqdn);
          const rec = verificationRecords(d)[0]!;
          output(cmd, { ...domainToGraph(d), verificationDnsRecords: verificationRecords(d) }, d.is_verified
            ? `Added ${d.name}; it is verified already (a subdomain of a verified domain).`
            : [`Added ${d.name} (unverified).`, 'Publish this DNS record, then run: nimbus domain verify ' + d.name + ' --tenant ' + t.name, `  type: TXT   name: ${rec.label}   value: ${rec.text}   TTL: ${rec.ttl}`]);
        });
      }),
    );

  domain
    .command('verify')
    .argument('<fqdn>', 'domain name')
    .requiredOption(...tenantOpt)
    .option('--force', 'mark it verified without the DNS check (operators with local access only)')
    .option('--json', 'print JSON')
    .description('verify a domain by looking up its TXT record (resolver: NIMBUS_DNS_SERVERS=host[:port],...)')
    .action(
      action(async (fqdn: string, opts: { tenant: string; force?: boolean }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const d = await svc.domains.verify(cliActor(t.id), fqdn, { force: opts.force ?? false });
          output(cmd, domainToGraph(d), `Domain ${d.name} is verified${opts.force ? ' (forced)' : ''}.`);
        });
      }),
    );

  domain
    .command('list')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description("list the tenant's domains")
    .action(
      action(async (opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const ds = await svc.domains.list(t.id);
          const rows = ds.map((d) => ({ name: d.name, verified: d.is_verified ? 'yes' : 'no', default: d.is_default ? 'yes' : '', initial: d.is_initial ? 'yes' : '', txtRecord: d.is_verified ? '' : verificationRecords(d)[0]!.text }));
          output(cmd, ds.map(domainToGraph), table(rows, ['name', 'verified', 'default', 'initial', 'txtRecord']));
        });
      }),
    );

  domain
    .command('set-default')
    .argument('<fqdn>', 'a verified domain')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('make a verified domain the default')
    .action(
      action(async (fqdn: string, opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const d = await svc.domains.setDefault(cliActor(t.id), fqdn);
          output(cmd, domainToGraph(d), `${d.name} is now the default domain.`);
        });
      }),
    );

  domain
    .command('remove')
    .argument('<fqdn>', 'domain name')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('remove a domain (refused while objects use it)')
    .action(
      action(async (fqdn: string, opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          await svc.domains.remove(cliActor(t.id), fqdn);
          output(cmd, { removed: fqdn.toLowerCase() }, `Removed ${fqdn.toLowerCase()}.`);
        });
      }),
    );
}
