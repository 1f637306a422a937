// `nimbus ad ...`: prepare on-premises Active Directory for sync: UPN suffixes, single and
// bulk UPN changes with a journal and undo, and the readiness check against a tenant.
import type { Command } from 'commander';
import { fetchTenantDomains, findingsCsv, runCheck, type TenantDomains } from '../prep/check.ts';
import { applyUpnChanges, planUpnChanges, undoJournal, type NewValue, type Selection } from '../prep/set-upn.ts';
import {
  addSuffix,
  listDomainControllers,
  listSuffixes,
  parseDcOverrides,
  removeSuffix,
  suffixStatus,
  type DcStatus,
} from '../prep/upn-suffixes.ts';
import { LdapConnection } from '../shared/ldap/connection.ts';
import { readAdConfigFile, resolveLdapConfig, type LdapConnectionConfig, type LdapFlags } from '../shared/ldap/ldap-config.ts';
import { NimbusError } from '../shared/errors.ts';
import { action, ask, EXIT, globals, output, readSecretFile, table, UsageError } from './common.ts';

interface ConnOpts extends LdapFlags {
  config?: string;
  json?: boolean;
}

/** The connection flags every `nimbus ad` command takes. */
function withConnection(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'domain controller: ldap://host[:389] or ldaps://host[:636] (env NIMBUS_AD_URL)')
    .option('--bind-dn <dn>', 'account to bind as, a DN or a UPN (env NIMBUS_AD_BIND_DN)')
    .option('--password-file <file>', 'file holding the bind password (else env NIMBUS_AD_PASSWORD, else a hidden prompt)')
    .option('--starttls', 'upgrade ldap:// with StartTLS before binding')
    .option('--ca-file <file>', 'PEM file of the CA that signed the DC certificate')
    .option('--timeout <seconds>', 'connect and per-operation timeout in seconds (default 30)')
    .option('--config <file>', "agent config file: connection from its source: section, tenant from target:")
    .option('--json', 'print JSON');
}

async function connectionConfig(opts: ConnOpts): Promise<LdapConnectionConfig> {
  const config = opts.config ? readAdConfigFile(opts.config) : undefined;
  return resolveLdapConfig(opts, {
    env: process.env,
    config,
    readSecret: readSecretFile,
    prompt: (q) => ask(q, { hidden: true }),
  });
}

async function withLdap<T>(opts: ConnOpts, fn: (conn: LdapConnection, config: LdapConnectionConfig) => Promise<T>): Promise<T> {
  const config = await connectionConfig(opts);
  const conn = await LdapConnection.open(config);
  try {
    return await fn(conn, config);
  } finally {
    await conn.close();
  }
}

