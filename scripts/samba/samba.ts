// Samba AD DC for tests and benchmarks: provision into a folder, seed it with the generated
// enterprise (cached on disk, keyed by generator version + sources + size + seed), copy the
// cached folder for each run, start `samba` in the foreground on loopback, stop it by pid.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installTestPackages } from '../install-packages.ts';
import { TEST_DATA_DIR, copyDir, hashFiles, writeChunks } from '../lib/files.ts';
import { canBind } from '../lib/ldap.ts';
import { assertPortFree, logTail, pidAlive, runOk, spawnDaemon, stopPid, stopPidAndWaitPorts, waitFor } from '../lib/process.ts';
import { adAttributes } from '../generator/ldif.ts';
import { buildManifest, entryOf, type Manifest } from '../generator/manifest.ts';
import { EDGE_CASES, GENERATOR_VERSION, dnOf, generateDirectory, type DirectoryModel, type DirUser } from '../generator/model.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SEED_SCRIPT = path.join(HERE, 'seed.py');
/** Samba's Python bindings belong to Debian's python3, not whatever python3 is first on PATH. */
const SYSTEM_PYTHON = '/usr/bin/python3';

export const SAMBA_LDAP_PORT = 389;
export const SAMBA_LDAPS_PORT = 636;

/** Test-only credentials: the fixture is throwaway and bound to loopback. */
export const SAMBA_ADMIN_PASSWORD = 'Nimbus-Admin-1!';
/** Password of `svc-nimbus-sync`, the non-admin account a sync agent binds as. */
export const SAMBA_SYNC_PASSWORD = 'Nimbus-Sync-1!';

export interface SambaFixtureOptions {
  /** Ordinary users to generate (default 2000). */
  users?: number;
  /** Generator seed (default 1). */
  seed?: number;
  /** Build even if a cached copy exists. */
  rebuild?: boolean;
  log?: (msg: string) => void;
}

export interface SambaFixture {
  /** The cached, pristine folder. Never start Samba on it: copy it first (copyFixture). */
  dir: string;
  manifest: Manifest;
  /** True when this call built it (false: taken from the cache). */
  built: boolean;
  timings: { provisionMs: number; generateMs: number; seedMs: number; totalMs: number } | undefined;
}

interface FixtureMeta {
  /** The folder the fixture was provisioned in; smb.conf holds absolute paths to it. */
  provisionedIn: string;
  realm: string;
  domain: string;
}

/** Provisions an empty AD domain into `dir` (about 4 s). */
export async function provisionSamba(dir: string, model: Pick<DirectoryModel, 'domain'>): Promise<FixtureMeta> {
  await mkdir(dir, { recursive: true });
  const realm = model.domain.dnsName.toUpperCase();
  const domain = model.domain.netbiosName;
  await runOk(
    'samba-tool',
    [
      'domain', 'provision',
      `--realm=${realm}`,
      `--domain=${domain}`,
      '--server-role=dc',
      '--dns-backend=NONE',
      // Fixed host name: the result does not depend on the machine's hostname.
      '--host-name=NIMBUSDC',
      // samba-tool takes the admin password only as an option; provisioning is short-lived.
      `--adminpass=${SAMBA_ADMIN_PASSWORD}`,
      `--targetdir=${dir}`,
      // No filesystem xattrs needed (containers, tmpfs): keep ACLs in a tdb file.
      '--option=vfs objects=dfs_samba4 acl_xattr xattr_tdb',
      `--option=xattr_tdb:file=${dir}/xattr.tdb`,
      '--option=interfaces=lo',
      '--option=bind interfaces only=yes',
      `--option=pid directory=${dir}`,
      `--option=log file=${dir}/log.%m`,
      '--option=ldap server require strong auth=no',
    ],
    { cwd: dir },
  );
  return { provisionedIn: dir, realm, domain };
}

