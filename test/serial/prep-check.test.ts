// `nimbus ad check` against a real Samba AD DC: every IdFix rule finds exactly the objects the
// generator planted for it (and nothing else), and the tenant cross-check forecasts cloud UPNs.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cliActor } from '../../src/cloud/services/context.ts';
import { fetchTenantDomains, runCheck, type CheckReport } from '../../src/prep/check.ts';
import type { RuleId } from '../../src/prep/idfix.ts';
import type { EdgeCase } from '../../scripts/generator/model.ts';
import { LdapConnection } from '../../src/shared/ldap/connection.ts';
import { startCloud, type TestCloud } from '../helpers/cloud.ts';
import { useSamba } from '../helpers/samba.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ad = useSamba();
let conn: LdapConnection;
let cloud: TestCloud;
let report: CheckReport;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'nimbus-check-'));
  conn = await LdapConnection.open({ url: ad().url, bindDn: ad().bindDN, password: () => ad().password, starttls: false, timeoutMs: 30_000 });
  report = await runCheck(conn, {});
  cloud = await startCloud();
});
afterAll(async () => {
  await conn?.close();
  await cloud?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('readiness check', () => {
  const dnsOf = (rules: RuleId[]) => [...new Set(report.findings.filter((f) => rules.includes(f.rule)).map((f) => f.dn.toLowerCase()))].sort();
  const planted = (...cases: EdgeCase[]) => [...new Set(cases.flatMap((c) => ad().manifest.edgeCases[c].map((e) => e.dn.toLowerCase())))].sort();

  it('each rule finds its planted edge case and nothing else', () => {
    expect(dnsOf(['upn-character', 'upn-localpart', 'upn-format'])).toEqual(planted('upn-invalid-characters'));
    expect(dnsOf(['upn-topleveldomain'])).toEqual(planted('upn-nonroutable-suffix'));
    expect(dnsOf(['upn-blank'])).toEqual(planted('no-upn'));
    expect(dnsOf(['upn-matches-proxy'])).toEqual(planted('upn-matches-other-proxy-address'));
    expect(dnsOf(['proxy-duplicate'])).toEqual(planted('proxy-address-duplicate'));
    expect(dnsOf(['mail-duplicate'])).toEqual(planted('mail-duplicate'));
    const covered = new Set<RuleId>(['upn-character', 'upn-localpart', 'upn-format', 'upn-topleveldomain', 'upn-blank', 'upn-matches-proxy', 'proxy-duplicate', 'mail-duplicate']);
    expect(report.findings.filter((f) => !covered.has(f.rule))).toEqual([]);
  });

  it("applies IdFix's exclusions: critical system objects, CNF: objects, MSOL_/AAD_ accounts, Admini*/krbtgt", () => {
    const flagged = new Set(report.findings.map((f) => f.dn.toLowerCase()));
    for (const c of ['critical-system-object', 'conflict-name', 'sync-service-account-name'] as const) {
      for (const e of ad().manifest.edgeCases[c]) expect(flagged.has(e.dn.toLowerCase()), e.dn).toBe(false);
    }
    expect(report.excluded).toBeGreaterThanOrEqual(ad().manifest.edgeCases['conflict-name'].length + ad().manifest.edgeCases['sync-service-account-name'].length);
    expect(report.scanned.groups).toBeGreaterThanOrEqual(ad().manifest.counts.groups);
  });

  it('offers mechanical fixes where there is one', () => {
    const byValue = new Map(report.findings.map((f) => [f.value, f.suggestion]));
    const d = ad().manifest.upnSuffixes.domain;
    expect(byValue.get(`jürgen.müller@${d}`)).toBe(`juergen.mueller@${d}`);
    expect(byValue.get(`john smith@${d}`)).toBe(`john.smith@${d}`);
    expect(byValue.get(`trailing.@${d}`)).toBe(`trailing@${d}`);
    const local = report.findings.find((f) => f.rule === 'upn-topleveldomain');
    expect(local?.suggestion).toMatch(new RegExp(`@${ad().manifest.upnSuffixes.routable.replace('.', '\\.')}$`));
    const blank = report.findings.find((f) => f.rule === 'upn-blank');
    expect(blank?.suggestion).toMatch(new RegExp(`@${d.replace(/\./g, '\\.')}$`));
  });

  it('with a tenant: per suffix, who keeps the UPN and who falls back to the initial domain (CLI, exit 1 with findings)', async () => {
    const t = await cloud.createTenant('prepcheck');
    await cloud.svc.domains.add(cliActor(t.tenant.id), ad().manifest.upnSuffixes.routable);
    await cloud.svc.domains.verify(cliActor(t.tenant.id), ad().manifest.upnSuffixes.routable, { force: true });
    const { clientId, clientSecret } = await t.credentials('read');
    const secretFile = join(work, 'secret');
    writeFileSync(secretFile, clientSecret, { mode: 0o600 });

    const tenant = await fetchTenantDomains({ cloudUrl: cloud.url, tenant: 'prepcheck', clientId, clientSecret });
    expect(tenant.verified.has(ad().manifest.upnSuffixes.routable)).toBe(true);
    const r = await runCheck(conn, { tenant });
    const row = (s: string) => r.suffixes.find((x) => x.suffix === s)!;
    const routable = row(ad().manifest.upnSuffixes.routable);
    expect(routable.verified).toBe(true);
    expect(routable.fallback).toBe(0);
    expect(routable.keep).toBe(routable.users);
    const local = row(ad().manifest.upnSuffixes.nonRoutable);
    expect(local).toMatchObject({ verified: false, keep: 0, fallback: local.users });
    expect(local.examples[0]?.cloud).toMatch(new RegExp(`@${t.tenant.initial_domain.replace(/\./g, '\\.')}$`));
    const domain = row(ad().manifest.upnSuffixes.domain);
    expect(domain.fallback).toBe(domain.users);

    const out = await new Promise<{ code: number | null; stdout: string }>((res) => {
      const p = spawn(process.execPath, ['bin/nimbus.js', 'ad', 'check', '--json', '--tenant', 'prepcheck', '--cloud-url', cloud.url, '--client-id', clientId, '--client-secret-file', secretFile], {
        env: { ...process.env, NIMBUS_AD_URL: ad().url, NIMBUS_AD_BIND_DN: ad().bindDN, NIMBUS_AD_PASSWORD: ad().password },
      });
      let stdout = '';
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.on('exit', (code) => res({ code, stdout }));
    });
    expect(out.code).toBe(1);
    const json = JSON.parse(out.stdout) as CheckReport;
    expect(json.findings.length).toBe(report.findings.length);
    expect(json.tenant?.initialDomain).toBe(t.tenant.initial_domain);
    expect(out.stdout).not.toContain(clientSecret);
  });

  it('exit 0 on a clean scope and 2 when it cannot run', async () => {
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; stderr: string }>((res) => {
        const p = spawn(process.execPath, ['bin/nimbus.js', 'ad', 'check', ...args], { env: { ...process.env, ...env } });
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('exit', (code) => res({ code, stderr }));
      });
    const env = { NIMBUS_AD_URL: ad().url, NIMBUS_AD_BIND_DN: ad().bindDN, NIMBUS_AD_PASSWORD: ad().password };
    const [clean, wrong] = await Promise.all([
      run(['--base', `OU=Service Accounts,${ad().manifest.rootOU}`], env),
      run([], { ...env, NIMBUS_AD_PASSWORD: 'nope' }),
    ]);
    expect(clean.code).toBe(0);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(ad().bindDN);
  });
});
