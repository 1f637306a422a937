// `nimbus operator create|list|remove` through the real CLI, and the operator signing in to the
// portal of a server opened on the same data folder; removing the operator ends the session.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/server.ts';
import { openServices, type Services } from '../../src/cloud/services/index.ts';
import { PortalClient } from './helpers.ts';

const run = promisify(execFile);
const BIN = resolve(import.meta.dirname, '../../bin/nimbus.js');
const dir = mkdtempSync(join(tmpdir(), 'nimbus-operator-'));
const pwFile = join(dir, 'pw');
const PASSWORD = 'Op3rator!Secret';
const nimbus = (...args: string[]) => run(process.execPath, [BIN, '--data', dir, ...args], { env: { ...process.env, NIMBUS_OPERATOR_PASSWORD: '' } }).then(
  (r) => ({ code: 0, ...r }),
  (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
);

let svc: Services;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  writeFileSync(pwFile, PASSWORD, { mode: 0o600 });
});

afterAll(async () => {
  await app?.close();
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('nimbus operator', () => {
  it('creates an operator from a password file, never printing the password', async () => {
    const r = await nimbus('operator', 'create', 'ops', '--password-file', pwFile, '--json');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out.name).toBe('ops');
    expect(r.stdout).not.toContain(PASSWORD);
    const again = await nimbus('operator', 'create', 'ops', '--password-file', pwFile);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("An operator named 'ops' already exists");
    const bad = await nimbus('operator', 'create', 'ops@example.com', '--password-file', pwFile);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("no '@'");
    const list = await nimbus('operator', 'list', '--json');
    expect((JSON.parse(list.stdout) as { name: string }[]).map((o) => o.name)).toEqual(['ops']);
  });

  it('lets the operator sign in to the portal; removing the operator ends the session', async () => {
    svc = await openServices(dir);
    await svc.tenants.create('one');
    await svc.tenants.create('two');
    app = await buildServer(svc);
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const c = new PortalClient(url);
    expect((await c.signIn('ops', PASSWORD)).status).toBe(303);
    const page = await c.get('/portal/');
    expect(page.text).toContain('one.onnimbus.net');
    expect(page.text).toContain('two.onnimbus.net');
    const rm = await nimbus('operator', 'remove', 'ops');
    expect(rm.code).toBe(0);
    expect((await c.get('/portal/')).status).toBe(303);
    expect((await nimbus('operator', 'remove', 'ops')).code).toBe(1);
  });
});
