// The portal's pages, rendered on the server with escaped templates (html.ts). Every form
// control has a label; tabs are links with aria-current; the live region of the Directory
// Integration tab is a fragment the page's script re-fetches (assets/portal.js).
import type { TenantTable } from '../cloud/store/schema.ts';
import type { SyncRequest } from '../cloud/sync/sync-control.ts';
import { html, raw, type Html, type Interpolation } from './html.ts';
import type { RunView, SyncErrorRow, SyncOverview, TenantCounts } from './portal-service.ts';
import type { PortalPrincipal } from './sessions.ts';

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

export interface PageContext {
  principal?: PortalPrincipal;
  flash?: Flash | undefined;
  tenant?: TenantTable;
  tab?: Tab;
}

export type Tab = 'users' | 'groups' | 'domains' | 'sync' | 'deleted' | 'audit';
const TABS: { id: Tab; label: string; path: string }[] = [
  { id: 'users', label: 'Users', path: 'users' },
  { id: 'groups', label: 'Groups', path: 'groups' },
  { id: 'domains', label: 'Domains', path: 'domains' },
  { id: 'sync', label: 'Directory Integration', path: 'sync' },
  { id: 'deleted', label: 'Deleted users', path: 'deleted' },
  { id: 'audit', label: 'Audit log', path: 'audit' },
];

export const tenantPath = (t: TenantTable, path = '') => `/portal/t/${encodeURIComponent(t.name)}${path ? `/${path}` : ''}`;

/** A date and time as the page shows it (UTC, to the second), in a <time> element. */
export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">never</span>`;
  const shown = iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/Z$/, ' UTC');
  return html`<time datetime="${iso}">${shown}</time>`;
}

/** A Graph property value as text ('' for null or missing). */
export const str = (v: unknown): string => (v === null || v === undefined ? '' : typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v));

const csrfField = (p: PortalPrincipal | undefined) => (p ? html`<input type="hidden" name="_csrf" value="${p.csrf}">` : '');

/** A POST form with one button (and hidden fields); `confirm` opens the confirmation dialog first. */
export function actionButton(p: PortalPrincipal, action: string, label: string, opts: { fields?: Record<string, string>; confirm?: string; danger?: boolean; id?: string } = {}): Html {
  return html`<form method="post" action="${action}" class="inline"${opts.confirm ? html` data-confirm="${opts.confirm}"` : ''}>${csrfField(p)}${Object.entries(opts.fields ?? {}).map(
    ([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`,
  )}<button type="submit"${opts.id ? html` id="${opts.id}"` : ''} class="${opts.danger ? 'danger' : ''}">${label}</button></form>`;
}

export function layout(ctx: PageContext, title: string, body: Interpolation): Html {
  const p = ctx.principal;
  const t = ctx.tenant;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Nimbus</title>
<link rel="stylesheet" href="/portal/assets/portal.css">
<script src="/portal/assets/portal.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/portal/">Nimbus <span>admin portal</span></a>
  ${p
    ? html`<div class="who"><span>Signed in as <strong>${p.name}</strong>${p.kind === 'operator' ? ' (operator)' : ''}</span>
    <form method="post" action="/portal/sign-out" class="inline">${csrfField(p)}<button type="submit" class="link">Sign out</button></form></div>`
    : ''}
</header>
${t
  ? html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/portal/">Directories</a> › <span>${t.display_name}</span> <span class="muted">(${t.initial_domain})</span></nav>
<nav class="tabs" aria-label="Directory">${TABS.map((x) => html`<a href="${tenantPath(t, x.path)}"${x.id === ctx.tab ? raw(' aria-current="page"') : ''}>${x.label}</a>`)}</nav>`
  : ''}
<main id="main" tabindex="-1">
${ctx.flash ? html`<p class="flash ${ctx.flash.kind}" role="${ctx.flash.kind === 'error' ? 'alert' : 'status'}">${ctx.flash.text}</p>` : ''}
${body}
</main>
<dialog id="confirm-dialog" aria-labelledby="confirm-title">
  <form method="dialog">
    <h2 id="confirm-title">Please confirm</h2>
    <p id="confirm-text"></p>
    <div class="buttons"><button value="cancel" id="confirm-cancel">Cancel</button> <button value="ok" id="confirm-ok" class="primary">Confirm</button></div>
  </form>
