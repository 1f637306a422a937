// `nimbus sync explain` against a real Samba AD DC (the generator's seeded fixture) synced over
// HTTP into a real cloud directory: the right reason for an in-scope, an out-of-scope (OU
// exclusion and a built-in exclusion), a soft-matched and a conflicting object, as the real
// CLI prints it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { Manifest, ManifestEntry } from '../../scripts/generator/manifest.ts';
import type { ExplainResult } from '../../src/cli/sync-inspect.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { openSyncAgent } from '../../src/sync/agent.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { useSamba } from '../helpers/samba.ts';
import { tempDir } from '../sync/helpers.ts';
import { runNimbus } from '../helpers/nimbus-cli.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ad = useSamba();
let cloud: TestCloud;
let t: TestTenant;
let file: string;
let config: SyncConfig;
let manifest: Manifest;
let serviceOU: string;
let softTarget: ManifestEntry;
let softCloudId: string;

const nimbus = (args: string[]) => runNimbus(args);

async function explain(id: string): Promise<ExplainResult> {
  const r = await nimbus(['sync', 'explain', id, '--config', file, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ExplainResult;
}

const edge = (c: keyof Manifest['edgeCases']) => manifest.edgeCases[c];
/** An ordinary user: no edge case beyond its UPN suffix or having a manager. */
const plain = (e: ManifestEntry) => Object.entries(manifest.edgeCases).filter(([, l]) => l.some((x) => x.key === e.key)).every(([k]) => ['upn-routable-suffix', 'upn-domain-suffix', 'manager'].includes(k));
const inServiceOU = (e: ManifestEntry) => e.dn.toLowerCase().endsWith(serviceOU.toLowerCase());

beforeAll(async () => {
  manifest = ad().manifest;
  serviceOU = `OU=Service Accounts,${manifest.rootOU}`;
  cloud = await startCloud();
  t = await cloud.createTenant('contoso');
  await cloud.svc.domains.add(cliActor(t.tenant.id), manifest.upnSuffixes.routable);
  await cloud.svc.domains.verify(cliActor(t.tenant.id), manifest.upnSuffixes.routable, { force: true });
  await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
  // A cloud-only user with the UPN of an on-premises user: the first sync soft-matches it.
  softTarget = edge('upn-routable-suffix').filter((e) => plain(e) && !inServiceOU(e))[0]!;
  const created = await cloud.graph(await t.token('readwrite'), 'users', { method: 'POST', body: newUser(t.tenant, 'softy', { userPrincipalName: softTarget.userPrincipalName }) });
  expect(created.status).toBe(201);
  softCloudId = created.body.id;

  const dir = tempDir('nimbus-sync-explain-');
  const creds = await t.credentials('sync');
  writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'ad.pw'), `${ad().password}\n`, { mode: 0o600 });
  const doc = {
    source: { type: 'ad', url: ad().url, bindDn: ad().bindDN, passwordFile: './ad.pw', baseDn: ad().baseDN, exclude: [serviceOU] },
    target: { type: 'nimbus', url: cloud.url, tenant: t.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret' },
    sync: { deletionThreshold: 1000, dataDir: './agent' },
  };
  file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify(doc));
  config = loadSyncConfig({ file, env: {} });
  const agent = await openSyncAgent(config);
  try {
    const r = await agent.run();
    expect(r.counts.adds).toBeGreaterThan(1000);
  } finally {
    await agent.close();
  }
});
afterAll(async () => cloud?.close());

