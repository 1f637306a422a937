// Benchmark of the cloud directory (issue 2): seed 100k users through the store, create 2k
// more through $batch (with the password KDF, reported separately), list everything in
// pages of 999 following @odata.nextLink, and run a delta round after 1% changes.
// The server runs as its own process (`nimbus serve`), the client here, as in production.
// Usage: node --import tsx bench/cloud.ts [--users 100000] [--batch-users 2000]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cliActor } from '../src/cloud/services/context.ts';
import { openServices } from '../src/cloud/services/index.ts';
import { hashPassword } from '../src/cloud/services/passwords.ts';
import { ms, recordResults } from './results.ts';
import { seedUsers } from './seed.ts';

const { values: args } = parseArgs({ options: { users: { type: 'string', default: '100000' }, 'batch-users': { type: 'string', default: '2000' }, port: { type: 'string', default: '18480' } } });
const N = Number(args.users);
const B = Number(args['batch-users']);
const port = Number(args.port);
const base = `http://127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), 'nimbus-bench-'));
const figures: Record<string, unknown> = { users: N, batchUsers: B };

// 1. Seed through the store.
let t0 = process.hrtime.bigint();
const svc = await openServices(dataDir);
const tenant = await svc.tenants.create('bench');
const { app, secret } = await svc.apps.create(cliActor(tenant.id), 'bench', 'readwrite');
await seedUsers(svc.db, tenant.id, tenant.initial_domain, N);
await svc.close();
figures.seedMs = Math.round(ms(t0));
figures.seedUsersPerSec = Math.round(N / (ms(t0) / 1000));

// KDF cost on its own: scrypt N=2^15, r=8 (what every API-created password pays).
t0 = process.hrtime.bigint();
const KDF_RUNS = 40;
for (let i = 0; i < KDF_RUNS; i++) await hashPassword(`Bench!Passw0rd${i}`);
figures.kdfMsPerHashSequential = +(ms(t0) / KDF_RUNS).toFixed(1);
t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: KDF_RUNS }, (_, i) => hashPassword(`Bench!Passw0rd${i}`)));
figures.kdfHashesPerSecParallel = Math.round(KDF_RUNS / (ms(t0) / 1000));

// 2. Start the server as its own process.
const server = spawn(process.execPath, [join(import.meta.dirname, '..', 'bin', 'nimbus.js'), 'serve', '--port', String(port), '--data', dataDir], {
  env: { ...process.env, NIMBUS_LOG_LEVEL: 'warn' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      /* not up yet */
    }
    if (i > 200) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const tok = (await (
    await fetch(`${base}/bench/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: app.client_id, client_secret: secret, scope: 'https://graph.microsoft.com/.default' }),
    })
  ).json()) as { access_token: string };
  const H = { authorization: `Bearer ${tok.access_token}`, 'content-type': 'application/json' };

  const batch = async (requests: unknown[]) => {
    const r = await fetch(`${base}/v1.0/$batch`, { method: 'POST', headers: H, body: JSON.stringify({ requests }) });
    const body = (await r.json()) as { responses: { status: number; body?: unknown }[] };
    const bad = body.responses.find((x) => x.status >= 400);
    if (bad) throw new Error(`batch item failed: ${JSON.stringify(bad)}`);
  };

  // 3. 2k users through $batch (20 per batch, 2 batches in flight).
  t0 = process.hrtime.bigint();
  const batches: unknown[][] = [];
  for (let i = 0; i < B; i += 20) {
    batches.push(
      Array.from({ length: Math.min(20, B - i) }, (_, j) => ({
        id: String(j + 1),
        method: 'POST',
        url: '/users',
        headers: { 'content-type': 'application/json' },
        body: { accountEnabled: true, displayName: `Batch ${i + j}`, mailNickname: `batch${i + j}`, userPrincipalName: `batch${i + j}@${tenant.initial_domain}`, passwordProfile: { password: `Bench!Passw0rd${i + j}` } },
      })),
    );
  }
  for (let i = 0; i < batches.length; i += 2) await Promise.all(batches.slice(i, i + 2).map(batch));
  figures.batchCreateMs = Math.round(ms(t0));
  figures.batchCreateUsersPerSec = Math.round(B / (ms(t0) / 1000));

  // 4. List every user in pages of 999 with a plain HTTP client following @odata.nextLink.
  const listAll = async () => {
    let url: string | undefined = `${base}/v1.0/users?$top=999`;
    let n = 0;
    let pages = 0;
    while (url) {
      const page = (await (await fetch(url, { headers: H })).json()) as { value: unknown[]; '@odata.nextLink'?: string };
      n += page.value.length;
      pages++;
      url = page['@odata.nextLink'];
    }
    return { n, pages };
  };
  await listAll(); // warm-up: page cache and JIT
  t0 = process.hrtime.bigint();
  const listed = await listAll();
  figures.listMs = Math.round(ms(t0));
  figures.listPages = listed.pages;
  if (listed.n !== N + B) throw new Error(`listed ${listed.n} users, expected ${N + B}`);

  // 5. Delta: initial round to a deltaLink, 1% changes, then the next round.
  const deltaRound = async (start: string, maxPage?: number) => {
    let url: string | undefined = start;
    let n = 0;
    let link = '';
    while (url) {
      const page = (await (await fetch(url, { headers: { ...H, ...(maxPage ? { prefer: `odata.maxpagesize=${maxPage}` } : {}) } })).json()) as { value: unknown[]; '@odata.nextLink'?: string; '@odata.deltaLink'?: string };
      n += page.value.length;
      url = page['@odata.nextLink'];
      if (page['@odata.deltaLink']) link = page['@odata.deltaLink'];
    }
    return { n, link };
  };
  t0 = process.hrtime.bigint();
  const initial = await deltaRound(`${base}/v1.0/users/delta?$select=displayName,userPrincipalName,jobTitle`, 999);
  figures.deltaInitialMs = Math.round(ms(t0));

  const changes = Math.round((N + B) / 100);
  const page = (await (await fetch(`${base}/v1.0/users?$top=999&$select=id`, { headers: H })).json()) as { value: { id: string }[] };
  let ids = page.value.map((u) => u.id);
  let next = (page as { '@odata.nextLink'?: string })['@odata.nextLink'];
  while (ids.length < changes && next) {
    const p = (await (await fetch(next, { headers: H })).json()) as { value: { id: string }[]; '@odata.nextLink'?: string };
    ids = ids.concat(p.value.map((u) => u.id));
    next = p['@odata.nextLink'];
  }
  ids = ids.slice(0, changes);
  for (let i = 0; i < ids.length; i += 20)
    await batch(ids.slice(i, i + 20).map((id, j) => ({ id: String(j + 1), method: 'PATCH', url: `/users/${id}`, headers: { 'content-type': 'application/json' }, body: { jobTitle: 'Changed' } })));

  t0 = process.hrtime.bigint();
  const d1 = await deltaRound(initial.link);
  figures.delta1pctMs = Math.round(ms(t0));
  figures.delta1pctChanges = d1.n;
  if (d1.n !== changes) throw new Error(`delta returned ${d1.n} changes, expected ${changes}`);
  t0 = process.hrtime.bigint();
  const d2 = await deltaRound(d1.link);
  figures.deltaNoChangeMs = Math.round(ms(t0));
  if (d2.n !== 0) throw new Error(`no-change delta returned ${d2.n}`);
  figures.goals = { listUnder2s: (figures.listMs as number) < 2000, delta1pctUnder200ms: (figures.delta1pctMs as number) < 200 };
  recordResults('cloud', figures);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