</dialog>
</body>
</html>`;
}

// ---- sign-in and directories ---------------------------------------------------------------

export function signInPage(opts: { token: string; next: string; name?: string; error?: string }): Html {
  return layout(
    {},
    'Sign in',
    html`<section class="card narrow">
<h1>Sign in</h1>
<p>Tenant administrators sign in with their user principal name; operators with their operator name.</p>
${opts.error ? html`<p class="flash error" role="alert" id="sign-in-error">${opts.error}</p>` : ''}
<form method="post" action="/portal/sign-in" class="stack">
  <input type="hidden" name="_signin" value="${opts.token}">
  <input type="hidden" name="next" value="${opts.next}">
  <label for="name">Sign-in name</label>
  <input id="name" name="name" type="text" autocomplete="username" required autofocus value="${opts.name ?? ''}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit" class="primary">Sign in</button>
</form>
</section>`,
  );
}

export function directoriesPage(ctx: PageContext, rows: { tenant: TenantTable; counts: TenantCounts; status: string }[]): Html {
  return layout(
    ctx,
    'Directories',
    html`<h1>Directories</h1>
<p>${ctx.principal?.kind === 'operator' ? 'As an operator you see every directory of this Nimbus service.' : 'The directory you administer.'}</p>
<table>
<caption class="sr-only">Directories</caption>
<thead><tr><th scope="col">Directory</th><th scope="col">Initial domain</th><th scope="col">Users</th><th scope="col">Groups</th><th scope="col">Directory sync</th></tr></thead>
<tbody>${rows.map(
      (r) =>
        html`<tr><td><a href="${tenantPath(r.tenant, 'users')}">${r.tenant.display_name}</a></td><td>${r.tenant.initial_domain}</td><td>${r.counts.users} (${r.counts.syncedUsers} synced)</td><td>${r.counts.groups}</td><td>${r.status}</td></tr>`,
    )}</tbody>
</table>`,
  );
}

// ---- users and groups ----------------------------------------------------------------------

export const sourceBadge = (o: Record<string, unknown>): Html =>
  o.onPremisesSyncEnabled === true
    ? html`<span class="badge synced">Synced from on-premises</span>`
    : o.onPremisesSyncEnabled === false
      ? html`<span class="badge">Cloud (was synced)</span>`
      : html`<span class="badge cloud">Cloud</span>`;

export function pager(nextHref: string | undefined, firstHref: string | undefined): Html {
  if (!nextHref && !firstHref) return html``;
  return html`<nav class="pager" aria-label="Pages">${firstHref ? html`<a href="${firstHref}">First page</a>` : ''} ${nextHref ? html`<a href="${nextHref}" rel="next">Next page</a>` : ''}</nav>`;
}

export function usersPage(ctx: PageContext, q: { q: string; source: string }, page: { items: Record<string, unknown>[]; count?: number }, nextHref?: string, firstHref?: string): Html {
  const t = ctx.tenant!;
  return layout(
    ctx,
    `Users · ${t.display_name}`,
    html`<h1>Users</h1>
<form method="get" action="${tenantPath(t, 'users')}" class="filters" role="search">
  <label for="q">Name or user principal name starts with</label>
  <input id="q" name="q" type="search" value="${q.q}">
  <label for="source">Source</label>
  <select id="source" name="source">
    ${[
      ['all', 'All users'],
      ['synced', 'Synced from on-premises'],
      ['cloud', 'Cloud'],
    ].map(([v, l]) => html`<option value="${v}"${q.source === v ? raw(' selected') : ''}>${l}</option>`)}
  </select>
  <button type="submit">Filter</button>
