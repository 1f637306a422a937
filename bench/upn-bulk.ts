// Benchmark: move every user of a Samba AD fixture to a new UPN suffix with `nimbus ad set-upn`
// (plan + journalled apply, in process) and with `ldapmodify` applying the same changes (the
// floor). Appends figures to bench/results/upn-bulk.jsonl; never asserts on time.
// Usage: node --import tsx bench/upn-bulk.ts [--users 10000] [--concurrency 2]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { copyFixture, sambaFixture, startSamba } from '../scripts/samba/samba.ts';
import { applyUpnChanges, planUpnChanges, undoJournal } from '../src/prep/set-upn.ts';
import { addSuffix } from '../src/prep/upn-suffixes.ts';
import { LdapConnection } from '../src/shared/ldap/connection.ts';
import { ms, recordResults } from './results.ts';

const { values } = parseArgs({ options: { users: { type: 'string', default: '10000' }, concurrency: { type: 'string', default: '2' } } });
const users = Number(values.users);
const concurrency = Number(values.concurrency);
const SUFFIX = 'fabrikam.com';

const fixture = await sambaFixture({ users, seed: 1 });
const dir = await copyFixture(fixture.dir);
const server = await startSamba(dir);
const work = mkdtempSync(join(tmpdir(), 'nimbus-upn-bench-'));
try {
  const config = { url: server.url, bindDn: server.bindDN, password: () => server.password, starttls: false, timeoutMs: 120_000 };
  const conn = await LdapConnection.open(config);
  await addSuffix(conn, SUFFIX);
  const base = fixture.manifest.rootOU;

  // Nimbus: plan (read, suffix/readiness/uniqueness checks) + apply (journal + one modify each).
  let t = process.hrtime.bigint();
  const plan = await planUpnChanges(conn, { kind: 'base', base }, { suffix: SUFFIX });
  const planMs = ms(t);
  const todo = plan.filter((p) => p.status === 'change');
  const journal = join(work, 'journal.jsonl');
  t = process.hrtime.bigint();
  const results = await applyUpnChanges(conn, plan, { journal, url: server.url, bindDn: server.bindDN, concurrency });
  const applyMs = ms(t);
  const changed = results.filter((r) => r.result === 'changed').length;
  t = process.hrtime.bigint();
  const undone = await undoJournal(conn, journal, { concurrency });
  const undoMs = ms(t);
  await conn.close();

  // Floor: ldapmodify applying the very same delete-old/add-new changes from an LDIF file.
  const ldif = todo
    .map((p) => {
      const lines = [`dn:: ${Buffer.from(p.dn, 'utf8').toString('base64')}`, 'changetype: modify'];
      if (p.old) lines.push('delete: userPrincipalName', `userPrincipalName:: ${p.old.toString('base64')}`, '-');
      lines.push('add: userPrincipalName', `userPrincipalName:: ${Buffer.from(p.newText!, 'utf8').toString('base64')}`, '-');
      return lines.join('\n');
    })
    .join('\n\n');
  const ldifFile = join(work, 'changes.ldif');
  const pwFile = join(work, 'pw');
  writeFileSync(ldifFile, `${ldif}\n`);
  // -y reads the password from a file, so it never shows on a command line.
  writeFileSync(pwFile, server.password, { mode: 0o600 });
  t = process.hrtime.bigint();
  const lm = spawnSync('ldapmodify', ['-x', '-H', server.url, '-D', server.bindDN, '-y', pwFile, '-f', ldifFile], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 * 2 ** 20 });
  const ldapmodifyMs = ms(t);
  if (lm.status !== 0) throw new Error(`ldapmodify failed (${lm.status}): ${lm.stderr.toString().slice(0, 500)}`);

  const nimbusMs = planMs + applyMs;
  recordResults('upn-bulk', {
    users: fixture.manifest.counts.users,
    changes: todo.length,
    changed,
    refused: plan.filter((p) => p.status === 'refused').length,
    undone: undone.filter((u) => u.result === 'restored').length,
    concurrency,
    nimbusPlanMs: Math.round(planMs),
    nimbusApplyMs: Math.round(applyMs),
    nimbusTotalMs: Math.round(nimbusMs),
    nimbusUndoMs: Math.round(undoMs),
    ldapmodifyMs: Math.round(ldapmodifyMs),
    ratioTotalToFloor: Number((nimbusMs / ldapmodifyMs).toFixed(3)),
    ratioApplyToFloor: Number((applyMs / ldapmodifyMs).toFixed(3)),
    nimbusChangesPerSec: Math.round(todo.length / (applyMs / 1000)),
    ldapmodifyChangesPerSec: Math.round(todo.length / (ldapmodifyMs / 1000)),
  });
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