/** The JSON lines seed.py reads: UPN suffixes, OUs, then users and groups in dependency order. */
function* seedRecords(model: DirectoryModel): Generator<string> {
  const line = (o: unknown) => `${JSON.stringify(o)}\n`;
  yield line({ op: 'upnSuffixes', values: [model.routableSuffix, model.nonRoutableSuffix] });
  for (const ou of model.ous) {
    const name = /^OU=((?:\\.|[^,])*)/.exec(ou.dn)?.[1]?.replace(/\\(.)/g, '$1') ?? '';
    yield line({ op: 'add', key: `ou:${name}`, dn: ou.dn, guid: ou.guid, attrs: { objectClass: ['organizationalUnit'], ou: [name] } });
  }
  for (const o of [...model.userList, ...model.groupList]) {
    const attrs: Record<string, string[]> = { objectClass: [o.kind === 'user' ? 'user' : 'group'] };
    // Enabled users have no password, so they carry PASSWD_NOTREQD (0x20) like Samba's own
    // password-less accounts: 0x220 enabled, 0x222 disabled. The sync account gets a password.
    const uac = o.kind === 'user' ? sambaUserAccountControl(o) : undefined;
    for (const [k, v] of adAttributes(model, o, uac)) {
      if (v === undefined || k === 'cn') continue; // cn comes from the DN
      (attrs[k] ??= []).push(v.toString());
    }
    yield line({
      op: 'add',
      key: o.key,
      dn: dnOf(o),
      guid: o.guid,
      attrs,
      critical: o.kind === 'user' && o.critical,
      password: o.kind === 'user' && o.sAMAccountName === 'svc-nimbus-sync',
    });
  }
}

export function sambaUserAccountControl(u: DirUser): number {
  const withPassword = u.sAMAccountName === 'svc-nimbus-sync';
  return 0x200 | (withPassword ? 0 : 0x20) | (u.disabled ? 0x2 : 0);
}

interface SeedResult {
  added: number;
  seconds: number;
  refused: Manifest['refused'];
  failed: { key?: string; dn: string; error: string }[];
  critical: { dn: string; objectGUID: string; sAMAccountName: string }[];
}

/** Loads the model into a provisioned, stopped Samba folder and returns the manifest of what landed. */
export async function seedSamba(dir: string, model: DirectoryModel): Promise<{ manifest: Manifest; result: SeedResult }> {
  const records = path.join(dir, 'nimbus-seed.jsonl');
  await writeChunks(records, seedRecords(model));
  const r = await runOk(SYSTEM_PYTHON, [SEED_SCRIPT, dir, records], {
    env: { ...process.env, NIMBUS_SEED_PASSWORD: SAMBA_SYNC_PASSWORD, PYTHONDONTWRITEBYTECODE: '1' },
  });
  await rm(records, { force: true });
  const result = JSON.parse(r.stdout) as SeedResult;
  if (result.failed.length > 0) {
    throw new Error(
      `Samba refused ${result.failed.length} generated objects (a generator bug; fix the generator):\n` +
        result.failed.slice(0, 10).map((f) => `  ${f.dn}: ${f.error}`).join('\n'),
    );
  }
  return { manifest: sambaManifest(model, result), result };
}

/** The model's manifest, corrected with what Samba refused and the built-in critical objects. */
function sambaManifest(model: DirectoryModel, result: SeedResult): Manifest {
  const m = buildManifest(model, 'samba');
  const refusedUpn = new Set(result.refused.filter((r) => r.attribute === 'userPrincipalName').map((r) => r.key));
  // A duplicate-UPN pair whose second UPN was refused is no longer a pair: drop both from
  // upn-duplicate (the partner's note names the refused key), and drop the refused object
  // from every UPN category.
  const partners = new Set(
    m.edgeCases['upn-duplicate'].filter((e) => [...refusedUpn].some((k) => e.note?.includes(k))).map((e) => e.key),
  );
  for (const name of EDGE_CASES) {
    if (!name.startsWith('upn-')) continue;
    m.edgeCases[name] = m.edgeCases[name].filter(
      (e) => !refusedUpn.has(e.key) && !(name === 'upn-duplicate' && partners.has(e.key)),
    );
  }
  for (const r of result.refused) {
    const src = model.userList.find((u) => u.key === r.key);
    if (!src) continue;
    const e = entryOf(model, src);
    delete e.userPrincipalName;
    e.note = `UPN ${r.value} refused by Samba: ${r.error}`;
    m.edgeCases['no-upn'].push(e);
  }
  m.refused = result.refused;
  for (const c of result.critical) {
    if (m.edgeCases['critical-system-object'].some((e) => e.dn.toLowerCase() === c.dn.toLowerCase())) continue;
    m.edgeCases['critical-system-object'].push({
      key: `builtin:${c.sAMAccountName}`,
      kind: 'user',
      dn: c.dn,
      objectGUID: c.objectGUID,
      immutableId: '',
      sAMAccountName: c.sAMAccountName,
      note: 'created by provisioning',
    });
  }
  m.notes.push(
    'Samba, like AD since Windows Server 2012 R2, refuses a userPrincipalName already in use (case-insensitively); ' +
      'the second object of each duplicate-UPN pair was added without a UPN (see refused), so upn-duplicate is empty here. ' +
      'The AD LDIF export (target model) still carries the duplicates.',
    'Enabled users have userAccountControl 0x220 (NORMAL_ACCOUNT | PASSWD_NOTREQD) because they have no password; disabled ones 0x222. ' +
      `svc-nimbus-sync has a password and 0x200.`,
    'Generated objects carry the generator\'s objectGUIDs (set with the relax control), so they match the AD LDIF export.',
  );
  return m;
}