</form>
<p id="user-count">${page.count ?? page.items.length} user${page.count === 1 ? '' : 's'}</p>
<table id="users">
<caption class="sr-only">Users</caption>
<thead><tr><th scope="col">Display name</th><th scope="col">User principal name</th><th scope="col">Source</th><th scope="col">Account</th><th scope="col">Sync errors</th></tr></thead>
<tbody>${page.items.map(
      (u) => html`<tr data-upn="${String(u.userPrincipalName)}"><td><a href="${tenantPath(t, `users/${String(u.id)}`)}">${str(u.displayName)}</a></td><td>${String(u.userPrincipalName)}</td><td>${sourceBadge(u)}</td>
<td>${u.accountEnabled === false ? 'Disabled' : 'Enabled'}</td><td>${(u.onPremisesProvisioningErrors as unknown[] | undefined)?.length ? html`<span class="badge error">${(u.onPremisesProvisioningErrors as unknown[]).length} error(s)</span>` : ''}</td></tr>`,
    )}</tbody>
</table>
${pager(nextHref, firstHref)}`,
  );
}

/** Properties on the user page: label, Graph name, whether a cloud user's value can be edited here. */
const USER_FIELDS: { name: string; label: string; editable?: boolean; onPrem?: boolean }[] = [
  { name: 'displayName', label: 'Display name', editable: true, onPrem: true },
  { name: 'givenName', label: 'First name', editable: true, onPrem: true },
  { name: 'surname', label: 'Last name', editable: true, onPrem: true },
  { name: 'jobTitle', label: 'Job title', editable: true, onPrem: true },
  { name: 'department', label: 'Department', editable: true, onPrem: true },
  { name: 'usageLocation', label: 'Usage location (2 letters)', editable: true },
  { name: 'userPrincipalName', label: 'User principal name', onPrem: true },
  { name: 'mail', label: 'Mail', onPrem: true },
];
const ON_PREM_FIELDS: { name: string; label: string }[] = [
  { name: 'onPremisesImmutableId', label: 'Source anchor (immutable id)' },
  { name: 'onPremisesDistinguishedName', label: 'Distinguished name' },
  { name: 'onPremisesSamAccountName', label: 'sAMAccountName' },
  { name: 'onPremisesUserPrincipalName', label: 'On-premises UPN' },
  { name: 'onPremisesDomainName', label: 'Domain' },
  { name: 'onPremisesSecurityIdentifier', label: 'Security identifier' },
  { name: 'onPremisesLastSyncDateTime', label: 'Last synchronized' },
];

export function userPage(ctx: PageContext, u: Record<string, unknown>, groups: Record<string, unknown>[]): Html {
  const t = ctx.tenant!;
  const synced = u.onPremisesSyncEnabled === true;
  const errors = (u.onPremisesProvisioningErrors as Record<string, unknown>[] | undefined) ?? [];
  return layout(
    ctx,
    `${str(u.displayName)} · Users`,
    html`<p><a href="${tenantPath(t, 'users')}">← Users</a></p>
<h1>${str(u.displayName)} ${sourceBadge(u)}</h1>
${synced ? html`<p class="note" id="synced-note">This user is synchronized from on-premises Active Directory. Its on-premises attributes are read-only here: change them in Active Directory and the next sync brings them over.</p>` : ''}
${errors.length ? html`<section class="card warn"><h2>Provisioning errors</h2><ul>${errors.map((e) => html`<li>${str(e.category)}: ${str(e.propertyCausingError)} '${str(e.value)}'${e.conflictingObjectDisplayName ? html` conflicts with ${str(e.conflictingObjectDisplayName)}` : ''} (since ${when(str(e.occurredDateTime))})</li>`)}</ul></section>` : ''}
<form method="post" action="${tenantPath(t, `users/${str(u.id)}`)}" class="grid">
${csrfField(ctx.principal)}
${USER_FIELDS.map((f) => {
  const readOnly = !f.editable || (synced && f.onPrem);
  return html`<label for="f-${f.name}">${f.label}${readOnly && synced && f.onPrem ? html` <span class="muted">(managed on-premises)</span>` : ''}</label>
<input id="f-${f.name}" name="${f.name}" value="${str(u[f.name])}"${readOnly ? raw(' readonly aria-readonly="true"') : ''}>`;
})}
<label for="f-accountEnabled">Account enabled${synced ? html` <span class="muted">(managed on-premises)</span>` : ''}</label>
<select id="f-accountEnabled" name="accountEnabled"${synced ? raw(' disabled') : ''}><option value="true"${u.accountEnabled !== false ? raw(' selected') : ''}>Enabled</option><option value="false"${u.accountEnabled === false ? raw(' selected') : ''}>Disabled</option></select>
<div class="buttons"><button type="submit" class="primary">Save</button></div>
</form>
${synced
  ? html`<h2>On-premises attributes</h2><dl class="props">${ON_PREM_FIELDS.map((f) => html`<dt>${f.label}</dt><dd>${f.name === 'onPremisesLastSyncDateTime' ? when(str(u[f.name]) || null) : str(u[f.name]) || '—'}</dd>`)}</dl>`
  : ''}
