// `nimbus dirsync enable|disable|status --tenant T`: activate or deactivate directory
// synchronization, with an explicit confirmation (prompt or --yes).
import type { Command } from 'commander';
import { cliActor } from '../cloud/services/context.ts';
import { action, ask, output, UsageError, withServices } from './common.ts';
import { dirsyncControlCommands } from './dirsync-control.ts';

async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new UsageError(`${question} Confirmation is required: run again with --yes.`);
  const answer = (await ask(`${question} Type 'yes' to continue: `)).trim().toLowerCase();
  if (answer !== 'yes' && answer !== 'y') throw new UsageError('Cancelled; nothing was changed.');
}

export function dirsyncCommands(program: Command): void {
  const dirsync = program.command('dirsync').description('activate, deactivate and show directory synchronization of a tenant');
  const tenantOpt = ['--tenant <tenant>', 'tenant id, name or verified domain'] as const;

  dirsync
    .command('enable')
    .requiredOption(...tenantOpt)
    .option('--yes', 'confirm without asking')
    .option('--json', 'print JSON')
    .description('activate directory sync (cloud objects with the same names may be taken over)')
    .action(
      action(async (opts: { tenant: string; yes?: boolean }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          await confirm(`Activating directory sync for '${t.name}' lets on-premises objects take over cloud objects with the same UPN or e-mail address.`, opts.yes);
          const r = await svc.organization.setDirSync(cliActor(t.id), true);
          const st = await svc.organization.status(t.id);
          output(cmd, { ...st, changed: r.changed }, r.changed ? `Directory sync activated for ${t.name}; synchronization has never run.` : `Directory sync was already activated for ${t.name}.`);
        });
      }),
    );

  dirsync
    .command('disable')
    .requiredOption(...tenantOpt)
    .option('--yes', 'confirm without asking')
    .option('--json', 'print JSON')
    .description('deactivate directory sync: synced objects become cloud-managed')
    .action(
      action(async (opts: { tenant: string; yes?: boolean }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          await confirm(`Deactivating directory sync for '${t.name}' turns every synced object into a cloud-managed one and blocks re-activation for ${svc.config.syncReactivationBlockHours} hours.`, opts.yes);
          const r = await svc.organization.setDirSync(cliActor(t.id), false);
          const st = await svc.organization.status(t.id);
          output(cmd, { ...st, changed: r.changed, convertedObjects: r.converted }, r.changed ? `Directory sync deactivated for ${t.name}; ${r.converted} synced objects are now cloud-managed. It can be activated again after ${st.reactivationBlockedUntil}.` : `Directory sync was not active for ${t.name}.`);
        });
      }),
    );

  dirsync
    .command('features')
    .requiredOption(...tenantOpt)
    .option('--block-soft-match <bool>', 'true: never match on UPN or SMTP address (blockSoftMatchEnabled)')
    .option('--soft-match-on-upn <bool>', 'false: soft match on the primary SMTP address only (softMatchOnUpnEnabled)')
    .option('--block-hard-match-takeover <bool>', 'true: a hard match never takes over a cloud-managed object (blockCloudObjectTakeoverThroughHardMatchEnabled)')
    .option('--json', 'print JSON')
    .description('show or change how sync matches on-premises objects to cloud objects')
    .action(
      action(async (opts: { tenant: string; blockSoftMatch?: string; softMatchOnUpn?: string; blockHardMatchTakeover?: string }, cmd: Command) => {
        const bool = (name: string, v: string | undefined) => {
          if (v === undefined) return undefined;
          if (v !== 'true' && v !== 'false') throw new UsageError(`--${name} takes true or false, not '${v}'.`);
          return v === 'true';
        };
        const patch: Record<string, boolean> = {};
        const b1 = bool('block-soft-match', opts.blockSoftMatch);
        const b2 = bool('soft-match-on-upn', opts.softMatchOnUpn);
        const b3 = bool('block-hard-match-takeover', opts.blockHardMatchTakeover);
        if (b1 !== undefined) patch.blockSoftMatchEnabled = b1;
        if (b2 !== undefined) patch.softMatchOnUpnEnabled = b2;
        if (b3 !== undefined) patch.blockCloudObjectTakeoverThroughHardMatchEnabled = b3;
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const f = Object.keys(patch).length ? await svc.sync.setFeatures(cliActor(t.id), patch) : await svc.sync.features(t.id);
          output(cmd, f, Object.entries(f).map(([k, v]) => `${k}: ${String(v)}`));
        });
      }),
    );

  dirsync
    .command('status')
    .requiredOption(...tenantOpt)
    .option('--json', 'print JSON')
    .description('show whether directory sync is activated and when it last ran')
    .action(
      action(async (opts: { tenant: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const st = await svc.organization.status(t.id);
          output(cmd, st, [`Directory sync for ${t.name}: ${st.status}`, ...(st.reactivationBlockedUntil ? [`Can be activated again after ${st.reactivationBlockedUntil}.`] : [])]);
        });
      }),
    );

  dirsyncControlCommands(dirsync, confirm);
}
