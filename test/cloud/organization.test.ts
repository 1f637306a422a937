// The organization resource and the directory sync switch (null -> true -> false, synced
// objects converted to cloud-managed ones, a 72 h re-activation block on an injected clock),
// and the audit log that records administrative changes with who, what, when and result.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOUR_MS, ManualClock } from '../../src/shared/clock.ts';
import { createTxtLookup } from '../../src/cloud/dns.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { newUser, startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

const clock = new ManualClock('2026-05-01T08:00:00.000Z');
let dns: TestDnsServer;
let cloud: TestCloud;
let a: TestTenant;
let b: TestTenant;
let rw: string;
let read: string;
let sync: string;
let orgId: string;

async function refreshTokens() {
  rw = await a.token('readwrite');
  read = await a.token('read');
  sync = await a.token('sync');
}

beforeAll(async () => {
  dns = await startDnsServer();
  cloud = await startCloud({ clock, lookupTxt: createTxtLookup([dns.address], 2000) });
  a = await cloud.createTenant('org-a');
  b = await cloud.createTenant('org-b');
  await refreshTokens();
  orgId = a.tenant.id;
});

afterAll(async () => {
  await cloud?.close();
  await dns?.close();
});

const org = async (token = rw) => {
  const r = await cloud.graph(token, 'organization');
  expect(r.status).toBe(200);
  expect(r.body.value).toHaveLength(1);
  return r.body.value[0];
};
const setSync = (value: unknown, token = rw) => cloud.graph(token, `organization/${orgId}`, { method: 'PATCH', body: { onPremisesSyncEnabled: value } });

async function audits(token = rw): Promise<any[]> {
  const out: any[] = [];
  let link: string | undefined = '/v1.0/auditLogs/directoryAudits?$top=50';
  while (link) {
    const r = await cloud.graph(token, link.replace(/^https?:\/\/[^/]+/, ''));
    expect(r.status).toBe(200);
    out.push(...(r.body.value as any[]));
    link = r.body['@odata.nextLink'] as string | undefined;
  }
  return out;
}

const syncedUser = (nick: string) => ({
  accountEnabled: true,
  displayName: `Synced ${nick}`,
  mailNickname: nick,
  userPrincipalName: `${nick}@${a.tenant.initial_domain}`,
  onPremisesImmutableId: Buffer.from(`guid-${nick}`).toString('base64'),
  onPremisesSamAccountName: nick,
  onPremisesDistinguishedName: `CN=${nick},OU=Users,DC=corp,DC=example`,
  onPremisesUserPrincipalName: `${nick}@corp.example`,
  onPremisesDomainName: 'corp.example',
  onPremisesSecurityIdentifier: `S-1-5-21-1-2-3-${nick.length + 1000}`,
});