<h2>Member of</h2>
${groups.length ? html`<ul>${groups.map((g) => html`<li><a href="${tenantPath(t, `groups/${str(g.id)}`)}">${str(g.displayName)}</a></li>`)}</ul>` : html`<p class="muted">No groups.</p>`}`,
  );
}

const groupKind = (g: Record<string, unknown>) =>
  (g.groupTypes as string[] | undefined)?.includes('Unified') ? 'Microsoft 365' : g.mailEnabled ? (g.securityEnabled ? 'Mail-enabled security' : 'Distribution') : 'Security';

export function groupsPage(ctx: PageContext, q: { q: string }, page: { items: Record<string, unknown>[]; count?: number }, nextHref?: string, firstHref?: string): Html {
  const t = ctx.tenant!;
  return layout(
    ctx,
    `Groups · ${t.display_name}`,
    html`<h1>Groups</h1>
<form method="get" action="${tenantPath(t, 'groups')}" class="filters" role="search">
  <label for="q">Name starts with</label><input id="q" name="q" type="search" value="${q.q}">
  <button type="submit">Filter</button>
</form>
<p>${page.count ?? page.items.length} group${page.count === 1 ? '' : 's'}</p>
<table id="groups"><caption class="sr-only">Groups</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Mail</th><th scope="col">Source</th></tr></thead>
<tbody>${page.items.map((g) => html`<tr><td><a href="${tenantPath(t, `groups/${String(g.id)}`)}">${str(g.displayName)}</a></td><td>${groupKind(g)}</td><td>${str(g.mail)}</td><td>${sourceBadge(g)}</td></tr>`)}</tbody>
</table>
${pager(nextHref, firstHref)}`,
  );
}

export function groupPage(ctx: PageContext, g: Record<string, unknown>, members: Record<string, unknown>[], nextHref?: string, firstHref?: string): Html {
  const t = ctx.tenant!;
  return layout(
    ctx,
    `${String(g.displayName)} · Groups`,
    html`<p><a href="${tenantPath(t, 'groups')}">← Groups</a></p>
<h1>${String(g.displayName)} ${sourceBadge(g)}</h1>
<dl class="props"><dt>Type</dt><dd>${groupKind(g)}</dd><dt>Mail</dt><dd>${(str(g.mail) || '—')}</dd><dt>Description</dt><dd>${(str(g.description) || '—')}</dd>
${g.onPremisesSyncEnabled === true ? html`<dt>sAMAccountName</dt><dd>${(str(g.onPremisesSamAccountName) || '—')}</dd><dt>Last synchronized</dt><dd>${when(g.onPremisesLastSyncDateTime as string | null)}</dd>` : ''}</dl>
<h2>Members</h2>
<table id="members"><caption class="sr-only">Members</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">User principal name</th><th scope="col">Source</th></tr></thead>
<tbody>${members.map((m) => {
      const isUser = m['@odata.type'] === '#microsoft.graph.user';
      return html`<tr><td><a href="${tenantPath(t, `${isUser ? 'users' : 'groups'}/${String(m.id)}`)}">${str(m.displayName)}</a></td><td>${isUser ? 'User' : 'Group'}</td><td>${str(m.userPrincipalName)}</td><td>${sourceBadge(m)}</td></tr>`;
    })}</tbody></table>
${members.length === 0 ? html`<p class="muted">No members.</p>` : ''}
${pager(nextHref, firstHref)}`,
  );
}

// ---- domains ---------------------------------------------------------------------------------

export interface DomainView {
  name: string;
  isVerified: boolean;
  isDefault: boolean;
  isInitial: boolean;
  txt: string;
}

export function domainsPage(ctx: PageContext, domains: DomainView[]): Html {
  const t = ctx.tenant!;
  const p = ctx.principal!;
  const base = tenantPath(t, 'domains');
  return layout(
    ctx,
    `Domains · ${t.display_name}`,
    html`<h1>Domains</h1>
