// `nimbus ad` UPN suffixes and UPN changes against a real Samba AD DC: suffix add/list/remove
// (checked with an independent LDAP read), per-DC status, single/OU/filter/CSV changes, dry
// run, undo byte-for-byte, conflicts refused per user, a SIGKILLed bulk run undone.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyUpnChanges, planUpnChanges, undoJournal } from '../../src/prep/set-upn.ts';
import { addSuffix, listDomainControllers, listSuffixes, parseDcOverrides, removeSuffix, suffixStatus } from '../../src/prep/upn-suffixes.ts';
import { LdapConnection } from '../../src/shared/ldap/connection.ts';
import type { LdapConnectionConfig } from '../../src/shared/ldap/ldap-config.ts';
import { LdapError } from '../../src/shared/ldap/ldap-errors.ts';
import { escapeFilterValue } from '../../src/shared/ldap/escape.ts';
import { useSamba } from '../helpers/samba.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ad = useSamba();
const ROOT = () => ad().manifest.rootOU;
const USERS = '(&(objectCategory=person)(objectClass=user))';

let work: string;
let conn: LdapConnection;
let raw: Client;
const config = (over: Partial<LdapConnectionConfig> = {}): LdapConnectionConfig => ({
  url: ad().url,
  bindDn: ad().bindDN,
  password: () => ad().password,
  starttls: false,
  timeoutMs: 10_000,
  ...over,
});