describe('organization', () => {
  it('starts with directory sync never activated and never run', async () => {
    const o = await org(read);
    expect(o).toMatchObject({ id: orgId, onPremisesSyncEnabled: null, onPremisesLastSyncDateTime: null });
    expect(o.verifiedDomains).toEqual([expect.objectContaining({ name: a.tenant.initial_domain, isInitial: true, isDefault: true })]);
    const byId = await cloud.graph(read, `organization/${orgId}`);
    expect(byId.body.id).toBe(orgId);
    // Another tenant's organization is not reachable.
    expect((await cloud.graph(read, `organization/${b.tenant.id}`)).status).toBe(400);
  });

  it('refuses deactivating when never activated, and bad bodies', async () => {
    const never = await setSync(false);
    expect(never.status).toBe(400);
    expect(never.body.error.message).toContain('never been activated');
    for (const body of [{ onPremisesSyncEnabled: 'true' }, { onPremisesSyncEnabled: null }, {}, { displayName: 'x', onPremisesSyncEnabled: true }]) {
      const r = await cloud.graph(rw, `organization/${orgId}`, { method: 'PATCH', body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.message).toMatch(/onPremisesSyncEnabled|displayName/);
    }
    expect((await cloud.graph(rw, `organization/${b.tenant.id}`, { method: 'PATCH', body: { onPremisesSyncEnabled: true } })).status).toBe(400);
    expect((await org()).onPremisesSyncEnabled).toBeNull();
  });

  it('refuses the switch to the read and sync roles', async () => {
    const r = await setSync(true, read);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('Authorization_RequestDenied');
    expect((await setSync(true, sync)).status).toBe(403);
    expect((await org()).onPremisesSyncEnabled).toBeNull();
    // Tenant B is untouched by anything here.
    expect((await org(await b.token('read'))).onPremisesSyncEnabled).toBeNull();
  });

  it('activates with a readwrite PATCH; activating again is harmless', async () => {
    expect((await setSync(true)).status).toBe(204);
    expect((await org()).onPremisesSyncEnabled).toBe(true);
    expect((await org()).onPremisesLastSyncDateTime).toBeNull();
    expect((await setSync(true)).status).toBe(204);
    expect((await org()).onPremisesSyncEnabled).toBe(true);
  });

  it('deactivating converts synced users and groups into cloud-managed objects', async () => {
    const ids: string[] = [];
    for (const nick of ['sync1', 'sync2', 'sync3']) {
      const r = await cloud.graph(sync, 'users', { method: 'POST', body: syncedUser(nick) });
      expect(r.status).toBe(201);
      ids.push(r.body.id as string);
    }
    const grp = await cloud.graph(sync, 'groups', { method: 'POST', body: { displayName: 'Synced group', mailEnabled: false, mailNickname: 'sgrp', securityEnabled: true, onPremisesSecurityIdentifier: 'S-1-5-21-1-2-3-2000', onPremisesSamAccountName: 'sgrp' } });
    expect(grp.status).toBe(201);
    const cloudOnly = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(a.tenant, 'cloudy', { jobTitle: 'Cloud' }) });
    // Before: locked for readwrite apps.
    expect((await cloud.graph(rw, `users/${ids[0]}`, { method: 'PATCH', body: { displayName: 'Mine now' } })).status).toBe(400);

    const off = await setSync(false);
    expect(off.status).toBe(204);
    expect((await org()).onPremisesSyncEnabled).toBe(false);

    const sel = 'onPremisesSyncEnabled,onPremisesDistinguishedName,onPremisesSamAccountName,onPremisesUserPrincipalName,onPremisesDomainName,onPremisesImmutableId,displayName';
    for (const [i, id] of ids.entries()) {
      const u = await cloud.graph(rw, `users/${id}?$select=${sel}`);
      expect(u.body).toMatchObject({
        onPremisesSyncEnabled: false,
        onPremisesDistinguishedName: null,
        onPremisesSamAccountName: null,
        onPremisesUserPrincipalName: null,
        onPremisesDomainName: null,
        displayName: `Synced sync${i + 1}`,
      });
      // The source anchor stays, so a later re-activation can hard-match.
      expect(u.body.onPremisesImmutableId).toBe(Buffer.from(`guid-sync${i + 1}`).toString('base64'));
    }
    const g = await cloud.graph(rw, `groups/${grp.body.id}?$select=onPremisesSyncEnabled,onPremisesSamAccountName`);
    expect(g.body).toMatchObject({ id: grp.body.id, onPremisesSyncEnabled: false, onPremisesSamAccountName: null });
    const c = await cloud.graph(rw, `users/${cloudOnly.body.id}?$select=onPremisesSyncEnabled,jobTitle`);
    expect(c.body).toMatchObject({ onPremisesSyncEnabled: null, jobTitle: 'Cloud' });
    // Filtering agrees.
    const f = await cloud.graph(rw, 'users?$filter=onPremisesSyncEnabled eq false&$select=id');
    expect(f.body.value.map((x: any) => x.id).sort()).toEqual([...ids].sort());
    // Now cloud-managed: a readwrite app may change and delete them.
    expect((await cloud.graph(rw, `users/${ids[0]}`, { method: 'PATCH', body: { displayName: 'Mine now' } })).status).toBe(204);
    expect((await cloud.graph(rw, `groups/${grp.body.id}/members/$ref`, { method: 'POST', body: { '@odata.id': `https://graph.microsoft.com/v1.0/users/${ids[1]}` } })).status).toBe(204);
    expect((await cloud.graph(rw, `users/${ids[2]}`, { method: 'DELETE' })).status).toBe(204);
    // Deactivating again changes nothing.
    expect((await setSync(false)).status).toBe(204);
  });

  it('blocks re-activation for 72 hours, saying until when', async () => {
    const deactivatedAt = clock.now().getTime();
    const until = new Date(deactivatedAt + 72 * HOUR_MS).toISOString();
    expect((await setSync(true)).status).toBe(400);

    clock.set(new Date(deactivatedAt + 71 * HOUR_MS));
    await refreshTokens();
    const early = await setSync(true);
    expect(early.status).toBe(400);
    expect(early.body.error.target).toBe('onPremisesSyncEnabled');
    expect(early.body.error.message).toContain(until);
    expect(early.body.error.message).toContain('72 hours');
    expect((await org()).onPremisesSyncEnabled).toBe(false);
    const status = await cloud.svc.organization.status(orgId);
    expect(status.reactivationBlockedUntil).toBe(until);

    clock.set(new Date(deactivatedAt + 73 * HOUR_MS));
    await refreshTokens();
    expect((await setSync(true)).status).toBe(204);
    expect((await org()).onPremisesSyncEnabled).toBe(true);
    expect((await cloud.svc.organization.status(orgId)).reactivationBlockedUntil).toBeNull();
  });
});

