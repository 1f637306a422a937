// The embedded default (`nimbus start`): the demo tenant and the in-process agent syncing
// the bundled sample directory, checked through the Graph API like a user would.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/server.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { openServices, type Services } from '../../src/cloud/services/index.ts';
import { startDemo, type Demo } from '../../src/demo/embedded.ts';
import { ManualClock } from '../../src/shared/clock.ts';

let svc: Services;
let demo: Demo;
let dataDir: string;
let token: string;
let app: Awaited<ReturnType<typeof buildServer>>;

const graph = async (path: string) => {
  const r = await app.inject({ method: 'GET', url: `/v1.0/${path}`, headers: { authorization: `Bearer ${token}`, consistencylevel: 'eventual' } });
  return JSON.parse(r.body);
};

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbus-demo-'));
  svc = await openServices(dataDir, { clock: new ManualClock(new Date()), config: { passwordScryptLogN: 10 } });
  demo = await startDemo(svc, dataDir, 'contoso');
  const { app: reader } = await svc.apps.create(cliActor(demo.tenant.id), 'reader', 'read');
  token = (await svc.tokens.issue(demo.tenant, reader, 'https://graph.microsoft.com', 'http://x')).token;
  app = await buildServer(svc);
}, 60_000);

afterAll(async () => {
  await demo.close();
  await app.close();
  await svc.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('nimbus start (embedded default)', () => {
  it('activates directory sync and shows "never run" before the first sync', async () => {
    const org = (await graph('organization')).value[0];
    expect(org.onPremisesSyncEnabled).toBe(true);
    expect(org.onPremisesLastSyncDateTime).toBeNull();
  });

  it('syncs the bundled sample with its situations', async () => {
    const r = await demo.syncOnce();
    expect(r.status).toBe('success');
    expect(r.counts.adds).toBeGreaterThan(100);
    const org = (await graph('organization')).value[0];
    expect(org.onPremisesLastSyncDateTime).not.toBeNull();

    // The cloud-only user created first was soft-matched: one object, now synced.
    const susan = (await graph(`users?$filter=endswith(displayName,'(cloud)') or onPremisesSyncEnabled eq true&$select=userPrincipalName,onPremisesImmutableId,onPremisesSyncEnabled&$top=999`)).value;
    const contosoUpns = susan.filter((u: any) => u.userPrincipalName.endsWith('@contoso.com'));
    const upns = contosoUpns.map((u: any) => u.userPrincipalName.toLowerCase());
    expect(new Set(upns).size).toBe(upns.length);
    expect(contosoUpns.every((u: any) => u.onPremisesSyncEnabled === true && u.onPremisesImmutableId)).toBe(true);

    // .local and corp.example.com suffixes fall back to the initial domain.
    const fallback = (await graph(`users?$filter=endswith(onPremisesUserPrincipalName,'.local')&$select=userPrincipalName,onPremisesUserPrincipalName`)).value;
    expect(fallback.length).toBeGreaterThan(0);
    for (const u of fallback) expect(u.userPrincipalName).toMatch(/@contoso\.onnimbus\.net$/);

    // Disabled accounts arrive disabled.
    const disabled = await graph(`users/$count?$filter=accountEnabled eq false and onPremisesSyncEnabled eq true`);
    expect(Number(disabled)).toBeGreaterThan(0);
  });

  it('a second cycle with nothing changed exports nothing', async () => {
    const r = await demo.syncOnce();
    expect(r.counts.adds + r.counts.updates + r.counts.deletes).toBe(0);
    expect(r.reportedToCloud).toBe(true);
  });

  it('reports each run to the cloud directory', async () => {
    const runs = (await app.inject({ method: 'GET', url: '/sync/v1/runs', headers: { authorization: `Bearer ${token}` } })).json();
    expect(runs.inProgress).toBe(false);
    expect(runs.runs.length).toBeGreaterThanOrEqual(2);
    expect(runs.runs.every((x: any) => x.status === 'success' && x.endedAt)).toBe(true);
    expect(runs.runs.some((x: any) => x.counts.adds > 100)).toBe(true);
  });
});