<form method="post" action="${base}" class="filters">
  ${csrfField(p)}
  <label for="domain-name">Domain name</label>
  <input id="domain-name" name="name" type="text" placeholder="contoso.com" required>
  <button type="submit" class="primary">Add domain</button>
</form>
<table id="domains"><caption class="sr-only">Domains</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
<tbody>${domains.map((d) => {
      const path = `${base}/${encodeURIComponent(d.name)}`;
      return html`<tr data-domain="${d.name}"><td>${d.name}${d.isDefault ? html` <span class="badge">Default</span>` : ''}${d.isInitial ? html` <span class="badge">Initial</span>` : ''}</td>
<td>${d.isVerified ? html`<span class="badge synced">Verified</span>` : html`<span class="badge error">Unverified</span>`}</td>
<td>${d.isVerified ? '' : actionButton(p, `${path}/verify`, 'Verify')}
${d.isVerified && !d.isDefault ? actionButton(p, `${path}/default`, 'Make default') : ''}
${!d.isInitial && !d.isDefault ? actionButton(p, `${path}/remove`, 'Remove', { danger: true, confirm: `Remove the domain ${d.name} from this directory?` }) : ''}</td></tr>
${d.isVerified ? '' : html`<tr class="detail"><td colspan="3"><p>To verify <strong>${d.name}</strong>, publish this record at your DNS provider, then choose Verify:</p>
<dl class="props txt-record"><dt>Name</dt><dd>${d.name}</dd><dt>Type</dt><dd>TXT</dd><dt>Value</dt><dd><code class="txt-value">${d.txt}</code></dd><dt>TTL</dt><dd>3600</dd></dl></td></tr>`}`;
    })}</tbody></table>`,
  );
}

// ---- directory integration --------------------------------------------------------------------

const RUN_COUNTS: [string, string][] = [
  ['read', 'Read'],
  ['adds', 'Added'],
  ['updates', 'Updated'],
  ['deletes', 'Deleted'],
  ['unchanged', 'Unchanged'],
  ['errors', 'Errors'],
  ['provisioningErrors', 'Provisioning errors'],
];

const statusLabel = (s: string) =>
  ({
    success: 'Success',
    'completed-with-errors': 'Completed with errors',
    'stopped-deletion-threshold-exceeded': 'Stopped: deletion threshold exceeded',
    staged: 'Staged (staging mode: nothing exported)',
    failed: 'Failed',
    'in-progress': 'In progress',
  })[s] ?? s;

function duration(r: RunView): string {
  if (!r.endedAt) return '';
  const ms = Date.parse(r.endedAt) - Date.parse(r.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function requestLine(r: SyncRequest): Html {
  const what = r.kind === 'sync-now' ? 'Sync now' : 'Allow the deletes';
  const state =
    r.status === 'pending' ? html`waiting for the agent to pick it up` : r.status === 'claimed' ? html`picked up by the agent (${r.claimedBy ?? ''}) at ${when(r.claimedAt)}` : html`done${r.result ? `: ${statusLabel(r.result)}` : ''}`;
  return html`<li>${what}, requested by ${r.requestedBy} at ${when(r.requestedAt)}: ${state}</li>`;
}

function errorRow(t: TenantTable, r: SyncErrorRow): Html {
  const link = (type: 'user' | 'group', id: string, label: Interpolation) => html`<a href="${tenantPath(t, `${type === 'user' ? 'users' : 'groups'}/${id}`)}">${label}</a>`;
  const c = r.conflicting;
  return html`<tr><td>${link(r.objectType, r.objectId, html`${r.displayName ?? r.objectId}${r.userPrincipalName ? html` <span class="muted">(${r.userPrincipalName})</span>` : ''}`)}</td>
