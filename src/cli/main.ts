// The `nimbus` command line: one program, one file per command group.
import { Command } from 'commander';
import { tuneHeap } from '../shared/heap.ts';
import { adCommands } from './ad.ts';
import { agentCommands } from './agent.ts';
import { adminCommands } from './admin.ts';
import { appCommands } from './app.ts';
import { dirsyncCommands } from './dirsync.ts';
import { domainCommands } from './domain.ts';
import { operatorCommands } from './operator.ts';
import { serveCommands } from './serve.ts';
import { syncCommands } from './sync.ts';
import { tenantCommands } from './tenant.ts';

// Before any real work: every command (the server, the agent, the embedded demo) gets it.
tuneHeap();

const program = new Command('nimbus')
  .description('Nimbus: a Graph-compatible cloud directory and a sync engine for Active Directory')
  .version('0.1.0')
  .option('--data <dir>', 'data folder (env NIMBUS_DATA, default ./.nimbus)')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride((err) => {
    // Usage errors (unknown option, missing argument) exit 2; --help and --version exit 0.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });

serveCommands(program);
tenantCommands(program);
domainCommands(program);
appCommands(program);
dirsyncCommands(program);
agentCommands(program);
adminCommands(program);
operatorCommands(program);
syncCommands(program);
adCommands(program);

await program.parseAsync(process.argv);