describe('nimbus sync explain (Samba AD)', () => {
  it('an in-scope user: the source entry, why it is in scope, its flows, a new cloud object and that object now', async () => {
    const e = edge('manager').filter((x) => plain(x) && x.key !== softTarget.key && !inServiceOU(x))[0]!;
    const r = await explain(e.sAMAccountName);
    expect(r.object).toMatchObject({ anchor: e.immutableId, type: 'user', matchedOn: 'sAMAccountName', inSource: true });
    expect(r.object.dn.toLowerCase()).toBe(e.dn.toLowerCase());
    expect(r.scope.inScope).toBe(true);
    expect(r.scope.reason).toContain(`under ${ad().baseDN.toLowerCase()}`);
    expect(r.source?.sAMAccountName).toEqual([e.sAMAccountName]);
    const flow = (a: string) => r.flows.find((f) => f.attribute === a);
    expect(flow('userPrincipalName')).toMatchObject({ from: expect.stringContaining('userPrincipalName'), value: e.userPrincipalName });
    expect(flow('onPremisesSamAccountName')).toMatchObject({ from: 'sAMAccountName', value: e.sAMAccountName });
    expect(flow('manager')?.value).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(r.match.decision).toBe('new');
    expect(r.export.state).toBe('exported');
    expect(r.cloud.fetched).toBe(true);
    expect(r.cloud.object).toMatchObject({ id: r.export.cloudId, onPremisesImmutableId: e.immutableId, onPremisesSyncEnabled: true });
  });

  it('out of scope: under an excluded OU, and a built-in exclusion (AAD_*/MSOL_* accounts); never in the cloud', async () => {
    const svc = edge('upn-domain-suffix').find((x) => x.sAMAccountName === 'svc-nimbus-sync')!;
    const r = await explain(svc.dn);
    expect(r.object).toMatchObject({ anchor: svc.immutableId, matchedOn: 'DN' });
    expect(r.scope).toEqual({ inScope: false, reason: `under the excluded ${serviceOU.toLowerCase()} (source.exclude)` });
    expect(r.source).toBeNull();
    expect(r.flows).toEqual([]);
    expect(r.export).toMatchObject({ state: 'not-exported', cloudId: null });
    expect(r.cloud.object).toBeNull();
    const msol = edge('sync-service-account-name').find((x) => x.sAMAccountName.startsWith('MSOL_'))!;
    const m = await explain(msol.immutableId);
    expect(m.scope.inScope).toBe(false);
    expect(m.scope.reason).toMatch(/sync service account MSOL_\w+ \(AAD_\*\/MSOL_\* accounts are never synced\)/);
    // Human form: says so plainly.
    const human = await nimbus(['sync', 'explain', msol.dn, '--config', file]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/Scope: OUT OF SCOPE: sync service account MSOL_/);
    expect(human.stdout).toContain('Cloud object: the object has no cloud counterpart yet');
  });

  it('a soft-matched user: the match decision names the attribute, and the cloud object is the pre-existing one', async () => {
    const r = await explain(softTarget.userPrincipalName!);
    expect(r.object.anchor).toBe(softTarget.immutableId);
    expect(r.match.decision).toBe('soft-upn');
    expect(r.match.description).toMatch(/^soft match on userPrincipalName/);
    expect(r.export.cloudId).toBe(softCloudId);
    expect(r.cloud.object).toMatchObject({ id: softCloudId, onPremisesImmutableId: softTarget.immutableId, userPrincipalName: softTarget.userPrincipalName });
  });

  it('a conflicting user: the provisioning error names the attribute, the value and the other object, since when', async () => {
    // One holds an address as its UPN, the other as a proxy address; whichever reached the
    // cloud second carries the conflict.
    const pair = edge('upn-matches-other-proxy-address');
    expect(pair.length).toBeGreaterThanOrEqual(2);
    const holder = pair.find((p) => p.userPrincipalName && pair.some((q) => q.key !== p.key && q.proxyAddresses?.some((x) => x.toLowerCase() === `smtp:${p.userPrincipalName!.toLowerCase()}`)))!;
    const partner = pair.find((q) => q.key !== holder.key && q.proxyAddresses?.some((x) => x.toLowerCase() === `smtp:${holder.userPrincipalName!.toLowerCase()}`))!;
    const [a, b] = [await explain(holder.immutableId), await explain(partner.immutableId)];
    const conflicted = [a, b].find((x) => x.export.provisioningErrors.length > 0)!;
    expect(conflicted, 'one of the pair carries a provisioning error').toBeDefined();
    const other = conflicted === a ? partner : holder;
    const pe = conflicted.export.provisioningErrors[0]!;
    expect(pe.category).toBe('PropertyConflict');
    expect(pe.value!.toLowerCase()).toContain(holder.userPrincipalName!.toLowerCase());
    expect(pe.attribute).toMatch(/UserPrincipalName|ProxyAddresses/i);
    expect(pe.conflictingObject).toMatchObject({ anchor: other.immutableId });
    expect(pe.conflictingObject!.dn!.toLowerCase()).toBe(other.dn.toLowerCase());
    expect(pe.since).toBeTruthy();
    expect(conflicted.cloud.object?.onPremisesProvisioningErrors).toEqual([expect.objectContaining({ value: pe.value, conflictingObjectId: pe.conflictingObject!.id })]);
    const human = await nimbus(['sync', 'explain', conflicted.object.anchor, '--config', file]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`provisioning error \\(PropertyConflict\\): \\w+ '[^']+' conflicts with .+\\(${other.dn.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\), since `, 'i'));
    // `sync errors` lists the same conflict.
    const errors = await nimbus(['sync', 'errors', '--config', file, '--json']);
    expect(errors.code, errors.stderr).toBe(0);
    expect(JSON.parse(errors.stdout)).toContainEqual(expect.objectContaining({ anchor: conflicted.object.anchor, kind: 'provisioning', value: pe.value }));
  });

  it('an unknown object exits 2 and says what explain can look up', async () => {
    const r = await nimbus(['sync', 'explain', 'nobody-by-this-name', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("No object 'nobody-by-this-name'");
  });
});