<td>${r.error.category}</td><td>${r.error.propertyCausingError}</td><td><code>${r.error.value}</code></td>
<td>${c ? link(c.type, c.id, html`${c.displayName ?? c.id}${c.userPrincipalName ? html` <span class="muted">(${c.userPrincipalName})</span>` : ''}`) : (r.error.conflictingObjectDisplayName ?? '—')}</td>
<td>${when(r.error.occurredDateTime)}</td></tr>`;
}

/** The part of the Directory Integration tab that updates itself while the page is open. */
export function syncLive(ctx: PageContext, o: SyncOverview, errors: { rows: SyncErrorRow[]; objects: number }): Html {
  const t = ctx.tenant!;
  const p = ctx.principal!;
  const base = tenantPath(t, 'sync');
  const s = o.status;
  const statusLine =
    s.onPremisesSyncEnabled === true
      ? s.onPremisesLastSyncDateTime
        ? html`Last synchronization: ${when(s.onPremisesLastSyncDateTime)}`
        : html`Synchronization has never run`
      : s.onPremisesSyncEnabled === false
        ? html`Directory sync is deactivated${s.reactivationBlockedUntil ? html`; it can be activated again after ${when(s.reactivationBlockedUntil)}` : ''}`
        : html`Directory sync has not been activated`;
  const c = o.counts;
  return html`<p id="sync-status" class="status-line">${statusLine}</p>
<p id="sync-running" class="${o.running ? 'running' : 'idle'}">${o.running
    ? html`<span class="spinner" aria-hidden="true"></span> Sync is running: ${o.running.kind} run started ${when(o.running.startedAt)} by ${o.running.agent}`
    : html`No sync is running.`}</p>
<dl class="counts" id="sync-counts">
  <div><dt>Users</dt><dd id="count-users">${c.users}</dd></div>
  <div><dt>Synced users</dt><dd id="count-synced-users">${c.syncedUsers}</dd></div>
  <div><dt>Groups</dt><dd id="count-groups">${c.groups}</dd></div>
  <div><dt>Synced groups</dt><dd id="count-synced-groups">${c.syncedGroups}</dd></div>
  <div><dt>Objects with sync errors</dt><dd id="count-errors">${errors.objects}</dd></div>
</dl>
<p id="sync-agent">${o.lease ? html`Agent <strong>${o.lease.agent}</strong> (${o.lease.holder}) holds the export lease until ${when(o.lease.expiresAt)}.` : html`No agent holds the export lease right now (agents take it while they run).`}</p>
${o.pendingRequests.length ? html`<ul id="sync-requests">${o.pendingRequests.map(requestLine)}</ul>` : ''}

${o.stopped
  ? html`<section class="card warn" id="deletion-threshold" aria-labelledby="dt-title"><h2 id="dt-title">A run was stopped by the deletion threshold</h2>
<p>The run of ${when(o.stopped.run.startedAt)} would delete ${o.stopped.deletes?.total ?? o.stopped.run.counts.deletes ?? 'many'} objects, more than the deletion threshold allows, so it exported nothing. ${o.stopped.run.message ?? ''}</p>
${o.stopped.deletes
  ? html`<table><caption>Objects the run would delete${o.stopped.deletes.total > o.stopped.deletes.items.length ? ` (the first ${o.stopped.deletes.items.length} of ${o.stopped.deletes.total})` : ''}</caption>
<thead><tr><th scope="col">Type</th><th scope="col">Distinguished name</th><th scope="col">Why</th></tr></thead>
<tbody>${o.stopped.deletes.items.slice(0, 200).map((d) => html`<tr><td>${d.type}</td><td>${d.dn}</td><td>${d.reason === 'deleted-in-source' ? 'deleted on-premises' : 'out of sync scope'}</td></tr>`)}</tbody></table>`
  : ''}
${actionButton(p, `${base}/requests`, 'Allow these deletes', { fields: { kind: 'allow-deletes' }, danger: true, id: 'allow-deletes', confirm: 'Allow these deletes once: the agent runs again and deletes these objects in the cloud (they stay restorable for 30 days). Continue?' })}
</section>`
  : ''}

