// The Directory Integration tab with real agent runs over the sample directory (in-process
// exporter, no browser): a run stopped by the deletion threshold lists the deletes and "Allow
// these deletes" asks the agent, whose scheduler then makes them; a staging-mode run shows the
// exports it left pending.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/cloud/services/context.ts';
import { SAMPLE_LDIF } from '../../src/demo/embedded.ts';
import { startCloud, type TestCloud } from '../helpers/cloud.ts';
import { syncTenant, tempDir } from '../sync/helpers.ts';
import { createAdmin, ldifConfig, openAgent, PortalClient, startAgent, textOf, ADMIN_PASSWORD } from './helpers.ts';

let cloud: TestCloud;

beforeAll(async () => {
  cloud = await startCloud({ clock: { now: () => new Date() } });
});

afterAll(async () => {
  await cloud?.close();
});

/** The sample without its first `n` user entries, and the DNs left out. */
const runsStatus = (r: { runs: { status: string }[] }) => r.runs[0]!.status;

function withoutUsers(n: number): { text: string; removed: string[] } {
  const records = readFileSync(SAMPLE_LDIF, 'utf8').split(/\n{2,}/);
  const removed: string[] = [];
  const kept = records.filter((r) => {
    if (removed.length < n && /^objectClass: user$/m.test(r) && !/^objectClass: computer$/m.test(r) && /^userPrincipalName/m.test(r)) {
      removed.push(/^dn: (.*)$/m.exec(r)![1]!);
      return false;
    }
    return true;
  });
  return { text: kept.join('\n\n'), removed };
}

describe('a run stopped by the deletion threshold', () => {
  it('lists the deletes, and "Allow these deletes" lets the agent make them', async () => {
    const t = await syncTenant(cloud, 'threshold');
    await createAdmin(cloud, t.tenant);
    const dir = tempDir();
    const ldif = join(dir, 'corp.ldif');
    writeFileSync(ldif, readFileSync(SAMPLE_LDIF));
    const config = ldifConfig(t.tenant.name, ldif, { deletionThreshold: 5, dataDir: join(dir, 'agent') });
    const agent = await openAgent(cloud, config);
    expect((await agent.run()).status).not.toBe('failed');
    const { text, removed } = withoutUsers(8);
    writeFileSync(ldif, text);
    const stopped = await agent.run();
    expect(stopped.status).toBe('stopped-deletion-threshold-exceeded');
    await agent.close();

    const c = new PortalClient(cloud.url);
    expect((await c.signIn(`admin@${t.tenant.initial_domain}`, ADMIN_PASSWORD)).status).toBe(303);
    const page = await c.get('/portal/t/threshold/sync');
    const section = textOf(/<section class="card warn" id="deletion-threshold"[\s\S]*?<\/section>/.exec(page.text)?.[0] ?? '');
    expect(section).toContain('would delete 8 objects');
    for (const dn of removed) expect(section).toContain(dn);
    expect(page.text).toContain('id="allow-deletes"');

    const r = await c.post('/portal/t/threshold/sync/requests', { kind: 'allow-deletes' });
    expect(r.status).toBe(303);
    const after = textOf((await c.get('/portal/t/threshold/sync')).text);
    expect(after).toContain('A run that makes these deletes was requested');
    expect(after).toContain('Allow the deletes, requested by admin@threshold.onnimbus.net');
    expect(after).toContain('waiting for the agent');

    // The agent's scheduler picks the request up and runs once with the threshold lifted.
    const done = new Promise<void>((resolve) => {
      const s = startAgent(cloud, config, {
        onCycle: (cycle) => {
          if (cycle.allowDeletes) void s.then((x) => (x.stop('done'), x.done)).then(() => resolve());
        },
      });
    });
    await done;
    const live = await c.get('/portal/t/threshold/sync/live');
    const body = JSON.parse(live.text) as { html: string };
    expect(body.html).not.toContain('id="deletion-threshold"');
    expect(textOf(body.html)).not.toContain('waiting for the agent');
    const reqs = await cloud.svc.db.selectFrom('sync_requests').selectAll().where('tenant_id', '=', t.tenant.id).execute();
    expect(reqs.map((x) => [x.kind, x.status, x.result])).toEqual([['allow-deletes', 'done', runsStatus(await cloud.svc.sync.runs(t.tenant.id, 1))]]);
    const runs = await cloud.svc.sync.runs(t.tenant.id, 1);
    expect(runs.runs[0]!.status).toMatch(/success|completed-with-errors/);
    expect(runs.runs[0]!.counts.deletes).toBe(8);
    const deleted = textOf((await c.get('/portal/t/threshold/deleted')).text);
    expect(deleted).toMatch(/Synced from on-premises/);
  }, 60_000);
});

describe('staging mode', () => {
  it('shows the pending exports of a staging run and exports nothing', async () => {
    // Another tenant cannot verify contoso.com again: the initial domain is enough here.
    const t = await cloud.createTenant('staged');
    await cloud.svc.organization.setDirSync(cliActor(t.tenant.id), true);
    await createAdmin(cloud, t.tenant);
    const agent = await openAgent(cloud, ldifConfig(t.tenant.name, SAMPLE_LDIF, { staging: true }));
    const r = await agent.run();
    await agent.close();
    expect(r.status).toBe('staged');
    const c = new PortalClient(cloud.url);
    await c.signIn(`admin@${t.tenant.initial_domain}`, ADMIN_PASSWORD);
    const page = textOf((await c.get('/portal/t/staged/sync')).text);
    expect(page).toContain('Pending exports (staging mode)');
    expect(page).toMatch(/[1-9]\d* to add, 0 to update, 0 to delete/);
    expect(page).toContain('Synchronization has never run');
    expect((await cloud.svc.organization.status(t.tenant.id)).onPremisesLastSyncDateTime).toBeNull();
  }, 60_000);
});
