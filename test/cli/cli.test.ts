// The real `nimbus` CLI, spawned as a user would run it (node bin/nimbus.js ... --data DIR),
// with no NIMBUS_* variables leaking in from the environment. Each spawn costs about a
// second, so each test checks a whole flow, and results are cross-checked in the store.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLOBAL_ADMIN } from '../../src/cloud/services/directory.ts';
import { openServices, type Services } from '../../src/cloud/services/index.ts';
import { verifyPassword } from '../../src/cloud/services/passwords.ts';
import { runNimbus, startNimbus } from '../helpers/nimbus-cli.ts';

const start = startNimbus;
const nimbus = runNimbus;

/** Runs and expects exit 0; returns stdout parsed as JSON. */
async function json(args: string[], env: Record<string, string> = {}): Promise<any> {
  const r = await nimbus([...args, '--json'], env);
  expect(r.code, `nimbus ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

/** Opens the store the CLI wrote, to check what a command really did. */
async function inStore<T>(dataDir: string, fn: (svc: Services) => Promise<T>): Promise<T> {
  const svc = await openServices(dataDir);
  try {
    return await fn(svc);
  } finally {
    await svc.close();
  }
}

// Spawning the CLI takes about a second per command; vitest's per-project default (5 s) is too short.
describe('nimbus CLI', { timeout: 60_000 }, () => {
  let dir: string;
  let data: string;
  const d = (...args: string[]) => ['--data', data, ...args];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nimbus-cli-'));
    data = join(dir, 'data');
    const t = await json(d('tenant', 'create', 'acme'));
    expect(t.initialDomain).toBe('acme.onnimbus.net');
  }, 60_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('tenant create --json prints the id and initial domain; a bad name exits 1 with a message', async () => {
    const t = await json(d('tenant', 'create', 'globex'));
    expect(t).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), initialDomain: 'globex.onnimbus.net' });
    const stored = await inStore(data, (svc) => svc.tenants.resolve('globex'));
    expect(stored?.id).toBe(t.id);

    const bad = await nimbus(d('tenant', 'create', 'Bad_Name!'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: Invalid tenant name 'Bad_Name!'/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(bad.stdout).toBe('');
    expect(await inStore(data, async (svc) => (await svc.tenants.list()).map((x) => x.name))).toEqual(['acme', 'globex']);
  });

  it('domain add, verify (DNS and --force), list and remove', async () => {
    const added = await json(d('domain', 'add', 'Contoso.Example', '--tenant', 'acme'));
    expect(added).toMatchObject({ id: 'contoso.example', isVerified: false, isDefault: false });
    expect(added.verificationDnsRecords[0].text).toMatch(/^nimbus-verification=[0-9a-f]+$/);

    // Without the TXT record (the resolver here refuses), verification fails and changes nothing.
    const failed = await nimbus(d('domain', 'verify', 'contoso.example', '--tenant', 'acme'), { NIMBUS_DNS_SERVERS: '127.0.0.1:1' });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(added.verificationDnsRecords[0].text);

    const forced = await json(d('domain', 'verify', 'contoso.example', '--tenant', 'acme', '--force'));
    expect(forced).toMatchObject({ id: 'contoso.example', isVerified: true });

    const list = await json(d('domain', 'list', '--tenant', 'acme'));
    expect(list.map((x: any) => [x.id, x.isVerified, x.isDefault, x.isInitial])).toEqual([
      ['acme.onnimbus.net', true, true, true],
      ['contoso.example', true, false, false],
    ]);

    const removed = await nimbus(d('domain', 'remove', 'contoso.example', '--tenant', 'acme'));
    expect(removed.code, removed.stderr).toBe(0);
    expect(await inStore(data, async (svc) => (await svc.domains.list((await svc.tenants.require('acme')).id)).map((x) => x.name))).toEqual(['acme.onnimbus.net']);

    const initial = await nimbus(d('domain', 'remove', 'acme.onnimbus.net', '--tenant', 'acme'));
    expect(initial.code).toBe(1);
    expect(initial.stderr).toMatch(/initial domain/);
  });

  it('app create --json prints the secret once; app list never prints it', async () => {
    const app = await json(d('app', 'create', '--tenant', 'acme', '--name', 'sync-agent', '--role', 'readwrite'));
    expect(app.clientId).toMatch(/^[0-9a-f-]{36}$/);
    expect(app.clientSecret).toMatch(/^nbs_[A-Za-z0-9_-]{40,}$/);
    const ok = await inStore(data, async (svc) => svc.apps.authenticate((await svc.tenants.require('acme')).id, app.clientId, app.clientSecret));
    expect(ok.app?.client_id).toBe(app.clientId);

    const [human, listed] = await Promise.all([nimbus(d('app', 'list', '--tenant', 'acme')), nimbus(d('app', 'list', '--tenant', 'acme', '--json'))]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(app.clientId);
    expect(human.stdout).toContain('sync-agent');
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout);
    expect(rows).toEqual([expect.objectContaining({ clientId: app.clientId, name: 'sync-agent', role: 'readwrite' })]);
    for (const out of [human.stdout, listed.stdout, human.stderr, listed.stderr]) expect(out).not.toContain(app.clientSecret);
    expect(rows[0].clientSecret).toBeUndefined();
  });

  it('dirsync enable needs confirmation without a terminal; --yes activates; status --json shows it', async () => {
    const refused = await nimbus(d('dirsync', 'enable', '--tenant', 'acme'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes/);
    const orgBefore = await inStore(data, async (svc) => svc.organization.get((await svc.tenants.require('acme')).id));
    expect(orgBefore.onPremisesSyncEnabled).toBeNull();

    const enabled = await json(d('dirsync', 'enable', '--tenant', 'acme', '--yes'));
    expect(enabled).toMatchObject({ onPremisesSyncEnabled: true, changed: true });

    const status = await json(d('dirsync', 'status', '--tenant', 'acme'));
    expect(status).toMatchObject({ tenant: 'acme', onPremisesSyncEnabled: true, onPremisesLastSyncDateTime: null, reactivationBlockedUntil: null });
  });

  it('admin create --password-file creates a Global Administrator with that password, never printing it', async () => {
    const pwFile = join(dir, 'admin-password');
    const password = 'C0rrect-Horse-Battery!';
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    const admin = await json(d('admin', 'create', '--tenant', 'acme', '--upn', 'boss@acme.onnimbus.net', '--password-file', pwFile));
    expect(admin).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), userPrincipalName: 'boss@acme.onnimbus.net', roles: ['Global Administrator'] });

    const { roles, hash } = await inStore(data, async (svc) => {
      const t = await svc.tenants.require('acme');
      const u = await svc.users.load(t.id, admin.id as string);
      return { roles: await svc.directory.rolesOf(t.id, u.id), hash: u.password_hash };
    });
    expect(roles).toEqual([GLOBAL_ADMIN]);
    // The file's trailing newline is not part of the password.
    expect(await verifyPassword(password, hash)).toBe(true);
    expect(await verifyPassword(`${password}\n`, hash)).toBe(false);
  });

  it('exits 2 on an unknown command or option, 0 on --help of every command group', async () => {
    const [unknown, badOption] = await Promise.all([nimbus(d('frobnicate')), nimbus(d('tenant', 'create', 'x', '--no-such-option'))]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/unknown option/);

    const groups = ['serve', 'start', 'tenant', 'domain', 'app', 'dirsync', 'admin'];
    const runs = await Promise.all([nimbus(['--help']), ...groups.map((g) => nimbus([g, '--help']))]);
    expect(runs[0].code).toBe(0);
    for (const g of groups) expect(runs[0].stdout).toContain(g);
    groups.forEach((g, i) => {
      const r = runs[i + 1]!;
      expect(r.code, g).toBe(0);
      expect(r.stdout, g).toContain(`Usage: nimbus ${g}`);
    });
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('nimbus serve', { timeout: 60_000 }, () => {
  let dir: string;
  let server: ChildProcessWithoutNullStreams | undefined;
  afterAll(() => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with a generated certificate, answers /healthz, and exits 0 on SIGTERM', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nimbus-serve-'));
    const data = join(dir, 'data');
    const port = await freePort();
    const child = start(['--data', data, 'serve', '--port', String(port), '--tls-self-signed'], { NIMBUS_LOG_LEVEL: 'warn' });
    server = child;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

    const url = `https://127.0.0.1:${port}`;
    const certFile = join(data, 'tls-cert.pem');
    let health: { status: number; body: unknown } | undefined;
    for (let i = 0; i < 300 && !health; i++) {
      if (child.exitCode !== null) throw new Error(`nimbus serve exited early (${child.exitCode}): ${stderr}`);
      if (stdout.includes('listening on') && existsSync(certFile)) {
        const agent = new Agent({ connect: { ca: readFileSync(certFile, 'utf8') } });
        try {
          const res = await fetch(`${url}/healthz`, { dispatcher: agent });
          health = { status: res.status, body: await res.json() };
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        } finally {
          await agent.close();
        }
      } else {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(health).toEqual({ status: 200, body: { status: 'ok' } });
    expect(stdout).toContain(`listening on ${url}`);
    expect(stdout).toContain(certFile);

    // The certificate is not trusted by default: TLS verification is on.
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();

    // A second server on the same port is a usage error (exit 2), not a crash.
    const clash = await nimbus(['--data', join(dir, 'other'), 'serve', '--port', String(port)]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/already in use/);

    child.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
  });
});
