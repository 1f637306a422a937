// The administrator's path through the portal in a real headless Chromium (Debian's, driven by
// playwright-core): sign in, add and verify a domain against a DNS server on loopback, activate
// directory sync through the confirmation dialog, see "never run", ask for a sync and watch the
// agent (the real scheduler, exporting in-process) run it without reloading the page, then see the
// last sync time, the synced users and the sample directory's duplicate-UPN conflict with both
// objects named. Screenshots of every page go to docs/screenshots/ (shown in the README).
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTxtLookup } from '../../src/cloud/dns.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import type { TenantTable } from '../../src/cloud/store/schema.ts';
import { SAMPLE_LDIF } from '../../src/demo/embedded.ts';
import type { Scheduler } from '../../src/sync/scheduler/scheduler.ts';
import { startCloud, type TestCloud } from '../helpers/cloud.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { ADMIN_PASSWORD, createAdmin, gatedConnector, launchChromium, ldifConfig, startAgent } from './helpers.ts';

const SHOTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');

let cloud: TestCloud;
let dns: TestDnsServer;
let browser: Browser;
let page: Page;
let tenant: TenantTable;
let admin: { upn: string };
let agent: Scheduler | undefined;

// From the left edge: focusing a control far right may have scrolled the page sideways.
const shot = async (name: string) => {
  await page.evaluate('window.scrollTo(0, window.scrollY); document.querySelector("main")?.scrollTo(0, 0)');
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
};

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dns = await startDnsServer();
  cloud = await startCloud({ lookupTxt: createTxtLookup([dns.address], 2000), clock: { now: () => new Date() } });
  tenant = (await cloud.createTenant('contoso')).tenant;
  admin = await createAdmin(cloud, tenant);
  // A cloud user deleted before the walk, for the Deleted users tab.
  const gone = await cloud.svc.users.create(cliActor(tenant.id), {
    accountEnabled: true,
    displayName: 'Dana Departed',
    mailNickname: 'dana',
    userPrincipalName: `dana@${tenant.initial_domain}`,
    passwordProfile: { password: ADMIN_PASSWORD, forceChangePasswordNextSignIn: false },
  });
  await cloud.svc.directory.remove(cliActor(tenant.id), 'user', gone.id as string);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
});

afterAll(async () => {
  agent?.stop('test over');
  await agent?.done;
  await browser?.close();
  await cloud?.close();
  await dns?.close();
});

