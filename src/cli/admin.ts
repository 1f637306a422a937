// `nimbus admin create --tenant T --upn U`: a tenant administrator (a user holding the
// Global Administrator role), who signs in to the portal. The password never goes on the
// command line: --password-file, NIMBUS_ADMIN_PASSWORD, a prompt, or a generated one.
import type { Command } from 'commander';
import { cliActor } from '../cloud/services/context.ts';
import { GLOBAL_ADMIN } from '../cloud/services/directory.ts';
import { generatePassword } from '../cloud/services/passwords.ts';
import { action, ask, output, readSecretFile, UsageError, withServices } from './common.ts';

async function passwordFor(opts: { passwordFile?: string }): Promise<{ password: string; generated: boolean }> {
  if (opts.passwordFile) return { password: readSecretFile(opts.passwordFile, 'password'), generated: false };
  if (process.env.NIMBUS_ADMIN_PASSWORD) return { password: process.env.NIMBUS_ADMIN_PASSWORD, generated: false };
  if (process.stdin.isTTY) {
    const a = await ask('Password for the new administrator: ', { hidden: true });
    const b = await ask('Repeat the password: ', { hidden: true });
    if (a !== b) throw new UsageError('The two passwords differ; nothing was created.');
    return { password: a, generated: false };
  }
  return { password: generatePassword(), generated: true };
}

export function adminCommands(program: Command): void {
  const admin = program.command('admin').description('tenant administrators (portal sign-in)');
  admin
    .command('create')
    .requiredOption('--tenant <tenant>', 'tenant id, name or verified domain')
    .requiredOption('--upn <upn>', 'user principal name, on a verified domain of the tenant')
    .option('--display-name <text>', 'display name (default: the part of the UPN before @)')
    .option('--password-file <file>', 'read the password from this file (else NIMBUS_ADMIN_PASSWORD, a prompt, or a generated one)')
    .option('--json', 'print JSON')
    .description('create a user holding the Global Administrator role')
    .action(
      action(async (opts: { tenant: string; upn: string; displayName?: string; passwordFile?: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const t = await svc.tenants.require(opts.tenant);
          const { password, generated } = await passwordFor(opts);
          const local = opts.upn.split('@')[0] ?? opts.upn;
          const actor = cliActor(t.id);
          const user = await svc.users.create(actor, {
            accountEnabled: true,
            displayName: opts.displayName ?? local,
            mailNickname: local.replace(/[^A-Za-z0-9._-]/g, '').slice(0, 64) || 'admin',
            userPrincipalName: opts.upn,
            passwordProfile: { password, forceChangePasswordNextSignIn: false },
          });
          await svc.directory.assignRole(actor, GLOBAL_ADMIN, user.id as string);
          output(
            cmd,
            { id: user.id, userPrincipalName: user.userPrincipalName, roles: ['Global Administrator'], ...(generated ? { password } : {}) },
            [`Created administrator ${String(user.userPrincipalName)} (Global Administrator) in ${t.name}.`, ...(generated ? [`  generated password: ${password}`, 'It is shown only now.'] : [])],
          );
        });
      }),
    );
}