/** Source files whose change invalidates cached fixtures. */
const FIXTURE_SOURCES = [
  path.join(HERE, 'seed.py'),
  fileURLToPath(import.meta.url),
  path.join(HERE, '..', 'generator', 'model.ts'),
  path.join(HERE, '..', 'generator', 'random.ts'),
  path.join(HERE, '..', 'generator', 'ldif.ts'),
  path.join(HERE, '..', 'generator', 'manifest.ts'),
];

export async function sambaFixtureKey(users: number, seed: number): Promise<string> {
  return `samba-g${GENERATOR_VERSION}-${await hashFiles(FIXTURE_SOURCES)}-u${users}-s${seed}`;
}

/** Returns the cached provisioned+seeded folder for (users, seed), building it when missing. */
export async function sambaFixture(options: SambaFixtureOptions = {}): Promise<SambaFixture> {
  const users = options.users ?? 2000;
  const seed = options.seed ?? 1;
  const log = options.log ?? (() => undefined);
  await installTestPackages(log);
  const key = await sambaFixtureKey(users, seed);
  const dir = path.join(TEST_DATA_DIR, 'samba', key);
  const manifestFile = path.join(dir, 'nimbus-manifest.json');
  if (!options.rebuild && existsSync(manifestFile)) {
    return { dir, manifest: JSON.parse(await readFile(manifestFile, 'utf8')) as Manifest, built: false, timings: undefined };
  }
  const t0 = Date.now();
  const building = `${dir}.building-${process.pid}`;
  await removeAbandonedBuilds(path.dirname(dir));
  log(`samba fixture ${key}: provisioning`);
  const model = generateDirectory({ users, seed });
  const t1 = Date.now();
  const meta = await provisionSamba(building, model);
  const t2 = Date.now();
  log(`samba fixture ${key}: seeding ${model.userList.length} users, ${model.groupList.length} groups`);
  const { manifest } = await seedSamba(building, model);
  const t3 = Date.now();
  await writeFile(path.join(building, 'nimbus-fixture.json'), JSON.stringify(meta, null, 2));
  await writeFile(path.join(building, 'nimbus-manifest.json'), JSON.stringify(manifest, null, 1));
  await rm(dir, { recursive: true, force: true });
  // Older builds of the same size and seed (other generator version or sources) are dead weight.
  for (const name of await readdir(path.dirname(dir))) {
    if (name !== key && name.endsWith(`-u${users}-s${seed}`) && name.startsWith('samba-g')) {
      await rm(path.join(path.dirname(dir), name), { recursive: true, force: true });
    }
  }
  // Rename is atomic: a concurrent reader sees either no fixture or a complete one.
  await rename(building, dir);
  return {
    dir,
    manifest,
    built: true,
    timings: { generateMs: t1 - t0, provisionMs: t2 - t1, seedMs: t3 - t2, totalMs: Date.now() - t0 },
  };
}