/** A progress bar on stderr, only on a terminal and only for sets worth watching. */
function progress(total: number, label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY || total < 20) return undefined;
  let last = 0;
  return (done, all) => {
    const now = Date.now();
    if (done < all && now - last < 100) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / all) * width);
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${all}`);
    if (done === all) process.stderr.write('\n');
  };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function adCommands(program: Command): void {
  const ad = program.command('ad').description('prepare on-premises Active Directory: UPN suffixes, UPN changes with undo, readiness check');
  const suffix = ad.command('upn-suffix').description("list, add and remove the forest's UPN suffixes; check replication per DC");

  withConnection(suffix.command('list'))
    .description('list the implicit (domain) and alternative UPN suffixes with their user counts')
    .action(
      action(async (opts: ConnOpts, cmd: Command) => {
        await withLdap(opts, async (conn) => {
          const r = await listSuffixes(conn);
          const rows = [...r.rows, ...r.otherSuffixes.map((o) => ({ ...o, kind: 'not listed' }))].map((x) => ({ ...x, routable: x.routable ? 'yes' : 'no' }));
          output(cmd, r, [table(rows, ['suffix', 'kind', 'routable', 'users']), `${r.usersWithoutUpn} user(s) have no UPN.`]);
        });
      }),
    );

  withConnection(suffix.command('add').argument('<suffix>', 'DNS name, e.g. contoso.com'))
    .description('add an alternative UPN suffix to the forest (idempotent)')
    .option('--wait-replication', 'then wait until every domain controller sees it')
    .option('--dc <name=url>', 'how to reach a DC (repeatable); default ldap://<its dNSHostName>', collect)
    .option('--wait-timeout <seconds>', 'give up waiting after this long (default 300)')
    .action(
      action(async (name: string, opts: ConnOpts & { waitReplication?: boolean; dc?: string[]; waitTimeout?: string }, cmd: Command) => {
        await withLdap(opts, async (conn, config) => {
          const r = await addSuffix(conn, name);
          const msg = r.status === 'added' ? `Added the UPN suffix ${r.suffix}.` : r.implicit ? `${r.suffix} is a domain of this forest: always allowed.` : `The UPN suffix ${r.suffix} exists already; nothing changed.`;
          if (!opts.waitReplication) return output(cmd, r, msg);
          const deadline = Date.now() + Number(opts.waitTimeout ?? 300) * 1000;
          const dcs = await listDomainControllers(conn, parseDcOverrides(opts.dc ?? []), /^ldaps:/i.test(config.url) ? 'ldaps' : 'ldap');
          let status: DcStatus[];
          for (;;) {
            status = await suffixStatus(config, dcs, name);
            if (status.every((s) => s.state === 'sees') || Date.now() > deadline) break;
            await new Promise((res) => setTimeout(res, 2000));
          }
          const ok = status.every((s) => s.state === 'sees');
          output(cmd, { ...r, replicated: ok, domainControllers: status }, [msg, table(status as unknown as Record<string, unknown>[], ['dc', 'url', 'state', 'detail']), ok ? 'Every domain controller sees it.' : 'Not every domain controller sees it yet (timed out).']);
          if (!ok) process.exitCode = EXIT.failed;
        });
      }),
    );

  withConnection(suffix.command('remove').argument('<suffix>', 'the alternative suffix'))
    .description('remove an alternative UPN suffix (refused while users use it, unless --force)')
    .option('--force', 'remove it even though users still use it')
    .action(
      action(async (name: string, opts: ConnOpts & { force?: boolean }, cmd: Command) => {
        await withLdap(opts, async (conn) => {
          const r = await removeSuffix(conn, name, { force: !!opts.force });
          output(cmd, r, r.status === 'absent' ? `${name} is not a UPN suffix of this forest; nothing changed.` : `Removed the UPN suffix ${r.suffix}${r.usersStillUsing ? ` (forced: ${r.usersStillUsing} user(s) still use it)` : ''}.`);
        });
      }),
    );

  withConnection(suffix.command('status').argument('<suffix>', 'the suffix to look for'))
    .description('ask every domain controller (nTDSDSA objects) whether it already sees the suffix')
    .option('--dc <name=url>', 'how to reach a DC (repeatable; a name not in the configuration partition is added)', collect)
    .action(
      action(async (name: string, opts: ConnOpts & { dc?: string[] }, cmd: Command) => {
        await withLdap(opts, async (conn, config) => {
          const dcs = await listDomainControllers(conn, parseDcOverrides(opts.dc ?? []), /^ldaps:/i.test(config.url) ? 'ldaps' : 'ldap');
          const status = await suffixStatus(config, dcs, name);
          const ok = status.every((s) => s.state === 'sees');
          output(cmd, { suffix: name, replicated: ok, domainControllers: status }, [table(status as unknown as Record<string, unknown>[], ['dc', 'url', 'state', 'detail']), ok ? `Every domain controller sees ${name}.` : `Not every domain controller sees ${name}.`]);
          if (!ok) process.exitCode = EXIT.failed;
        });
      }),
    );

  withConnection(ad.command('set-upn'))
    .description('change the UPN of one user or many (OU subtree, LDAP filter, CSV), with a journal for undo')
    .option('--user <id>', 'one user: sAMAccountName, DN or UPN')
    .option('--base <dn>', 'every user under this DN')
    .option('--filter <ldapfilter>', 'with --base: only users matching this LDAP filter')
    .option('--csv <file>', "users from a CSV with a 'user' column and an optional 'upn' column")
    .option('--suffix <suffix>', 'keep the prefix, change the suffix')
    .option('--upn <upn>', 'the full new UPN (one user)')
    .option('--dry-run', 'print the before/after table and write nothing')
    .option('--journal <file>', 'journal for undo (default ./nimbus-upn-<time>.jsonl)')
    .option('--concurrency <n>', 'modify requests in flight (default 2)')
    .action(
      action(async (opts: ConnOpts & { user?: string; csv?: string; filter?: string; suffix?: string; upn?: string; dryRun?: boolean; journal?: string; concurrency?: string }, cmd: Command) => {
        const picked = [opts.user, opts.base, opts.csv].filter((x) => x !== undefined).length;
        if (picked !== 1) throw new UsageError('Choose the users with exactly one of --user ID, --base DN [--filter F] or --csv FILE.');
        if (opts.filter && !opts.base) throw new UsageError('--filter works with --base DN.');
        if (opts.suffix && opts.upn) throw new UsageError('Give --suffix S or --upn U, not both.');
        if (!opts.suffix && !opts.upn && !opts.csv) throw new UsageError('Give the new value: --suffix S (keep the prefix) or --upn U.');
        if (opts.upn && !opts.user) throw new UsageError('--upn sets one full UPN: use it with --user (or put a upn column in the CSV).');
        const sel: Selection = opts.user ? { kind: 'user', id: opts.user } : opts.base ? { kind: 'base', base: opts.base, filter: opts.filter } : { kind: 'csv', file: opts.csv! };
        const value: NewValue | undefined = opts.suffix ? { suffix: opts.suffix } : opts.upn ? { upn: opts.upn } : undefined;
        await withLdap(opts, async (conn, config) => {
          const plan = await planUpnChanges(conn, sel, value);
          const view = (r: { dn: string; sAMAccountName?: string | undefined; oldText: string | null; newText: string | null; reason?: string | undefined; suggestion?: string | undefined }, result: string) => ({
            dn: r.dn,
            sAMAccountName: r.sAMAccountName,
            before: r.oldText,
            after: r.newText,
            result,
            reason: r.reason,
            suggestion: r.suggestion,
          });
          if (opts.dryRun) {
            const rows = plan.map((p) => view(p, p.status === 'change' ? 'would-change' : p.status));
            const n = plan.filter((p) => p.status === 'change').length;
            output(cmd, { dryRun: true, results: rows }, [table(rows, ['dn', 'before', 'after', 'result', 'reason']), `Dry run: ${n} of ${plan.length} user(s) would change; nothing was written.`]);
            if (plan.some((p) => p.status === 'refused')) process.exitCode = EXIT.failed;
            return;
          }
          const journal = opts.journal ?? `nimbus-upn-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
          const todo = plan.filter((p) => p.status === 'change').length;
          const results = await applyUpnChanges(conn, plan, {
            journal,
            url: config.url,
            bindDn: config.bindDn,
            concurrency: opts.concurrency ? Math.max(1, Number(opts.concurrency) || 2) : 2,
            onProgress: progress(todo, 'set-upn'),
          });
          const rows = results.map((r) => view(r, r.result));
          const count = (k: string) => results.filter((r) => r.result === k).length;
          const summary = `${count('changed')} changed, ${count('unchanged')} unchanged, ${count('refused')} refused, ${count('failed')} failed.${todo ? ` Journal: ${journal} (undo: nimbus ad undo --journal ${journal}).` : ''}`;
          output(cmd, { journal: todo ? journal : null, results: rows }, [table(rows, ['dn', 'before', 'after', 'result', 'reason']), summary]);
          if (count('refused') + count('failed') > 0) process.exitCode = EXIT.failed;
        });
      }),
    );

  withConnection(ad.command('undo'))
    .description('restore the UPNs a set-upn run changed, from its journal (a killed run too)')
    .requiredOption('--journal <file>', 'the journal written by set-upn')
    .action(
      action(async (opts: ConnOpts & { journal: string }, cmd: Command) => {
        await withLdap(opts, async (conn) => {
          const results = await undoJournal(conn, opts.journal, { onProgress: undefined });
          const count = (k: string) => results.filter((r) => r.result === k).length;
          output(cmd, { results }, [
            table(results as unknown as Record<string, unknown>[], ['dn', 'from', 'to', 'result', 'reason']),
            `${count('restored')} restored, ${count('not-applied')} never changed, ${count('already-undone')} already undone, ${count('conflict')} changed since (left alone), ${count('failed')} failed.`,
          ]);
          if (count('conflict') + count('failed') > 0) process.exitCode = EXIT.failed;
        });
      }),
    );

  withConnection(ad.command('check'))
    .description('readiness check (IdFix rules) of users, groups and contacts; with a tenant, forecast each UPN suffix')
    .option('--base <dn>', 'scope (default: the domain)')
    .option('--tenant <tenant>', 'tenant id, name or domain to cross-check UPN suffixes against')
    .option('--cloud-url <url>', 'base URL of the cloud directory')
    .option('--client-id <id>', 'client id of an app of the tenant (read role is enough)')
    .option('--client-secret-file <file>', "file holding the app's client secret")
    .option('--csv', 'print the findings as CSV')
    .action(async (opts: ConnOpts & { tenant?: string; cloudUrl?: string; clientId?: string; clientSecretFile?: string; csv?: boolean }, cmd: Command) => {
      // Exit codes of the check: 0 clean, 1 findings, 2 could not run (whatever the reason).
      try {
        const fileTarget = opts.config ? readAdConfigFile(opts.config).target : undefined;
        const tenantName = opts.tenant ?? (opts.cloudUrl || opts.clientId ? undefined : fileTarget?.tenant);
        let tenant: TenantDomains | undefined;
        if (tenantName) {
          const cloudUrl = opts.cloudUrl ?? fileTarget?.url;
          const clientId = opts.clientId ?? fileTarget?.clientId;
          const secretFile = opts.clientSecretFile ?? fileTarget?.clientSecretFile;
          if (!cloudUrl || !clientId || !secretFile) throw new UsageError('--tenant needs --cloud-url, --client-id and --client-secret-file (or a --config file with a target: section).');
          tenant = await fetchTenantDomains({ cloudUrl, tenant: tenantName, clientId, clientSecret: readSecretFile(secretFile, 'client secret'), caFile: fileTarget?.caFile });
        }
        const report = await withLdap(opts, (conn) => runCheck(conn, { base: opts.base, tenant }));
        if (opts.csv && !globals(cmd).json) process.stdout.write(`${findingsCsv(report.findings)}\n`);
        else output(cmd, report, humanReport(report));
        process.exitCode = report.findings.length > 0 ? EXIT.failed : EXIT.ok;
      } catch (err) {
        const msg = err instanceof NimbusError || err instanceof UsageError ? err.message : ((err as Error).stack ?? String(err));
        if (globals(cmd).json) process.stdout.write(`${JSON.stringify({ error: { code: err instanceof NimbusError ? err.code : 'CheckFailed', message: msg } }, null, 2)}\n`);
        process.stderr.write(`error: ${msg}\n`);
        process.exitCode = EXIT.usage;
      }
    });
}

