// Test helpers for the sync agent: a generated AD-flavoured LDIF (scripts/generator), a
// tenant ready for directory sync on a real cloud directory, and a config file for it.
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { adLdif } from '../../scripts/generator/ldif.ts';
import { buildManifest, type Manifest } from '../../scripts/generator/manifest.ts';
import { generateDirectory, type DirectoryModel } from '../../scripts/generator/model.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import type { Services } from '../../src/cloud/services/index.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import type { TestCloud, TestTenant } from '../helpers/cloud.ts';

export { tempDir } from '../helpers/temp-dirs.ts';

/** Writes LDIF chunks to a file without holding the whole text. */
export async function writeLdif(path: string, chunks: Iterable<string>): Promise<void> {
  const out = createWriteStream(path);
  for (const c of chunks) if (!out.write(c)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}

export async function generatedLdif(dir: string, users: number, seed = 1): Promise<{ path: string; model: DirectoryModel; manifest: Manifest }> {
  const model = generateDirectory({ users, seed });
  const path = join(dir, 'export.ldif');
  await writeLdif(path, adLdif(model));
  return { path, model, manifest: buildManifest(model) };
}

/** A tenant with contoso.com and corp.example.com verified and directory sync activated. */
export async function syncTenant(cloud: TestCloud, name: string, opts: { activate?: boolean } = {}): Promise<TestTenant> {
  const t = await cloud.createTenant(name);
  await readyForSync(cloud.svc, t.tenant.id, opts);
  return t;
}

/** The generator's domains (contoso.com, corp.example.com) verified in a tenant, and directory sync activated unless `activate` is false. */
export async function readyForSync(svc: Services, tenantId: string, opts: { activate?: boolean } = {}): Promise<void> {
  for (const d of ['contoso.com', 'corp.example.com']) {
    await svc.domains.add(cliActor(tenantId), d);
    await svc.domains.verify(cliActor(tenantId), d, { force: true });
  }
  if (opts.activate !== false) await svc.organization.setDirSync(cliActor(tenantId), true);
}

export interface ConfigOptions {
  ldif: string;
  source?: Record<string, unknown>;
  sync?: Record<string, unknown>;
  mapping?: Record<string, unknown>;
  target?: Record<string, unknown>;
}

/** Writes nimbus.yaml (and the secret file) into `dir` and loads it the way the CLI does. */
export async function writeConfig(dir: string, cloud: TestCloud, t: TestTenant, o: ConfigOptions): Promise<{ file: string; config: SyncConfig }> {
  const creds = await t.credentials('sync');
  writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
  const doc = {
    source: { type: 'ldif', path: o.ldif, baseDn: 'DC=corp,DC=example,DC=com', ...o.source },
    target: { type: 'nimbus', url: cloud.url, tenant: t.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret', ...o.target },
    sync: { interval: '60s', deletionThreshold: 500, staging: false, dataDir: './agent', ...o.sync },
    ...(o.mapping ? { mapping: o.mapping } : {}),
  };
  const file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify(doc));
  return { file, config: loadSyncConfig({ file, env: {} }) };
}

/** The tenant's synced objects, independent of ids, random placeholder digits and the tenant's initial domain: compare end states with it. */
export async function syncedState(cloud: TestCloud, t: TestTenant) {
  const db = cloud.svc.db;
  const T = t.tenant.id;
  const anchorOf = new Map<string, string>();
  const users = await db.selectFrom('users').selectAll().where('tenant_id', '=', T).where('on_prem_sync_enabled', '=', 1).orderBy('immutable_id').execute();
  const groups = await db.selectFrom('groups').selectAll().where('tenant_id', '=', T).where('on_prem_sync_enabled', '=', 1).orderBy('immutable_id').execute();
  for (const o of [...users, ...groups]) anchorOf.set(o.id, o.immutable_id!);
  const upn = (u: string) => u.replace(t.tenant.initial_domain, 'INITIAL').replace(/\d{4}@INITIAL$/, '####@INITIAL');
  const members = await db.selectFrom('memberships').selectAll().where('tenant_id', '=', T).execute();
  return {
    users: users.map((u) => ({ a: u.immutable_id, upn: upn(u.upn), name: u.display_name, enabled: u.account_enabled, dn: u.on_prem_distinguished_name, mgr: u.manager_id ? anchorOf.get(u.manager_id) : null, deleted: !!u.deleted_at, errors: JSON.parse(u.on_prem_provisioning_errors).length })),
    groups: groups.map((g) => ({ a: g.immutable_id, name: g.display_name, mail: g.mail_enabled, sec: g.security_enabled, members: members.filter((m) => m.group_id === g.id).map((m) => anchorOf.get(m.member_id)).sort() })),
  };
}
