// End to end from a real Samba AD DC (the generator's seeded fixture) into a real cloud
// directory over HTTP, through the AD connector: full sync and its edge cases, a no-change
// delta, a delta after typical churn (renames/moves keep the cloud object, deletes are soft),
// and crashes (an injected failure mid-import, mid-delta, SIGKILL of `nimbus sync` mid-export)
// followed by a rerun reaching the same end state without duplicates.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { Attribute, Change, Client } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { applyChurn, typicalDelta, type ChurnResult } from '../../scripts/generator/churn.ts';
import type { Manifest } from '../../scripts/generator/manifest.ts';
import { SAMBA_SYNC_PASSWORD } from '../../scripts/samba/samba.ts';
import { cliActor } from '../../src/cloud/services/context.ts';
import { openSyncAgent } from '../../src/sync/agent.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/config.ts';
import type { DeltaChange, ImportItem, SourceConnector } from '../../src/sync/connectors/connector.ts';
import { createAdConnector } from '../../src/sync/connectors/ad/ad-connector.ts';
import { DEFAULT_AD_ATTRIBUTES } from '../../src/sync/connectors/ad/ad-connector-config.ts';
import { WATERMARK_KEY } from '../../src/sync/engine/run.ts';
import { openConnectorSpace } from '../../src/sync/engine/space.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';
import { runNimbus, startNimbus } from '../helpers/nimbus-cli.ts';
import { useSamba } from '../helpers/samba.ts';
import { tempDir } from '../sync/helpers.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ad = useSamba();
const clouds: TestCloud[] = [];
let cloud: TestCloud;
let t: TestTenant;
let config: SyncConfig;
let manifest: Manifest;

/** A cloud directory with a tenant that verified only the fixture's routable suffix, sync activated. */
async function freshTenant(name: string): Promise<{ cloud: TestCloud; t: TestTenant }> {
  const c = await startCloud();
  clouds.push(c);
  const tt = await c.createTenant(name);
  await c.svc.domains.add(cliActor(tt.tenant.id), ad().manifest.upnSuffixes.routable);
  await c.svc.domains.verify(cliActor(tt.tenant.id), ad().manifest.upnSuffixes.routable, { force: true });
  await c.svc.organization.setDirSync(cliActor(tt.tenant.id), true);
  return { cloud: c, t: tt };
}