function humanReport(r: Awaited<ReturnType<typeof runCheck>>): string[] {
  const lines = [`Scanned ${r.scanned.users} users, ${r.scanned.groups} groups, ${r.scanned.contacts} contacts under ${r.base} (${r.excluded} excluded as IdFix does).`];
  if (r.findings.length === 0) lines.push('No findings.');
  else lines.push('', table(r.findings as unknown as Record<string, unknown>[], ['dn', 'attribute', 'error', 'value', 'suggestion']), `${r.findings.length} finding(s).`);
  lines.push('', r.tenant ? `UPN suffixes against tenant ${r.tenant.name} (verified: ${r.tenant.verifiedDomains.join(', ')}):` : 'UPN suffixes (give --tenant to forecast cloud UPNs):');
  const rows = r.suffixes.map((s) => ({
    suffix: s.suffix,
    users: s.users,
    verified: s.verified === null ? '' : s.verified ? 'yes' : 'no',
    keep: s.keep,
    fallback: s.fallback,
    example: s.examples[0] ? `${s.examples[0].onPremises} -> ${s.examples[0].cloud}` : '',
  }));
  lines.push(table(rows, r.tenant ? ['suffix', 'users', 'verified', 'keep', 'fallback', 'example'] : ['suffix', 'users']));
  return lines;
}