describe('audit log', () => {
  let rwClientId: string;

  beforeAll(async () => {
    rwClientId = (await a.credentials('readwrite')).clientId;
  });

  it('records directory sync toggles with initiatedBy, result and reason', async () => {
    const log = await audits();
    const toggles = log.filter((e) => e.activityDisplayName === 'Set DirSyncEnabled flag');
    // Oldest first: failure (never activated), success (on), success (off), failure x2 (blocked), success (on again).
    const chronological = [...toggles].reverse();
    expect(chronological.map((e) => e.result)).toEqual(['failure', 'success', 'success', 'failure', 'failure', 'success']);
    const [never, on, off, , blocked, onAgain] = chronological;
    expect(never.resultReason).toContain('never been activated');
    expect(on).toMatchObject({ category: 'DirectoryManagement', operationType: 'Update', loggedByService: 'Core Directory' });
    expect(on.initiatedBy.app).toMatchObject({ appId: rwClientId, displayName: 'test-readwrite' });
    expect(on.initiatedBy.user).toBeNull();
    expect(on.targetResources[0]).toMatchObject({ id: orgId, type: 'Company' });
    expect(on.targetResources[0].modifiedProperties).toEqual([{ displayName: 'DirSyncEnabled', oldValue: 'null', newValue: 'true' }]);
    expect(off.resultReason).toContain('4 synced objects converted');
    expect(blocked.resultReason).toContain('can be activated again after');
    expect(onAgain.activityDateTime).toBe(clock.now().toISOString());
    expect(new Date(onAgain.activityDateTime).getTime() - new Date(off.activityDateTime).getTime()).toBe(73 * HOUR_MS);
  });

  it('records domain operations, including a failed verification', async () => {
    expect((await cloud.graph(rw, 'domains', { method: 'POST', body: { id: 'audit.example' } })).status).toBe(201);
    const fail = await cloud.graph(rw, 'domains/audit.example/verify', { method: 'POST' });
    expect(fail.status).toBe(400);
    const text = (await cloud.graph(rw, 'domains/audit.example/verificationDnsRecords')).body.value[0].text as string;
    dns.publish('audit.example', text);
    expect((await cloud.graph(rw, 'domains/audit.example/verify', { method: 'POST' })).status).toBe(200);
    expect((await cloud.graph(rw, 'domains/audit.example', { method: 'PATCH', body: { isDefault: true } })).status).toBe(204);
    expect((await cloud.graph(rw, 'domains/audit.example', { method: 'DELETE' })).status).toBe(400);
    expect((await cloud.graph(rw, `domains/${a.tenant.initial_domain}`, { method: 'PATCH', body: { isDefault: true } })).status).toBe(204);
    expect((await cloud.graph(rw, 'domains/audit.example', { method: 'DELETE' })).status).toBe(204);
    // A forced verification by a local operator.
    await cloud.svc.domains.add(cliActor(orgId), 'forced.example');
    await cloud.svc.domains.verify(cliActor(orgId), 'forced.example', { force: true });

    const log = (await audits()).filter((e) => e.targetResources.some((t: any) => t.type === 'Domain')).reverse();
    const rows = log.map((e) => `${e.activityDisplayName}|${e.targetResources[0].id}|${e.result}`);
    expect(rows).toEqual([
      'Add unverified domain|audit.example|success',
      'Verify domain|audit.example|failure',
      'Verify domain|audit.example|success',
      'Set domain as default|audit.example|success',
      'Remove domain|audit.example|failure',
      `Set domain as default|${a.tenant.initial_domain}|success`,
      'Remove domain|audit.example|success',
      'Add unverified domain|forced.example|success',
      'Verify domain|forced.example|success',
    ]);
    expect(log[1].resultReason).toContain('Domain verification failed');
    expect(log[1].resultReason).toContain(text);
    expect(log[1].initiatedBy.app.appId).toBe(rwClientId);
    expect(log[4].resultReason).toContain('default domain');
    expect(log[8].resultReason).toContain('forced');
    expect(log[8].initiatedBy.app).toBeNull();
    expect(log[8].initiatedBy.user).toMatchObject({ id: 'local-operator' });
  });

  it('records app credential changes', async () => {
    const actor = cliActor(orgId);
    const { app } = await cloud.svc.apps.create(actor, 'audited-app', 'read');
    await cloud.svc.apps.rotate(actor, app.client_id);
    await cloud.svc.apps.remove(actor, app.client_id);
    const log = (await audits()).filter((e) => e.targetResources.some((t: any) => t.id === app.client_id)).reverse();
    expect(log.map((e) => `${e.category}|${e.activityDisplayName}|${e.operationType}|${e.result}`)).toEqual([
      'ApplicationManagement|Add application|Add|success',
      'ApplicationManagement|Update application - Certificates and secrets management|Update|success',
      'ApplicationManagement|Delete application|Delete|success',
    ]);
    expect(log[0].targetResources[0].modifiedProperties).toEqual([{ displayName: 'role', oldValue: null, newValue: 'read' }]);
    // The log never contains the secret itself.
    expect(JSON.stringify(log)).not.toMatch(/nbs_/);
  });

  it('records deletes and restores, including a refused restore', async () => {
    const u = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(a.tenant, 'audited') });
    expect((await cloud.graph(rw, `users/${u.body.id}`, { method: 'DELETE' })).status).toBe(204);
    const taker = await cloud.graph(rw, 'users', { method: 'POST', body: newUser(a.tenant, 'audited2', { userPrincipalName: `audited@${a.tenant.initial_domain}` }) });
    expect(taker.status).toBe(201);
    expect((await cloud.graph(rw, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' })).status).toBe(400);
    expect((await cloud.graph(rw, `users/${taker.body.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await cloud.graph(rw, `directory/deletedItems/${u.body.id}/restore`, { method: 'POST' })).status).toBe(200);
    expect((await cloud.graph(rw, `directory/deletedItems/${taker.body.id}`, { method: 'DELETE' })).status).toBe(204);

    const log = (await audits()).filter((e) => e.targetResources.some((t: any) => t.id === u.body.id || t.id === taker.body.id) && e.operationType !== 'Add').reverse();
    expect(log.map((e) => `${e.activityDisplayName}|${e.targetResources[0].id === u.body.id ? 'u' : 'taker'}|${e.result}`)).toEqual([
      'Delete user|u|success',
      'Restore user|u|failure',
      'Delete user|taker|success',
      'Restore user|u|success',
      'Hard delete user|taker|success',
    ]);
    expect(log[1].resultReason).toContain(taker.body.id);
    expect(log[0].targetResources[0]).toMatchObject({ type: 'User', userPrincipalName: `audited@${a.tenant.initial_domain}` });
    expect(log[0].initiatedBy.app.appId).toBe(rwClientId);
  });

  it('pages newest first, is readable by the read role, and is per tenant', async () => {
    const all = await audits(read);
    const times = all.map((e) => e.activityDateTime as string);
    expect([...times].sort().reverse()).toEqual(times);
    const p1 = await cloud.graph(read, 'auditLogs/directoryAudits?$top=3');
    expect(p1.body.value).toHaveLength(3);
    expect(p1.body.value.map((e: any) => e.id)).toEqual(all.slice(0, 3).map((e) => e.id));
    const p2 = await cloud.graph(read, String(p1.body['@odata.nextLink']).replace(/^https?:\/\/[^/]+/, ''));
    expect(p2.body.value.map((e: any) => e.id)).toEqual(all.slice(3, 6).map((e) => e.id));
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);

    const bLog = await audits(await b.token('read'));
    expect(bLog.some((e) => JSON.stringify(e).includes(orgId))).toBe(false);
    expect(bLog.every((e) => e.activityDisplayName === 'Add application')).toBe(true);

    expect((await cloud.graph(read, 'auditLogs/directoryAudits?$skiptoken=not-a-number')).status).toBe(400);
    expect((await cloud.graph(read, 'auditLogs/directoryAudits?$filter=result eq \'failure\'')).status).toBe(400);
  });
});