/** Removes half-built fixtures whose builder process is gone (killed by a test timeout, ^C). */
async function removeAbandonedBuilds(parent: string): Promise<void> {
  await mkdir(parent, { recursive: true });
  for (const name of await readdir(parent)) {
    const m = /\.building-(\d+)$/.exec(name);
    if (m && (Number(m[1]) === process.pid || !pidAlive(Number(m[1])))) {
      await rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
}

/** Copies a cached fixture into a fresh temporary folder and points its smb.conf there. */
export async function copyFixture(fixtureDir: string, into?: string): Promise<string> {
  const dir = into ?? (await mkdtemp(path.join(os.tmpdir(), 'nimbus-samba-')));
  await copyDir(fixtureDir, dir);
  const meta = JSON.parse(await readFile(path.join(dir, 'nimbus-fixture.json'), 'utf8')) as FixtureMeta;
  const conf = path.join(dir, 'etc', 'smb.conf');
  const text = await readFile(conf, 'utf8');
  await writeFile(conf, text.split(meta.provisionedIn).join(dir));
  return dir;
}

export interface RunningSamba {
  pid: number;
  dir: string;
  url: string;
  ldapsUrl: string;
  /** CA certificate Samba generated for its LDAPS certificate (issued to NIMBUSDC.<domain>). */
  tlsCaFile: string;
  bindDN: string;
  password: string;
  baseDN: string;
  domainDnsName: string;
  logFile: string;
  stop(): Promise<void>;
}

const RUN_FILE = () => path.join(TEST_DATA_DIR, 'run', 'samba.json');

/** Stops a Samba a previous (crashed) run of ours left behind, identified by our run file. */
async function stopLeftover(log: (msg: string) => void): Promise<void> {
  let prev: { pid: number; dir: string } | undefined;
  try {
    prev = JSON.parse(await readFile(RUN_FILE(), 'utf8')) as { pid: number; dir: string };
  } catch {
    return;
  }
  if (pidAlive(prev.pid)) {
    // Only if that pid still is the samba we started on that folder (pids get reused).
    // Samba rewrites its command line ("samba: root process"), so check exe and cwd instead.
    const exe = await readlink(`/proc/${prev.pid}/exe`).catch(() => '');
    const cwd = await readlink(`/proc/${prev.pid}/cwd`).catch(() => '');
    if (path.basename(exe) === 'samba' && cwd === prev.dir) {
      log(`samba: stopping leftover pid ${prev.pid} from an earlier run`);
      await stopPid(prev.pid);
    }
  }
  // Its throwaway copy too (only our own temporary copies, never a cache folder).
  if (path.basename(prev.dir).startsWith('nimbus-samba-') && path.dirname(prev.dir) === os.tmpdir()) {
    await rm(prev.dir, { recursive: true, force: true });
  }
  await rm(RUN_FILE(), { force: true });
}

/** Starts samba on `dir` (a copy, never the cache) and resolves once a simple bind works. */
export async function startSamba(dir: string, opts: { log?: (msg: string) => void; timeoutMs?: number } = {}): Promise<RunningSamba> {
  const log = opts.log ?? (() => undefined);
  await stopLeftover(log);
  await assertPortFree(SAMBA_LDAP_PORT, 'Samba AD (LDAP)');
  await assertPortFree(SAMBA_LDAPS_PORT, 'Samba AD (LDAPS)');
  const meta = JSON.parse(await readFile(path.join(dir, 'nimbus-fixture.json'), 'utf8')) as FixtureMeta;
  const manifest = JSON.parse(await readFile(path.join(dir, 'nimbus-manifest.json'), 'utf8')) as Manifest;
  const logFile = path.join(dir, 'samba.log');
  const daemon = spawnDaemon(
    'samba',
    [
      '-s', path.join(dir, 'etc', 'smb.conf'),
      '-i', // foreground, log to stdout (our log file)
      '-M', 'single', // one process: its pid is all we have to stop
      '--option=ldap server require strong auth=no',
      '--option=server services=ldap,cldap,kdc',
    ],
    { cwd: dir, logFile },
  );
  const { pid } = daemon;
  await mkdir(path.dirname(RUN_FILE()), { recursive: true });
  await writeFile(RUN_FILE(), JSON.stringify({ pid, dir }));

  const baseDN = manifest.domain.baseDN;
  const bindDN = `CN=Administrator,CN=Users,${baseDN}`;
  const url = `ldap://127.0.0.1:${SAMBA_LDAP_PORT}`;
  const ok = await waitFor(async () => daemon.exited() !== undefined || (await canBind(url, bindDN, SAMBA_ADMIN_PASSWORD)), opts.timeoutMs ?? 60_000, 200);
  const exited = daemon.exited();
  if (exited || !ok) {
    daemon.release();
    await stopPid(pid);
    const tail = await logTail(logFile, 20);
    throw new Error(
      `Samba AD on ${dir} ${exited ? `exited (${exited})` : 'did not answer LDAP within the timeout'}. Last log lines (${logFile}):\n${tail}`,
    );
  }
  log(`samba: pid ${pid} answering on ${url} (realm ${meta.realm})`);
  return {
    pid,
    dir,
    url,
    ldapsUrl: `ldaps://127.0.0.1:${SAMBA_LDAPS_PORT}`,
    tlsCaFile: path.join(dir, 'private', 'tls', 'ca.pem'),
    bindDN,
    password: SAMBA_ADMIN_PASSWORD,
    baseDN,
    domainDnsName: manifest.domain.dnsName,
    logFile,
    stop: async () => {
      daemon.release();
      await stopPidAndWaitPorts(pid, [SAMBA_LDAP_PORT, SAMBA_LDAPS_PORT]);
      await rm(RUN_FILE(), { force: true });
    },
  };
}

/** Stops whatever Samba our run file names (CLI `stop`). */
export async function stopRecordedSamba(log: (msg: string) => void = console.log): Promise<void> {
  await stopLeftover(log);
}