${o.staged
  ? html`<section class="card" id="pending-exports" aria-labelledby="pe-title"><h2 id="pe-title">Pending exports (staging mode)</h2>
<p>The agent runs in staging mode: it computed these exports at ${when(o.staged.run.startedAt)} and exported nothing. ${o.staged.exports.adds} to add, ${o.staged.exports.updates} to update, ${o.staged.exports.deletes} to delete.</p>
<table><caption class="sr-only">Pending exports</caption><thead><tr><th scope="col">Action</th><th scope="col">Type</th><th scope="col">Distinguished name</th><th scope="col">Attributes</th></tr></thead>
<tbody>${o.staged.exports.items.slice(0, 200).map((i) => html`<tr><td>${i.action}</td><td>${i.type}</td><td>${i.dn}</td><td>${i.attributes.join(', ')}</td></tr>`)}</tbody></table>
${o.staged.exports.total > 200 ? html`<p class="muted">Showing 200 of ${o.staged.exports.total}.</p>` : ''}</section>`
  : ''}

<section aria-labelledby="runs-title"><h2 id="runs-title">Last runs</h2>
${o.runs.length
  ? html`<table id="runs"><caption class="sr-only">Last sync runs</caption><thead><tr><th scope="col">Started</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Duration</th>${RUN_COUNTS.map(([, l]) => html`<th scope="col">${l}</th>`)}</tr></thead>
<tbody>${o.runs.map((r) => html`<tr><td>${when(r.startedAt)}</td><td>${r.kind}</td><td>${statusLabel(r.status)}</td><td>${duration(r)}</td>${RUN_COUNTS.map(([k]) => html`<td>${r.counts[k] ?? ''}</td>`)}</tr>`)}</tbody></table>`
  : html`<p class="muted">No run has been reported yet.</p>`}
${o.latest?.errors.length
  ? html`<h3>Errors of the last run</h3><ul class="run-errors">${(o.latest.errors as Record<string, unknown>[]).slice(0, 50).map((e) => html`<li>${str(e.phase)}: ${str(e.dn ?? e.anchor)}: ${str(e.message)}</li>`)}</ul>`
  : ''}
</section>

<section aria-labelledby="errors-title"><h2 id="errors-title">Sync errors</h2>
${errors.rows.length
  ? html`<table id="sync-errors"><caption class="sr-only">Provisioning errors</caption><thead><tr><th scope="col">Object</th><th scope="col">Category</th><th scope="col">Property</th><th scope="col">Value</th><th scope="col">Conflicting object</th><th scope="col">Since</th></tr></thead>
<tbody>${errors.rows.map((r) => errorRow(t, r))}</tbody></table>
<p class="muted">Each error heals by itself once the conflict is gone on either side.</p>`
  : html`<p class="muted">No object has a provisioning error.</p>`}
</section>`;
}

export function syncPage(ctx: PageContext, o: SyncOverview, live: Html, version: string, pollMs: number): Html {
  const t = ctx.tenant!;
  const p = ctx.principal!;
  const base = tenantPath(t, 'sync');
  const on = o.status.onPremisesSyncEnabled === true;
  return layout(
    ctx,
    `Directory Integration · ${t.display_name}`,
    html`<h1>Directory Integration</h1>
<form method="post" action="${base}/activation" id="activation-form" class="card"
  data-confirm-activate="Activating directory sync lets the sync agent take over cloud objects: cloud users and groups with the same names (user principal name or email address) as on-premises objects may be overwritten by them. Continue?"
  data-confirm-deactivate="Deactivating directory sync turns every synced object into a cloud-managed object and clears its on-premises attributes. Directory sync cannot be activated again for 72 hours. Continue?"
  data-current="${on ? 'activated' : 'deactivated'}">
  ${csrfField(p)}
  <input type="hidden" name="confirmed" value="">
  <fieldset><legend>Directory Sync</legend>
    <input type="radio" id="dirsync-on" name="dirsync" value="activated"${on ? raw(' checked') : ''}><label for="dirsync-on">Activated</label>
    <input type="radio" id="dirsync-off" name="dirsync" value="deactivated"${on ? '' : raw(' checked')}><label for="dirsync-off">Deactivated</label>
  </fieldset>
  <button type="submit" class="primary">Save</button>