describe('the administrator’s path', () => {
  it('signs in with the keyboard', async () => {
    await page.goto(`${cloud.url}/`);
    await expect.poll(() => page.url()).toContain('/portal/sign-in');
    await shot('01-sign-in');
    // The sign-in name field has focus; type, Tab to the password, Enter submits.
    await page.keyboard.type(admin.upn);
    await page.keyboard.press('Tab');
    await page.keyboard.type(ADMIN_PASSWORD);
    await page.keyboard.press('Enter');
    await page.waitForURL(`${cloud.url}/portal/`);
    await expect.poll(() => page.locator('main').innerText()).toContain('contoso.onnimbus.net');
    await shot('02-directories');
  });

  it('adds contoso.com, publishes its TXT record and verifies it', async () => {
    await page.getByRole('link', { name: 'contoso' }).click();
    await page.getByRole('link', { name: 'Domains' }).click();
    await page.getByLabel('Domain name').fill('contoso.com');
    await page.getByRole('button', { name: 'Add domain' }).click();
    await expect.poll(() => page.locator('.flash').innerText()).toContain('Added contoso.com');
    const txt = await page.locator('.txt-value').innerText();
    expect(txt).toMatch(/^nimbus-verification=[0-9a-f]{24}$/);
    // Verifying before the record exists fails with the service's message.
    await page.locator('tr[data-domain="contoso.com"]').getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.locator('.flash.error').innerText()).toContain("Domain verification failed for 'contoso.com'");
    await shot('03-domains-unverified');
    dns.publish('contoso.com', txt);
    await page.locator('tr[data-domain="contoso.com"]').getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.locator('.flash').innerText()).toContain('Domain contoso.com is verified.');
    expect(await page.locator('tr[data-domain="contoso.com"]').innerText()).toContain('Verified');
    expect(dns.queries).toContain('contoso.com');
    await shot('04-domains');
  });

  it('activates directory sync through the confirmation dialog and sees "never run"', async () => {
    await page.getByRole('link', { name: 'Directory Integration' }).click();
    await expect.poll(() => page.locator('#sync-status').innerText()).toBe('Directory sync has not been activated');
    await page.getByRole('radio', { name: 'Activated', exact: true }).check();
    await page.getByRole('button', { name: 'Save' }).click();
    const dialog = page.locator('#confirm-dialog');
    await expect.poll(() => dialog.isVisible()).toBe(true);
    expect(await dialog.innerText()).toContain('cloud users and groups with the same names');
    expect(await dialog.innerText()).toContain('may be overwritten');
    await shot('05-activation-dialog');
    // Keyboard: Cancel has focus; Tab to Confirm and press Enter.
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('confirm-cancel');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement && document.activeElement.id')).toBe('confirm-ok');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('.flash').innerText()).toContain('Directory sync is activated');
    expect(await page.locator('#sync-status').innerText()).toBe('Synchronization has never run');
    expect((await cloud.svc.organization.status(tenant.id)).onPremisesSyncEnabled).toBe(true);
    await shot('06-sync-never-run');
  });

  it('asks for a sync and watches the agent run it, without reloading the page', async () => {
    await page.getByRole('button', { name: 'Sync now' }).click();
    await expect.poll(() => page.locator('.flash').innerText()).toContain('A sync run was requested');
    expect(await page.locator('#sync-requests').innerText()).toContain('waiting for the agent');
    // Mark the page: a reload would lose this.
    await page.evaluate("document.body.setAttribute('data-not-reloaded', 'yes')");
    // The agent: the real scheduler over the bundled sample directory, exporting in-process. Its
    // import waits at a gate so the page can show the run in progress.
    let gate: ReturnType<typeof gatedConnector> | undefined;
    agent = await startAgent(cloud, ldifConfig(tenant.name, SAMPLE_LDIF), {
      wrapConnector: (c) => (gate = gatedConnector(c)).connector,
    });
    await expect.poll(() => gate !== undefined, { timeout: 15_000 }).toBe(true);
    await gate!.entered;
    await expect.poll(() => page.locator('#sync-running').innerText(), { timeout: 15_000 }).toContain('Sync is running');
    await shot('07-sync-running');
    gate!.open();
    await expect.poll(() => page.locator('#sync-status').innerText(), { timeout: 30_000 }).toMatch(/^Last synchronization: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    await expect.poll(() => page.locator('#sync-running').innerText(), { timeout: 10_000 }).toBe('No sync is running.');
    expect(await page.getAttribute('body', 'data-not-reloaded')).toBe('yes');
    const org = await cloud.svc.organization.status(tenant.id);
    expect(org.onPremisesLastSyncDateTime).not.toBeNull();
    expect(Number(await page.locator('#count-synced-users').innerText())).toBeGreaterThan(100);
    const runs = await page.locator('#runs tbody tr').first().innerText();
    expect(runs).toMatch(/Completed with errors|Success/);
    // The request the page made was picked up and completed by the agent.
    const req = await cloud.svc.db.selectFrom('sync_requests').selectAll().where('tenant_id', '=', tenant.id).execute();
    expect(req.map((r) => [r.kind, r.status])).toEqual([['sync-now', 'done']]);
  }, 90_000);

  it('names both objects of the sample’s duplicate UPN', async () => {
    // Barbara Perez and Richard Nguyen both claim barbara.perez@contoso.com on-premises.
    // Other rows name the same address (the mail and proxy addresses conflict too).
    const row = page.locator('#sync-errors tbody tr').filter({ hasText: 'UserPrincipalName' }).filter({ hasText: 'barbara.perez@contoso.com' });
    await expect.poll(() => row.count()).toBe(1);
    const cells = await row.locator('td').allInnerTexts();
    expect(cells[1]).toBe('PropertyConflict');
    expect(cells[2]).toBe('UserPrincipalName');
    expect(cells[3]).toBe('barbara.perez@contoso.com');
    // The object (first cell) and the conflicting object (fifth) are the two people.
    expect([cells[0]!.split(' (')[0], cells[4]!.split(' (')[0]].sort()).toEqual(['Barbara Perez', 'Richard Nguyen']);
    await row.scrollIntoViewIfNeeded();
    await shot('08-sync-status');
  });

  it('shows synced users marked as synced, filters them, and keeps on-premises attributes read-only', async () => {
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByLabel('Source').selectOption('synced');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.url()).toContain('source=synced');
    const rows = page.locator('#users tbody tr');
    expect(await rows.count()).toBe(25);
    for (const t of await rows.allInnerTexts()) expect(t).toContain('Synced from on-premises');
    await shot('09-users');
    await page.getByRole('link', { name: 'Next page' }).click();
    await expect.poll(() => page.url()).toContain('page=');
    expect(await rows.count()).toBe(25);

    await page.getByLabel('Name or user principal name starts with').fill('Barbara');
    await page.getByLabel('Source').selectOption('all');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('link', { name: 'Barbara Perez' }).first().click();
    expect(await page.locator('#synced-note').innerText()).toContain('read-only');
    expect(await page.getByLabel(/^Display name/).getAttribute('readonly')).not.toBeNull();
    expect(await page.getByLabel(/^Job title/).getAttribute('readonly')).not.toBeNull();
    expect(await page.getByLabel(/^Usage location/).getAttribute('readonly')).toBeNull();
    await shot('10-user-synced');

    // The cloud-only administrator is shown as such.
    await page.getByRole('link', { name: '← Users' }).click();
    await page.getByLabel('Source').selectOption('cloud');
    await page.getByRole('button', { name: 'Filter' }).click();
    expect(await page.locator('#users tbody').innerText()).toContain(admin.upn);
    expect(await page.locator('#users tbody').innerText()).not.toContain('Synced from on-premises');
  });

  it('shows groups and their members', async () => {
    await page.getByRole('link', { name: 'Groups' }).click();
    const groups = page.locator('#groups tbody tr');
    expect(await groups.count()).toBeGreaterThan(0);
    await shot('11-groups');
    // Open the first synced group that has members.
    const names = await page.locator('#groups tbody tr td:first-child a').allInnerTexts();
    let found = false;
    for (const name of names.slice(0, 10)) {
      await page.getByRole('link', { name, exact: true }).first().click();
      if ((await page.locator('#members tbody tr').count()) > 0) {
        found = true;
        break;
      }
      await page.goBack();
    }
    expect(found).toBe(true);
    await shot('12-group-members');
  });

  it('restores a deleted user', async () => {
    await page.getByRole('link', { name: 'Deleted users' }).click();
    const row = page.locator('#deleted tbody tr', { hasText: 'Dana Departed' });
    expect(await row.count()).toBe(1);
    await shot('13-deleted-users');
    await row.getByRole('button', { name: 'Restore' }).click();
    await expect.poll(() => page.locator('.flash').innerText()).toContain('Restored Dana Departed');
    expect(await page.locator('#deleted tbody tr', { hasText: 'Dana Departed' }).count()).toBe(0);
  });

  it('shows the audit log of what the administrator did', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const text = await page.locator('#audit').innerText();
    for (const activity of ['Add unverified domain', 'Verify domain', 'Set DirSyncEnabled flag', 'Request directory synchronization run', 'Restore user']) expect(text).toContain(activity);
    expect(text).toContain(admin.upn);
    await shot('14-audit-log');
  });
});
