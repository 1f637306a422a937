// `nimbus operator create|list|remove`: portal operators, who run the service and may see and
// administer every tenant in the portal. The password never goes on the command line:
// --password-file, NIMBUS_OPERATOR_PASSWORD, a prompt, or a generated one printed once.
import type { Command } from 'commander';
import { generatePassword } from '../cloud/services/passwords.ts';
import { createOperatorService } from '../portal/operators.ts';
import { action, ask, output, readSecretFile, table, UsageError, withServices } from './common.ts';

async function passwordFor(opts: { passwordFile?: string }): Promise<{ password: string; generated: boolean }> {
  if (opts.passwordFile) return { password: readSecretFile(opts.passwordFile, 'password'), generated: false };
  if (process.env.NIMBUS_OPERATOR_PASSWORD) return { password: process.env.NIMBUS_OPERATOR_PASSWORD, generated: false };
  if (process.stdin.isTTY) {
    const a = await ask('Password for the new operator: ', { hidden: true });
    const b = await ask('Repeat the password: ', { hidden: true });
    if (a !== b) throw new UsageError('The two passwords differ; nothing was created.');
    return { password: a, generated: false };
  }
  return { password: generatePassword(), generated: true };
}

export function operatorCommands(program: Command): void {
  const op = program.command('operator').description('portal operators (see and administer every tenant)');
  op.command('create')
    .argument('<name>', 'sign-in name: lower-case letters, digits, . _ - (no @)')
    .option('--display-name <text>', 'display name (default: the name)')
    .option('--password-file <file>', 'read the password from this file (else NIMBUS_OPERATOR_PASSWORD, a prompt, or a generated one)')
    .option('--json', 'print JSON')
    .description('create an operator who signs in to the portal and sees every tenant')
    .action(
      action(async (name: string, opts: { displayName?: string; passwordFile?: string }, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const { password, generated } = await passwordFor(opts);
          const o = await createOperatorService(svc.deps).create(name, password, opts.displayName);
          output(cmd, { ...o, ...(generated ? { password } : {}) }, [`Created operator ${o.name}; it signs in to the portal at /portal/ and sees every tenant.`, ...(generated ? [`  generated password: ${password}`, 'It is shown only now.'] : [])]);
        });
      }),
    );
  op.command('list')
    .option('--json', 'print JSON')
    .description('list operators')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          const list = await createOperatorService(svc.deps).list();
          output(cmd, list, list.length ? table(list, ['name', 'displayName', 'createdDateTime']) : 'No operators. Create one with: nimbus operator create NAME');
        });
      }),
    );
  op.command('remove')
    .argument('<name>', 'the operator to remove')
    .option('--json', 'print JSON')
    .description('remove an operator and end their portal sessions')
    .action(
      action(async (name: string, _opts: unknown, cmd: Command) => {
        await withServices(cmd, async (svc) => {
          await createOperatorService(svc.deps).remove(name);
          output(cmd, { removed: name }, `Removed operator ${name}; their portal sessions have ended.`);
        });
      }),
    );
}