</form>
<div class="actions">${actionButton(p, `${base}/requests`, 'Sync now', { fields: { kind: 'sync-now' }, id: 'sync-now' })}
<span class="muted">The agent picks requests up within seconds while it runs (nimbus agent, or nimbus start).</span></div>
<div id="sync-live" aria-live="polite" data-live-url="${base}/live" data-poll-ms="${pollMs}" data-version="${version}">${live}</div>`,
  );
}

export function confirmActivationPage(ctx: PageContext, activate: boolean): Html {
  const t = ctx.tenant!;
  return layout(
    ctx,
    'Confirm directory sync change',
    html`<section class="card warn narrow"><h1>${activate ? 'Activate' : 'Deactivate'} directory sync?</h1>
<p>${activate
      ? 'Activating directory sync lets the sync agent take over cloud objects: cloud users and groups with the same names (user principal name or email address) as on-premises objects may be overwritten by them.'
      : 'Deactivating directory sync turns every synced object into a cloud-managed object and clears its on-premises attributes. Directory sync cannot be activated again for 72 hours.'}</p>
<form method="post" action="${tenantPath(t, 'sync/activation')}">${csrfField(ctx.principal)}<input type="hidden" name="dirsync" value="${activate ? 'activated' : 'deactivated'}"><input type="hidden" name="confirmed" value="yes">
<button type="submit" class="primary">Confirm</button> <a href="${tenantPath(t, 'sync')}">Cancel</a></form></section>`,
  );
}

// ---- deleted users and audit log --------------------------------------------------------------

export function deletedPage(ctx: PageContext, items: Record<string, unknown>[], nextHref?: string, firstHref?: string): Html {
  const t = ctx.tenant!;
  const p = ctx.principal!;
  return layout(
    ctx,
    `Deleted users · ${t.display_name}`,
    html`<h1>Deleted users</h1>
<p>Deleted users stay restorable for 30 days, then they are removed for good.</p>
<table id="deleted"><caption class="sr-only">Deleted users</caption>
<thead><tr><th scope="col">Display name</th><th scope="col">User principal name</th><th scope="col">Deleted</th><th scope="col">Source</th><th scope="col">Actions</th></tr></thead>
<tbody>${items.map((u) => html`<tr><td>${str(u.displayName)}</td><td>${str(u.userPrincipalName)}</td><td>${when(u.deletedDateTime as string)}</td><td>${sourceBadge(u)}</td>
<td>${actionButton(p, tenantPath(t, `deleted/${String(u.id)}/restore`), 'Restore')}</td></tr>`)}</tbody></table>
${items.length === 0 ? html`<p class="muted">The recycle bin is empty.</p>` : ''}
${pager(nextHref, firstHref)}`,
  );
}

export function auditPage(ctx: PageContext, items: Record<string, unknown>[], nextHref?: string, firstHref?: string): Html {
  const t = ctx.tenant!;
  const who = (i: Record<string, unknown>) => {
    const by = i.initiatedBy as { app?: { displayName?: string } | null; user?: { displayName?: string } | null };
    return by.app?.displayName ?? by.user?.displayName ?? '';
  };
  const targets = (i: Record<string, unknown>) => (i.targetResources as { displayName?: string | null; id?: string }[]).map((x) => x.displayName ?? x.id ?? '').join(', ');
  return layout(
    ctx,
    `Audit log · ${t.display_name}`,
    html`<h1>Audit log</h1>
<table id="audit"><caption class="sr-only">Audit log, newest first</caption>
<thead><tr><th scope="col">Date</th><th scope="col">Activity</th><th scope="col">Category</th><th scope="col">Result</th><th scope="col">Initiated by</th><th scope="col">Target</th></tr></thead>
<tbody>${items.map((i) => html`<tr><td>${when(i.activityDateTime as string)}</td><td>${String(i.activityDisplayName)}</td><td>${String(i.category)}</td>
<td>${i.result === 'success' ? 'Success' : html`<span class="badge error">Failure</span> ${str(i.resultReason)}`}</td><td>${who(i)}</td><td>${targets(i)}</td></tr>`)}</tbody></table>
${items.length === 0 ? html`<p class="muted">Nothing has been logged yet.</p>` : ''}
${pager(nextHref, firstHref)}`,
  );
}

export function errorPage(ctx: PageContext, status: number, title: string, message: string): Html {
  return layout(ctx, title, html`<section class="card narrow"><h1>${title}</h1><p class="flash error" role="alert">${message}</p><p><a href="/portal/">Back to your directories</a></p></section>`);
}