/** Every user's UPN under `base`, exact bytes as base64 (absent = null), read independently. */
async function snapshot(base: string): Promise<Map<string, string | null>> {
  const { searchEntries } = await raw.search(base, { scope: 'sub', filter: USERS, attributes: ['userPrincipalName'], explicitBufferAttributes: ['userPrincipalName'], paged: { pageSize: 500 } });
  return new Map(searchEntries.map((e) => [e.dn.toLowerCase(), e.userPrincipalName ? (e.userPrincipalName as Buffer).toString('base64') : null]));
}
async function upnOf(dn: string): Promise<string | undefined> {
  const { searchEntries } = await raw.search(dn, { scope: 'base', attributes: ['userPrincipalName'] });
  return searchEntries[0]?.userPrincipalName as string | undefined;
}
async function forestSuffixes(): Promise<string[]> {
  const { searchEntries } = await raw.search(`CN=Partitions,CN=Configuration,${ad().baseDN}`, { scope: 'base', attributes: ['uPNSuffixes'] });
  const v = searchEntries[0]?.uPNSuffixes ?? [];
  return (Array.isArray(v) ? v : [v]).map(String).sort();
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'nimbus-prep-'));
  raw = new Client({ url: ad().url, timeout: 30_000 });
  await raw.bind(ad().bindDN, ad().password);
  conn = await LdapConnection.open(config());
});
afterAll(async () => {
  await conn?.close();
  await raw?.unbind();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('connection errors', () => {
  it('a wrong password names the bind identity; an unreachable URL names the URL', async () => {
    const e1 = await LdapConnection.open(config({ password: () => 'wrong-password' })).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(LdapError);
    expect((e1 as LdapError).code).toBe('LdapInvalidCredentials');
    expect((e1 as LdapError).message).toContain(ad().bindDN);
    const e2 = await LdapConnection.open(config({ url: 'ldap://127.0.0.1:1' })).catch((e: unknown) => e);
    expect((e2 as LdapError).code).toBe('LdapUnreachable');
    expect((e2 as LdapError).message).toContain('ldap://127.0.0.1:1');
    // ldaps without the CA: a TLS error that says to pass --ca-file.
    const e3 = await LdapConnection.open(config({ url: ad().ldapsUrl ?? '' })).catch((e: unknown) => e);
    expect((e3 as LdapError).code).toBe('LdapTls');
    expect((e3 as LdapError).message).toContain('--ca-file');
  });

  it('binds by UPN over LDAPS with the CA file', async () => {
    // Samba's certificate names NIMBUSDC.<domain>, not 127.0.0.1: the identity check fails, which is the right answer.
    const e = await LdapConnection.open(config({ url: ad().ldapsUrl ?? '', caFile: ad().tlsCaFile, bindDn: `Administrator@${ad().domainDnsName}` })).catch((x: unknown) => x);
    expect((e as LdapError).code).toBe('LdapTls');
    expect((e as LdapError).message).toMatch(/names the host|altnames|Hostname/i);
  });

  it('insufficient rights name the object and the right', async () => {
    const sync = ad().manifest.edgeCases['upn-domain-suffix'].find((x) => x.sAMAccountName === 'svc-nimbus-sync')!;
    const { SAMBA_SYNC_PASSWORD } = await import('../../scripts/samba/samba.ts');
    const weak = await LdapConnection.open(config({ bindDn: sync.userPrincipalName!, password: () => SAMBA_SYNC_PASSWORD }));
    try {
      const e = await addSuffix(weak, 'denied.example.org').catch((x: unknown) => x);
      expect((e as LdapError).code).toBe('LdapInsufficientRights');
      expect((e as LdapError).message).toContain('CN=Partitions,CN=Configuration');
      expect((e as LdapError).message).toContain('uPNSuffixes');
    } finally {
      await weak.close();
    }
  });
});

describe('UPN suffixes', () => {
  it('add is validated and idempotent; list shows it with counts; remove refuses while used unless --force', async () => {
    const before = await forestSuffixes();
    await expect(addSuffix(conn, 'not a domain')).rejects.toThrow(/not a valid UPN suffix/);
    expect(await addSuffix(conn, 'fabrikam.com')).toMatchObject({ status: 'added' });
    expect(await addSuffix(conn, 'Fabrikam.com')).toMatchObject({ status: 'exists' });
    expect(await addSuffix(conn, ad().domainDnsName)).toMatchObject({ status: 'exists', implicit: true });
    expect(await forestSuffixes()).toEqual([...before, 'fabrikam.com'].sort());

    const list = await listSuffixes(conn);
    const m = ad().manifest;
    const row = (s: string) => list.rows.find((r) => r.suffix.toLowerCase() === s);
    expect(row(m.upnSuffixes.domain)).toMatchObject({ kind: 'domain' });
    expect(row(m.upnSuffixes.nonRoutable)).toMatchObject({ kind: 'alternative', routable: false, users: m.edgeCases['upn-nonroutable-suffix'].length });
    expect(row('fabrikam.com')).toMatchObject({ users: 0 });

    // In use: refused, then forced.
    const victim = m.edgeCases['upn-domain-suffix'].find((x) => x.key.startsWith('u') && /^[a-z0-9.]+@/.test(x.userPrincipalName ?? ''))!;
    const plan = await planUpnChanges(conn, { kind: 'user', id: victim.dn }, { suffix: 'fabrikam.com' });
    await applyUpnChanges(conn, plan, { journal: join(work, 'suffix.jsonl'), url: ad().url, bindDn: ad().bindDN });
    await expect(removeSuffix(conn, 'fabrikam.com', { force: false })).rejects.toThrow(/1 user\(s\) still have a UPN ending in @fabrikam.com/);
    expect(await forestSuffixes()).toContain('fabrikam.com');
    expect(await removeSuffix(conn, 'fabrikam.com', { force: true })).toMatchObject({ status: 'removed', usersStillUsing: 1 });
    expect(await forestSuffixes()).toEqual(before);
    expect(await removeSuffix(conn, 'fabrikam.com', { force: false })).toMatchObject({ status: 'absent' });
    await expect(removeSuffix(conn, ad().domainDnsName, { force: true })).rejects.toThrow(/always an allowed UPN suffix/);
    await undoJournal(conn, join(work, 'suffix.jsonl'));
    expect(await upnOf(victim.dn)).toBe(victim.userPrincipalName);
  });

  it('status asks each DC from the configuration partition: the real one sees it, an unreachable one is reported', async () => {
    await addSuffix(conn, 'status.example.org');
    // The one DC is listed under its DNS name (which does not resolve here): map it to 127.0.0.1.
    const dcs = await listDomainControllers(conn, parseDcOverrides([`NIMBUSDC=${ad().url}`, 'DC2=ldap://127.0.0.1:1']), 'ldap');
    expect(dcs.map((d) => [d.name, d.source])).toEqual([['NIMBUSDC', 'configuration'], ['DC2', 'command line']]);
    const status = await suffixStatus(config(), dcs, 'status.example.org');
    expect(status.map((s) => [s.dc, s.state])).toEqual([['NIMBUSDC', 'sees'], ['DC2', 'unreachable']]);
    expect(status[1]?.detail).toContain('ldap://127.0.0.1:1');
    const missing = await suffixStatus(config(), dcs.slice(0, 1), 'nowhere.example.org');
    expect(missing[0]?.state).toBe('missing');
    // Without an override the DC is reached by its dNSHostName.
    const plain = await listDomainControllers(conn, new Map(), 'ldap');
    expect(plain[0]?.url).toMatch(/^ldap:\/\/nimbusdc\./i);
  });
});

describe('set-upn', () => {
  const ouOf = (city: string) => `OU=Users,OU=${city},OU=Europe,${ROOT()}`;

  it('single user by sAMAccountName, DN and UPN; dry run writes nothing; undo restores byte-for-byte', async () => {
    const u = ad().manifest.edgeCases['upn-routable-suffix'][0]!;
    const before = await snapshot(ROOT());
    const dry = await planUpnChanges(conn, { kind: 'user', id: u.sAMAccountName }, { suffix: ad().domainDnsName });
    expect(dry).toHaveLength(1);
    expect(dry[0]).toMatchObject({ dn: u.dn, oldText: u.userPrincipalName, status: 'change' });
    expect(await snapshot(ROOT())).toEqual(before);

    const j = join(work, 'single.jsonl');
    const r1 = await applyUpnChanges(conn, dry, { journal: j, url: ad().url, bindDn: ad().bindDN });
    expect(r1[0]?.result).toBe('changed');
    const newUpn = `${u.userPrincipalName!.split('@')[0]}@${ad().domainDnsName}`;
    expect(await upnOf(u.dn)).toBe(newUpn);
    // Look the same user up by its new UPN and by DN; set a full UPN.
    const byUpn = await planUpnChanges(conn, { kind: 'user', id: newUpn }, { upn: `renamed.${u.sAMAccountName}@${ad().domainDnsName}` });
    expect(byUpn[0]?.dn).toBe(u.dn);
    await applyUpnChanges(conn, byUpn, { journal: j, url: ad().url, bindDn: ad().bindDN });
    const byDn = await planUpnChanges(conn, { kind: 'user', id: u.dn }, { suffix: ad().manifest.upnSuffixes.routable });
    expect(byDn[0]?.oldText).toBe(`renamed.${u.sAMAccountName}@${ad().domainDnsName}`);

    const undo = await undoJournal(conn, j);
    expect(undo.map((x) => x.result)).toEqual(['restored', 'restored']);
    expect(await snapshot(ROOT())).toEqual(before);
    // A second undo does nothing.
    expect((await undoJournal(conn, j)).map((x) => x.result)).toEqual(['already-undone', 'already-undone']);
  });

  it('bulk by OU, by filter and by CSV; a conflict with an existing UPN is refused for that user only', async () => {
    await addSuffix(conn, 'fabrikam.com');
    const before = await snapshot(ROOT());
    const j = join(work, 'bulk.jsonl');

    // OU subtree.
    const ou = ouOf('Berlin');
    const inOu = [...before.keys()].filter((dn) => dn.endsWith(ou.toLowerCase()));
    const plan = await planUpnChanges(conn, { kind: 'base', base: ou }, { suffix: 'fabrikam.com' });
    expect(plan.length).toBe(inOu.length);
    const res = await applyUpnChanges(conn, plan, { journal: j, url: ad().url, bindDn: ad().bindDN });
    const changed = res.filter((r) => r.result === 'changed');
    // Users whose prefix breaks the readiness rules are refused, the rest change.
    for (const r of res) expect(['changed', 'refused']).toContain(r.result);
    expect(changed.length).toBeGreaterThan(inOu.length / 2);
    for (const r of changed) expect((await upnOf(r.dn))?.endsWith('@fabrikam.com')).toBe(true);

    // LDAP filter within a base.
    const fplan = await planUpnChanges(conn, { kind: 'base', base: ROOT(), filter: `(userPrincipalName=*@${escapeFilterValue(ad().manifest.upnSuffixes.nonRoutable)})` }, { suffix: 'fabrikam.com' });
    expect(fplan.filter((p) => p.status === 'change').length).toBeGreaterThan(10);
    for (const p of fplan) expect(p.oldText?.toLowerCase().endsWith(`@${ad().manifest.upnSuffixes.nonRoutable}`)).toBe(true);
    await applyUpnChanges(conn, fplan, { journal: j, url: ad().url, bindDn: ad().bindDN });

    // CSV: one row takes an existing UPN (refused), the others change; a missing user is refused.
    const [a, b, c] = ad().manifest.edgeCases['upn-routable-suffix'].filter((x) => x.key.startsWith('u')).slice(3, 6);
    const holder = ad().manifest.edgeCases['upn-domain-suffix'].find((x) => x.key.startsWith('u') && !x.dn.toLowerCase().endsWith(ou.toLowerCase()))!;
    const csv = join(work, 'users.csv');
    writeFileSync(csv, `user,upn\n${a!.sAMAccountName},${holder.userPrincipalName!.toUpperCase()}\n"${b!.dn}",\n${c!.userPrincipalName},c.new@fabrikam.com\nnobody-here,\n`);
    const cplan = await planUpnChanges(conn, { kind: 'csv', file: csv }, { suffix: 'fabrikam.com' });
    expect(cplan.map((p) => p.status)).toEqual(['refused', 'change', 'change', 'refused']);
    expect(cplan[0]?.reason).toContain(`already used by ${holder.dn}`);
    const cres = await applyUpnChanges(conn, cplan, { journal: j, url: ad().url, bindDn: ad().bindDN });
    expect(cres.map((r) => r.result)).toEqual(['refused', 'changed', 'changed', 'refused']);
    expect(await upnOf(a!.dn)).toBe(a!.userPrincipalName);
    expect(await upnOf(c!.dn)).toBe('c.new@fabrikam.com');

    // A suffix the forest does not list is refused before anything is written.
    const bad = await planUpnChanges(conn, { kind: 'user', id: a!.sAMAccountName }, { suffix: 'unlisted.example.org' });
    expect(bad[0]?.reason).toContain('nimbus ad upn-suffix add unlisted.example.org');

    // A concurrent change between plan and write is detected, not overwritten.
    const race = await planUpnChanges(conn, { kind: 'user', id: a!.sAMAccountName }, { suffix: 'fabrikam.com' });
    await raw.modify(a!.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPrincipalName', values: ['someone.else@fabrikam.com'] }) }));
    const rres = await applyUpnChanges(conn, race, { journal: join(work, 'race.jsonl'), url: ad().url, bindDn: ad().bindDN });
    expect(rres[0]?.result).toBe('failed');
    expect(await upnOf(a!.dn)).toBe('someone.else@fabrikam.com');
    await raw.modify(a!.dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPrincipalName', values: [a!.userPrincipalName!] }) }));

    const undo = await undoJournal(conn, j);
    expect(undo.every((u) => u.result === 'restored')).toBe(true);
    expect(await snapshot(ROOT())).toEqual(before);
  });

  it('the CLI: dry run prints a before/after table and writes nothing', async () => {
    const before = await snapshot(ouOf('Paris'));
    const r = await cli(['ad', 'set-upn', '--base', ouOf('Paris'), '--suffix', ad().domainDnsName, '--dry-run', '--json']);
    const out = JSON.parse(r.stdout) as { dryRun: boolean; results: { before: string; after: string; result: string }[] };
    // Exit 1 when some user is refused (e.g. an invalid-character prefix), else 0.
    expect(r.code).toBe(out.results.some((x) => x.result === 'refused') ? 1 : 0);
    expect(out.results.some((x) => x.result === 'would-change')).toBe(true);
    expect(out.dryRun).toBe(true);
    expect(out.results.length).toBe(before.size);
    expect(await snapshot(ouOf('Paris'))).toEqual(before);
  });

  it('a SIGKILLed bulk run is undone from its journal', async () => {
    const before = await snapshot(ROOT());
    const j = join(work, 'killed.jsonl');
    const child = spawn(process.execPath, ['bin/nimbus.js', 'ad', 'set-upn', '--base', ROOT(), '--suffix', 'fabrikam.com', '--journal', j], {
      env: { ...process.env, NIMBUS_AD_URL: ad().url, NIMBUS_AD_BIND_DN: ad().bindDN, NIMBUS_AD_PASSWORD: ad().password },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, sig) => res(sig)));
    // Kill once some modifies are confirmed and others are in flight.
    for (let i = 0; i < 2000; i++) {
      await new Promise((res) => setTimeout(res, 10));
      if (existsSync(j) && (readFileSync(j, 'utf8').match(/"type":"done"/g)?.length ?? 0) >= 100) break;
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const lines = readFileSync(j, 'utf8').trim().split('\n');
    const changes = lines.filter((l) => l.includes('"type":"change"')).length;
    const dones = lines.filter((l) => l.includes('"type":"done"')).length;
    expect(dones).toBeGreaterThanOrEqual(100);
    expect(changes).toBeLessThan(before.size - 10);
    const undo = await undoJournal(conn, j);
    expect(undo.length).toBe(changes);
    for (const u of undo) expect(['restored', 'not-applied']).toContain(u.result);
    expect(await snapshot(ROOT())).toEqual(before);
  });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, ['bin/nimbus.js', ...args], {
      env: { ...process.env, NIMBUS_AD_URL: ad().url, NIMBUS_AD_BIND_DN: ad().bindDN, NIMBUS_AD_PASSWORD: ad().password },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => res({ code, stdout, stderr }));
  });
}