/** nimbus.yaml for source.type ad against the test DC, loaded the way the CLI loads it. */
async function writeAdConfig(c: TestCloud, tt: TestTenant, target: Record<string, unknown> = {}): Promise<{ file: string; config: SyncConfig }> {
  const dir = tempDir('nimbus-sync-ad-');
  const creds = await tt.credentials('sync');
  writeFileSync(join(dir, 'app.secret'), `${creds.clientSecret}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'ad.pw'), `${ad().password}\n`, { mode: 0o600 });
  const doc = {
    source: { type: 'ad', url: ad().url, bindDn: ad().bindDN, passwordFile: './ad.pw', baseDn: ad().baseDN },
    target: { type: 'nimbus', url: c.url, tenant: tt.tenant.name, clientId: creds.clientId, clientSecretFile: './app.secret', ...target },
    sync: { deletionThreshold: 1000, dataDir: './agent' },
  };
  const file = join(dir, 'nimbus.yaml');
  writeFileSync(file, stringify(doc));
  return { file, config: loadSyncConfig({ file, env: {} }) };
}

async function run(c: SyncConfig, opts: { full?: boolean; wrap?: (x: SourceConnector) => SourceConnector } = {}) {
  const agent = await openSyncAgent(c, opts.wrap ? { wrapConnector: opts.wrap } : {});
  try {
    const r = await agent.run(opts.full ? { full: true } : {});
    return { ...r, kind: agent.space.runs(1)[0]!.kind };
  } finally {
    await agent.close();
  }
}

/** The directory's users as sync must see them: anchor -> DN, with AD Connect's built-in exclusions applied. */
async function directoryUsers(): Promise<Map<string, string>> {
  const c = new Client({ url: ad().url, timeout: 30_000 });
  await c.bind(ad().bindDN, ad().password);
  try {
    const { searchEntries } = await c.search(ad().baseDN, {
      scope: 'sub',
      filter: '(&(objectClass=user)(!(objectClass=computer)))',
      attributes: ['objectGUID', 'sAMAccountName', 'isCriticalSystemObject'],
      explicitBufferAttributes: ['objectGUID'],
      paged: { pageSize: 1000 },
    });
    const out = new Map<string, string>();
    for (const e of searchEntries) {
      const sam = String(e.sAMAccountName);
      if (String(e.isCriticalSystemObject) === 'TRUE' || /^krbtgt/i.test(sam) || /^(AAD|MSOL)_/i.test(sam) || /^\$DUPLICATE-/i.test(sam) || /\\0ACNF:/i.test(e.dn)) continue;
      out.set((e.objectGUID as Buffer).toString('base64'), e.dn);
    }
    return out;
  } finally {
    await c.unbind();
  }
}

const usersOf = (c: TestCloud, tt: TestTenant) => c.svc.db.selectFrom('users').selectAll().where('tenant_id', '=', tt.tenant.id).where('on_prem_sync_enabled', '=', 1);
const byAnchor = (a: string) => usersOf(cloud, t).where('immutable_id', '=', a).executeTakeFirst();
const groupByAnchor = (a: string) => cloud.svc.db.selectFrom('groups').selectAll().where('tenant_id', '=', t.tenant.id).where('immutable_id', '=', a).executeTakeFirstOrThrow();
const memberCount = async (groupId: string) => Number((await cloud.svc.db.selectFrom('memberships').select(({ fn }) => fn.countAll<number>().as('n')).where('group_id', '=', groupId).executeTakeFirstOrThrow()).n);
const changeSeq = async () => (await cloud.svc.db.selectFrom('tenants').select('change_seq').where('id', '=', t.tenant.id).executeTakeFirstOrThrow()).change_seq;

/** A tenant's synced objects, independent of ids, placeholder digits and the initial domain. */
async function state(c: TestCloud, tt: TestTenant) {
  const db = c.svc.db;
  const T = tt.tenant.id;
  const users = await usersOf(c, tt).orderBy('immutable_id').execute();
  const groups = await db.selectFrom('groups').selectAll().where('tenant_id', '=', T).where('on_prem_sync_enabled', '=', 1).orderBy('immutable_id').execute();
  const anchorOf = new Map([...users, ...groups].map((o) => [o.id, o.immutable_id!]));
  const members = await db.selectFrom('memberships').selectAll().where('tenant_id', '=', T).execute();
  const upn = (u: string) => u.replace(tt.tenant.initial_domain, 'INITIAL').replace(/\d{4}@INITIAL$/, '####@INITIAL');
  return {
    users: users.map((u) => ({ a: u.immutable_id, upn: upn(u.upn), name: u.display_name, enabled: u.account_enabled, dn: u.on_prem_distinguished_name, title: u.job_title, mgr: u.manager_id ? anchorOf.get(u.manager_id) : null, deleted: !!u.deleted_at })),
    groups: groups.map((g) => ({ a: g.immutable_id, name: g.display_name, members: members.filter((m) => m.group_id === g.id).map((m) => anchorOf.get(m.member_id)).sort() })),
  };
}

/** A connector whose full or delta import fails after `n` items, as a crash would stop it. */
function failAfter(n: number, where: 'full' | 'delta') {
  return (inner: SourceConnector): SourceConnector => ({
    ...inner,
    kind: inner.kind,
    identity: inner.identity,
    fullImport: where === 'full' ? async function* (signal?: AbortSignal): AsyncGenerator<ImportItem> {
      let i = 0;
      for await (const x of inner.fullImport(signal)) {
        if (++i > n) throw new Error('simulated crash during import');
        yield x;
      }
    } : (s) => inner.fullImport(s),
    fullImportWatermark: () => inner.fullImportWatermark?.(),
    deltaImport: (w, s) => {
      const d = inner.deltaImport!(w, s);
      if (where !== 'delta') return d;
      return {
        watermark: () => d.watermark(),
        ...(d.liveObjectGuids ? { liveObjectGuids: () => d.liveObjectGuids!() } : {}),
        changes: (async function* (): AsyncGenerator<DeltaChange> {
          let i = 0;
          for await (const x of d.changes) {
            if (++i > n) throw new Error('simulated crash during delta import');
            yield x;
          }
        })(),
      };
    },
    readEntry: (dn) => inner.readEntry!(dn),
    close: () => inner.close(),
  });
}

let reference: Awaited<ReturnType<typeof state>>;
const dnToAnchor = new Map<string, string>();

beforeAll(async () => {
  manifest = ad().manifest;
  ({ cloud, t } = await freshTenant('contoso'));
  ({ config } = await writeAdConfig(cloud, t));
});
afterAll(async () => {
  for (const c of clouds) await c.close();
});

describe('AD connector: full sync from Samba AD', () => {
  it('lands every in-scope user and group of the directory, and nothing else', async () => {
    const r = await run(config);
    expect(r.kind).toBe('full-import');
    expect(r.status).toBe('success');
    expect(r.counts.errors).toBe(0);
    const dir = await directoryUsers();
    for (const [a, dn] of dir) dnToAnchor.set(dn.toLowerCase(), a);
    const live = await usersOf(cloud, t).where('deleted_at', 'is', null).select('immutable_id').execute();
    expect(live.map((u) => u.immutable_id).sort()).toEqual([...dir.keys()].sort());
    const groups = await cloud.svc.db.selectFrom('groups').select('immutable_id').where('tenant_id', '=', t.tenant.id).where('on_prem_sync_enabled', '=', 1).execute();
    const gen = Object.values(manifest.edgeCases).flat().filter((e) => e.kind === 'group');
    for (const g of gen) expect(groups.some((x) => x.immutable_id === g.immutableId), g.dn).toBe(true);
    reference = await state(cloud, t);
  });

  it('applies the edge-case rules (fallback UPN, disabled, no UPN, built-in exclusions)', async () => {
    const initial = `@${t.tenant.initial_domain}`;
    const local = manifest.edgeCases['upn-nonroutable-suffix'][0]!;
    const l = (await byAnchor(local.immutableId))!;
    expect(l.upn.endsWith(initial)).toBe(true);
    expect(l.on_prem_user_principal_name).toBe(local.userPrincipalName);
    const routable = manifest.edgeCases['upn-routable-suffix'][0]!;
    expect((await byAnchor(routable.immutableId))!.upn.toLowerCase()).toBe(routable.userPrincipalName!.toLowerCase());
    // No UPN: sAMAccountName@corp.example.com, which this tenant did not verify, so the fallback.
    const none = manifest.edgeCases['no-upn'][0]!;
    const n = (await byAnchor(none.immutableId))!;
    expect(n.on_prem_sam_account_name).toBe(none.sAMAccountName);
    expect(n.upn.endsWith(initial)).toBe(true);
    for (const e of manifest.edgeCases.disabled.slice(0, 3)) expect((await byAnchor(e.immutableId))!.account_enabled).toBe(0);
    for (const e of [...manifest.edgeCases['critical-system-object'], ...manifest.edgeCases['conflict-name'], ...manifest.edgeCases['sync-service-account-name']]) {
      if (e.immutableId) expect(await byAnchor(e.immutableId), e.dn).toBeUndefined();
    }
    const names = await usersOf(cloud, t).select('on_prem_sam_account_name').execute();
    expect(names.some((u) => /^(krbtgt|Administrator|Guest)$/i.test(u.on_prem_sam_account_name ?? ''))).toBe(false);
  });

  it('completes nested groups and a group of more than 1500 members', async () => {
    const large = manifest.edgeCases['large-group'].find((g) => (g.memberCount ?? 0) > 1500)!;
    expect(await memberCount((await groupByAnchor(large.immutableId)).id)).toBe(large.memberCount);
    for (const nested of manifest.edgeCases['nested-group']) {
      const g = await groupByAnchor(nested.immutableId);
      const members = await cloud.svc.db.selectFrom('memberships').selectAll().where('group_id', '=', g.id).execute();
      expect(members.filter((m) => m.member_type === 'group')).toHaveLength(nested.memberGroups!.length);
      expect(members).toHaveLength(nested.memberCount!);
    }
  });

  it('a delta with no change in the directory exports nothing, and asks the DC only for its write mark', async () => {
    const before = await changeSeq();
    const watermark = async () => {
      const space = await openConnectorSpace(config.sync.dataDir);
      try {
        return JSON.parse(JSON.parse(space.getMeta(WATERMARK_KEY)!).watermark) as { m: string; cookie: string; hcu?: string };
      } finally {
        await space.close();
      }
    };
    const w0 = await watermark();
    const r = await run(config);
    expect(r.kind).toBe('delta');
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ read: 0, adds: 0, updates: 0, deletes: 0, batches: 0, errors: 0 });
    expect(await changeSeq()).toBe(before);
    // The DC's write mark (which DC, highestCommittedUSN) had not moved: the cookie is kept as it was.
    const w1 = await watermark();
    expect(w1.m).toBe('dirsync');
    expect(w1.hcu).toMatch(/^CN=NTDS Settings,.*#\d+$/);
    expect(w1).toEqual(w0);
  });
});

describe('AD connector: ranged retrieval', () => {
  it('completes member;range=... answers with further range reads until the range ends in *', async () => {
    // Samba answers ranges only when asked (AD always does past 1500 values): ask for 0-99.
    const attributes = [...DEFAULT_AD_ATTRIBUTES.filter((a) => a !== 'member'), 'member;range=0-99'];
    const connector = createAdConnector({ connection: { url: ad().url, bindDn: ad().bindDN, password: () => ad().password, starttls: false, timeoutMs: 30_000 }, baseDn: ad().baseDN, attributes });
    try {
      const large = manifest.edgeCases['large-group'].find((g) => (g.memberCount ?? 0) > 1500)!;
      const e = (await connector.readEntry!(large.dn))!;
      expect(Object.keys(e.attributes).filter((k) => /^member/i.test(k))).toEqual(['member']);
      expect(new Set(e.attributes.member!.map(String)).size).toBe(large.memberCount);
      const small = manifest.edgeCases['nested-group'][0]!;
      expect((await connector.readEntry!(small.dn))!.attributes.member).toHaveLength(small.memberCount!);
    } finally {
      await connector.close();
    }
  });
});

describe('AD connector: a full import over several connections', () => {
  const connectorWith = (readConnections: number) => createAdConnector({ connection: { url: ad().url, bindDn: ad().bindDN, password: () => ad().password, starttls: false, timeoutMs: 30_000 }, baseDn: ad().baseDN, readConnections });
  const guidOf = (e: ImportItem) => ('attributes' in e ? (e.attributes.objectGUID![0] as Buffer).toString('base64') : 'error');

  it('reads the same entries, each once, as one paged search', async () => {
    const read = async (n: number) => {
      const c = connectorWith(n);
      const out = new Map<string, string>();
      try {
        for await (const e of c.fullImport()) {
          expect(out.has(guidOf(e))).toBe(false);
          expect('reread' in e && e.reread).toBeFalsy();
          out.set(guidOf(e), 'dn' in e ? e.dn! : '');
        }
      } finally {
        await c.close();
      }
      return out;
    };
    const one = await read(1);
    const three = await read(3);
    expect(one.size).toBeGreaterThan(manifest.counts.users);
    expect([...three].sort()).toEqual([...one].sort());
  });

  it('an object changed while the ranges are read comes again at the end, as a newer read; the sync keeps that one', async () => {
    const admin = new Client({ url: ad().url });
    await admin.bind(ad().bindDN, ad().password);
    const target = manifest.edgeCases['disabled'][0]!.dn;
    const title = async (values: string[]) => admin.modify(target, new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values }) }));
    const before = (await admin.search(target, { scope: 'base', attributes: ['title'] })).searchEntries[0]!.title;
    const reads: { reread: boolean; title: string }[] = [];
    const { cloud: c2, t: t2 } = await freshTenant('midread');
    const { config: cfg } = await writeAdConfig(c2, t2);
    try {
      const r = await run(cfg, {
        wrap: (inner) => ({
          ...inner,
          kind: inner.kind,
          identity: inner.identity,
          fullImport: async function* (signal?: AbortSignal): AsyncGenerator<ImportItem> {
            let first = true;
            for await (const x of inner.fullImport(signal)) {
              if (first) await title(['Changed during the read']);
              first = false;
              if ('attributes' in x && x.dn.toLowerCase() === target.toLowerCase()) reads.push({ reread: x.reread === true, title: String(x.attributes.title?.[0] ?? '') });
              yield x;
            }
          },
          fullImportWatermark: () => inner.fullImportWatermark?.(),
          close: () => inner.close(),
        }),
      });
      // Read by its range before the change or not at all; then, always, by the catch-up.
      expect(reads.at(-1)).toEqual({ reread: true, title: 'Changed during the read' });
      expect(reads.filter((x) => !x.reread).length).toBeLessThanOrEqual(1);
      expect(r.status).toBe('success');
      expect(r.errors).toEqual([]);
      expect(r.counts.read).toBe(r.counts.users + r.counts.groups + r.counts.ignored);
      const user = await usersOf(c2, t2).where('on_prem_distinguished_name', '=', target).executeTakeFirstOrThrow();
      expect(user.job_title).toBe('Changed during the read');
    } finally {
      await title(before === undefined || (Array.isArray(before) && before.length === 0) ? [] : (Array.isArray(before) ? before : [before]).map(String)).catch(() => undefined);
      await admin.unbind();
    }
  });
});

describe('AD connector: an object anchored on ms-DS-ConsistencyGuid', () => {
  it('is anchored on it, and a delta finds it by its objectGUID: the same cloud object, updated', async () => {
    const admin = new Client({ url: ad().url });
    await admin.bind(ad().bindDN, ad().password);
    const target = manifest.edgeCases['disabled'][0]!.dn;
    const set = (type: string, values: (string | Buffer)[]) => admin.modify(target, new Change({ operation: 'replace', modification: new Attribute({ type, values: values as string[] }) }));
    const before = (await admin.search(target, { scope: 'base', attributes: ['title'] })).searchEntries[0]!.title;
    const guid = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
    const { cloud: c2, t: t2 } = await freshTenant('consistency');
    const { config: cfg } = await writeAdConfig(c2, t2);
    try {
      await set('mS-DS-ConsistencyGuid', [guid]);
      expect((await run(cfg)).status).toBe('success');
      const synced = await usersOf(c2, t2).where('on_prem_distinguished_name', '=', target).executeTakeFirstOrThrow();
      expect(synced.immutable_id).toBe(guid.toString('base64'));
      await set('title', ['Anchored elsewhere']);
      const r = await run(cfg);
      expect(r.kind).toBe('delta');
      expect(r.counts).toMatchObject({ adds: 0, updates: 1, deletes: 0, errors: 0 });
      const after = await usersOf(c2, t2).where('immutable_id', '=', guid.toString('base64')).executeTakeFirstOrThrow();
      expect(after.id).toBe(synced.id);
      expect(after.job_title).toBe('Anchored elsewhere');
    } finally {
      await set('mS-DS-ConsistencyGuid', []).catch(() => undefined);
      await set('title', before === undefined || (Array.isArray(before) && before.length === 0) ? [] : (Array.isArray(before) ? before : [before]).map(String)).catch(() => undefined);
      await admin.unbind();
    }
  });
});

describe('AD connector: crashes part-way, then a rerun', () => {
  it('a full import that dies part-way, rerun: the same end state as an uninterrupted sync', async () => {
    const x = await freshTenant('crashimport');
    const { config: c } = await writeAdConfig(x.cloud, x.t);
    await expect(run(c, { wrap: failAfter(700, 'full') })).rejects.toThrow('simulated crash during import');
    const r = await run(c);
    expect(r.kind).toBe('full-import');
    expect(r.status).toBe('success');
    expect(await state(x.cloud, x.t)).toEqual(reference);
  });

  it('SIGKILL of `nimbus sync` mid-import, rerun: same end state, nothing exported before the kill', async () => {
    const x = await freshTenant('killimport');
    const { file, config: c } = await writeAdConfig(x.cloud, x.t);
    const child = startNimbus(['sync', '--config', file, '--json']);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // The import commits first after 1000 entries: kill as soon as that commit is visible.
    const spaceFile = join(c.sync.dataDir, 'connector-space.db');
    const staged = () => {
      try {
        const db = new Database(spaceFile, { readonly: true, fileMustExist: true });
        try {
          return db.prepare('SELECT count(*) AS n, count(desired_hash) AS d FROM objects').get() as { n: number; d: number };
        } finally {
          db.close();
        }
      } catch {
        return { n: 0, d: 0 };
      }
    };
    let seen = { n: 0, d: 0 };
    for (let i = 0; i < 6000 && seen.n === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
      seen = staged();
    }
    child.kill('SIGKILL');
    await exited;
    // Killed while importing: part of the directory staged, nothing computed or exported yet.
    expect(seen.n).toBeGreaterThan(0);
    expect(seen.n).toBeLessThan(reference.users.length + reference.groups.length);
    expect(seen.d).toBe(0);
    expect(Number((await usersOf(x.cloud, x.t).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)).toBe(0);
    const second = await runNimbus(['sync', '--config', file, '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).status).toBe('success');
    expect(await state(x.cloud, x.t)).toEqual(reference);
  });

  it('SIGKILL of `nimbus sync` mid-export, rerun: same end state, no duplicates', async () => {
    const x = await freshTenant('crashkill');
    const { file } = await writeAdConfig(x.cloud, x.t, { batchSize: 20 });
    const child = startNimbus(['sync', '--config', file, '--json']);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const count = async () => Number((await usersOf(x.cloud, x.t).select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    for (let i = 0; i < 3000 && (await count()) < 100; i++) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    await exited;
    const mid = await count();
    expect(mid).toBeGreaterThanOrEqual(100);
    expect(mid).toBeLessThan(reference.users.length);
    const second = await runNimbus(['sync', '--config', file, '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).status).toBe('success');
    expect(await state(x.cloud, x.t)).toEqual(reference);
  });
});

describe('AD connector: delta after churn (DirSync)', () => {
  let churn: ChurnResult;
  let idsBefore: Map<string, string>;

  it('a delta import that dies part-way keeps the old cookie; the rerun applies exactly the churn', async () => {
    const rows = await usersOf(cloud, t).select(['id', 'immutable_id']).execute();
    idsBefore = new Map(rows.map((u) => [u.immutable_id!, u.id]));
    churn = await applyChurn({ url: ad().url, bindDN: ad().bindDN, password: ad().password, rootOU: manifest.rootOU, flavour: 'ad', domainDnsName: ad().domainDnsName }, typicalDelta(manifest.users), 11);
    expect(churn.errors).toEqual([]);
    const changed = churn.created.length + churn.modified.length + churn.deleted.length + churn.renamed.length + churn.moved.length;
    await expect(run(config, { wrap: failAfter(Math.floor(changed / 2), 'delta') })).rejects.toThrow('simulated crash during delta import');
    const reads: string[] = [];
    const r = await run(config, { wrap: (inner) => ({ ...inner, readEntry: async (dn: string) => (reads.push(dn.toLowerCase()), inner.readEntry!(dn)) }) });
    expect(r.kind).toBe('delta');
    expect(r.status).toBe('success');
    expect(r.counts.errors).toBe(0);
    expect(r.counts.adds).toBe(churn.created.length);
    expect(r.counts.deletes).toBe(churn.deleted.length);
    const dir = await directoryUsers();
    const live = await usersOf(cloud, t).where('deleted_at', 'is', null).select(['immutable_id', 'on_prem_distinguished_name']).execute();
    expect(live.map((u) => u.immutable_id).sort()).toEqual([...dir.keys()].sort());
    // Every user's on-premises DN is the directory's current one (renames and moves included).
    for (const u of live) expect(u.on_prem_distinguished_name!.toLowerCase()).toBe(dir.get(u.immutable_id!)!.toLowerCase());
    for (const m of churn.modified) expect((await byAnchor(dnToAnchor.get(m.dn.toLowerCase())!))!.job_title).toBe(m.attributes.title);
    // The created users came whole with the delta (DirSync returns every attribute of an object
    // created since the cookie): none was read again. (The full import below finds nothing to change.)
    expect(churn.created.length).toBeGreaterThan(0);
    expect(reads.filter((dn) => churn.created.some((c) => c.dn.toLowerCase() === dn))).toEqual([]);
  });

  it('renames and moves keep the same cloud object; deletes are soft deletes', async () => {
    for (const { from, to } of [...churn.renamed, ...churn.moved]) {
      const a = dnToAnchor.get(from.toLowerCase())!;
      const u = (await byAnchor(a))!;
      expect(u.id).toBe(idsBefore.get(a));
      expect(u.on_prem_distinguished_name!.toLowerCase()).toBe(to.toLowerCase());
    }
    for (const dn of churn.deleted) {
      const u = (await byAnchor(dnToAnchor.get(dn.toLowerCase())!))!;
      expect(u.deleted_at).not.toBeNull();
    }
  });

  it('renaming and moving whole OUs: a delta brings every object under them to its new DN, as the same cloud objects', async () => {
    const c = new Client({ url: ad().url, timeout: 30_000 });
    await c.bind(ad().bindDN, ad().password);
    const ous = (await c.search(manifest.rootOU, { scope: 'sub', filter: '(&(objectClass=organizationalUnit)(ou=Users))', attributes: ['dn'] })).searchEntries.map((e) => e.dn);
    expect(ous.length).toBeGreaterThanOrEqual(2);
    const [renamed, moved] = ous as [string, string];
    const parentOf = (dn: string) => dn.split(/(?<!\\),/).slice(1).join(',');
    const city = (dn: string) => parentOf(dn).split(/(?<!\\),/)[0]!.slice(3);
    const newRenamed = `OU=People,${parentOf(renamed)}`;
    // Moved one level up, out of its city OU: OU=<city> Users,OU=<region>,...
    const newMoved = `OU=${city(moved)} Users,${parentOf(parentOf(moved))}`;
    const rows = await usersOf(cloud, t).where('deleted_at', 'is', null).select(['id', 'immutable_id', 'on_prem_distinguished_name', 'manager_id']).execute();
    const under = (ou: string) => rows.filter((u) => u.on_prem_distinguished_name!.toLowerCase().endsWith(`,${ou.toLowerCase()}`));
    const affected = [...under(renamed), ...under(moved)];
    expect(affected.length).toBeGreaterThan(10);
    // Users whose manager moves with the OU: their staged manager values must follow it.
    const movedIds = new Set(affected.map((u) => u.id));
    expect(rows.filter((u) => u.manager_id && movedIds.has(u.manager_id)).length).toBeGreaterThan(0);
    try {
      await c.modifyDN(renamed, newRenamed);
      await c.modifyDN(moved, newMoved);
    } finally {
      await c.unbind();
    }
    const r = await run(config);
    expect(r.kind).toBe('delta');
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ adds: 0, deletes: 0, errors: 0 });
    expect(r.counts.updates).toBeGreaterThanOrEqual(affected.length);
    const dir = await directoryUsers();
    for (const u of affected) {
      const now = (await byAnchor(u.immutable_id!))!;
      expect(now.id).toBe(u.id);
      expect(now.deleted_at).toBeNull();
      expect(now.on_prem_distinguished_name!.toLowerCase()).toBe(dir.get(u.immutable_id!)!.toLowerCase());
      expect(now.on_prem_distinguished_name).not.toBe(u.on_prem_distinguished_name);
    }
    // Nobody's manager changed: a manager renamed or moved is the same cloud object.
    const after = new Map((await usersOf(cloud, t).where('deleted_at', 'is', null).select(['id', 'manager_id']).execute()).map((u) => [u.id, u.manager_id]));
    for (const u of rows) expect(after.get(u.id)).toBe(u.manager_id);
    // And the connector space's copies name each manager by its current DN (a later change to
    // the user resolves its manager from them): renamed and moved managers by their new DN,
    // none a manager deleted by the churn before (AD dropped those links).
    const agent = await openSyncAgent(config);
    try {
      const q = (where: string) => (agent.space.sqlite.prepare(`SELECT count(*) AS n FROM objects u JOIN object_imports i ON i.id = u.id WHERE u.type = 'user' AND u.present = 1 AND u.in_scope = 1 AND json_extract(i.imported, '$.manager[0]') IS NOT NULL ${where}`).get() as { n: number }).n;
      expect(q('')).toBeGreaterThan(0);
      expect(q("AND NOT EXISTS (SELECT 1 FROM objects m WHERE m.dn_key = lower(json_extract(i.imported, '$.manager[0]')) AND m.present = 1)")).toBe(0);
    } finally {
      await agent.close();
    }
  });

  it('a full import afterwards (--full) finds nothing more to change', async () => {
    const before = await changeSeq();
    const r = await run(config, { full: true });
    expect(r.kind).toBe('full');
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ adds: 0, deletes: 0, errors: 0 });
    expect(r.counts.updates).toBe(0);
    expect(await changeSeq()).toBe(before);
  });
});

describe('AD connector: delta without DirSync rights (uSNChanged fallback)', () => {
  it('an account without "Replicating Directory Changes" syncs, and deltas by uSNChanged apply exactly the churn', async () => {
    const x = await freshTenant('usnfallback');
    const { file } = await writeAdConfig(x.cloud, x.t);
    // svc-nimbus-sync can read the directory but DirSync refuses it (insufficient access).
    writeFileSync(file, stringify({ ...(parseYaml(readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>), source: { type: 'ad', url: ad().url, bindDn: `svc-nimbus-sync@${ad().domainDnsName}`, passwordFile: './svc.pw', baseDn: ad().baseDN } }));
    writeFileSync(join(dirname(file), 'svc.pw'), `${SAMBA_SYNC_PASSWORD}\n`, { mode: 0o600 });
    const c = loadSyncConfig({ file, env: {} });
    const first = await run(c);
    expect(first.status).toBe('success');
    const agent = await openSyncAgent(c);
    const saved = JSON.parse(agent.space.getMeta(WATERMARK_KEY)!) as { watermark: string };
    await agent.close();
    expect(JSON.parse(saved.watermark)).toMatchObject({ m: 'usn' });
    const rows = await usersOf(x.cloud, x.t).select(['id', 'immutable_id', 'on_prem_distinguished_name']).execute();
    const churn = await applyChurn({ url: ad().url, bindDN: ad().bindDN, password: ad().password, rootOU: manifest.rootOU, flavour: 'ad', domainDnsName: ad().domainDnsName }, { creates: 3, deletes: 3, modifies: 5, renames: 2, moves: 2 }, 12);
    expect(churn.errors).toEqual([]);
    const r = await run(c);
    expect(r.kind).toBe('delta');
    expect(r.status).toBe('success');
    expect(r.counts).toMatchObject({ adds: 3, deletes: 3, errors: 0 });
    const dir = await directoryUsers();
    const live = await usersOf(x.cloud, x.t).where('deleted_at', 'is', null).select(['immutable_id', 'on_prem_distinguished_name']).execute();
    expect(live.map((u) => u.immutable_id).sort()).toEqual([...dir.keys()].sort());
    for (const u of live) expect(u.on_prem_distinguished_name!.toLowerCase()).toBe(dir.get(u.immutable_id!)!.toLowerCase());
    const idOf = new Map(rows.map((u) => [u.on_prem_distinguished_name!.toLowerCase(), u]));
    for (const { from } of [...churn.renamed, ...churn.moved]) {
      const before = idOf.get(from.toLowerCase())!;
      expect((await usersOf(x.cloud, x.t).where('immutable_id', '=', before.immutable_id).executeTakeFirstOrThrow()).id).toBe(before.id);
    }
    // This account may not read tombstones: deletes were found from the list of live objectGUIDs.
    for (const dn of churn.deleted) expect((await usersOf(x.cloud, x.t).where('immutable_id', '=', idOf.get(dn.toLowerCase())!.immutable_id).executeTakeFirstOrThrow()).deleted_at).not.toBeNull();
    const full = await run(c, { full: true });
    expect(full.status).toBe('success');
    expect(full.counts).toMatchObject({ adds: 0, updates: 0, deletes: 0 });
  });
});
