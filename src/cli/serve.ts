// `nimbus serve` runs the cloud directory; `nimbus start` runs it on the embedded default
// with a ready-to-use demo tenant (the sync-engine issue adds the sample sync to it).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { generate } from 'selfsigned';
import { buildServer } from '../server.ts';
import { cliActor } from '../cloud/services/context.ts';
import type { Services } from '../cloud/services/index.ts';
import { openServices } from '../cloud/services/index.ts';
import { directoryConfigFromEnv } from '../cloud/config.ts';
import { resolveDataDir } from '../cloud/store/store.ts';
import { pruneSyncRuns } from '../cloud/sync/sync-run-retention.ts';
import { describeRun, startDemo } from '../demo/embedded.ts';
import { action, globals, readSecretFile, UsageError } from './common.ts';

interface ServeOpts {
  port: string;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsSelfSigned?: boolean;
}

function tlsFor(opts: ServeOpts, dataDir: string): { https?: { cert: string; key: string }; note?: string } {
  if (opts.tlsSelfSigned && (opts.tlsCert || opts.tlsKey)) throw new UsageError('Use either --tls-cert/--tls-key or --tls-self-signed, not both.');
  if (opts.tlsCert || opts.tlsKey) {
    if (!opts.tlsCert || !opts.tlsKey) throw new UsageError('--tls-cert and --tls-key go together: give both files.');
    return { https: { cert: readSecretFile(opts.tlsCert, 'TLS certificate'), key: readSecretFile(opts.tlsKey, 'TLS key') } };
  }
  if (!opts.tlsSelfSigned) return {};
  const certFile = join(dataDir, 'tls-cert.pem');
  const keyFile = join(dataDir, 'tls-key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    // The store creates the data folder later; the certificate is written before it opens.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const pems = generate([{ name: 'commonName', value: 'localhost' }], {
      days: 825,
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] },
      ],
    });
    writeFileSync(keyFile, pems.private, { mode: 0o600 });
    writeFileSync(certFile, pems.cert);
  }
  return { https: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }, note: `self-signed certificate: ${certFile} (trust it with NODE_EXTRA_CA_CERTS or target.caFile)` };
}

interface Prepared {
  lines: string[];
  /** Called on shutdown, before the server closes. */
  stop?: () => Promise<void>;
}

async function run(cmd: Command, opts: ServeOpts, prepare?: (svc: Services, url: string) => Promise<Prepared>, defaultLogLevel = 'info'): Promise<void> {
  const dataDir = resolveDataDir(globals(cmd).data);
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`Invalid --port '${opts.port}': give a number from 0 to 65535.`);
  const tls = tlsFor(opts, dataDir);
  const svc = await openServices(dataDir, { config: directoryConfigFromEnv() });
  const app = await buildServer(svc, {
    logger: { level: process.env.NIMBUS_LOG_LEVEL ?? defaultLogLevel, redact: ['req.headers.authorization', 'req.headers.cookie'] },
    https: tls.https,
  });
  try {
    await app.listen({ port, host: opts.host });
  } catch (err) {
    await svc.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`Port ${port} on ${opts.host} is already in use. Stop the other process or pick another port with --port.`);
    throw err;
  }
  const addr = app.server.address();
  const url = `${tls.https ? 'https' : 'http'}://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${typeof addr === 'object' && addr ? addr.port : port}`;
  const lines = [`Nimbus cloud directory listening on ${url} (data: ${dataDir})`, ...(tls.note ? [tls.note] : []), `Health: ${url}/healthz   Graph API: ${url}/v1.0   Admin portal: ${url}/portal/`];
  process.stdout.write(`${lines.join('\n')}\n`);
  let prepared: Prepared | undefined;
  try {
    prepared = prepare ? await prepare(svc, url) : undefined;
  } catch (err) {
    // Nothing may keep the process alive after a failed start.
    await app.close();
    await svc.close();
    throw err;
  }
  if (prepared) process.stdout.write(`${prepared.lines.join('\n')}\n`);

  // Items past the recycle-bin period are purged hourly.
  const purge = setInterval(() => {
    void svc.directory.purgeExpired().catch((err: unknown) => app.log.error({ err }, 'purge failed'));
    void pruneSyncRuns(svc.db, svc.clock.now()).catch((err: unknown) => app.log.error({ err }, 'sync run prune failed'));
  }, 3_600_000);
  purge.unref();
  void svc.directory.purgeExpired();

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  clearInterval(purge);
  await prepared?.stop?.();
  await app.close();
  await svc.close();
}

function serveOptions(c: Command): Command {
  return c
    .option('--port <port>', 'TCP port (env NIMBUS_PORT)', process.env.NIMBUS_PORT ?? '8080')
    .option('--host <address>', 'address to listen on; 0.0.0.0 exposes it to the network (env NIMBUS_HOST)', process.env.NIMBUS_HOST ?? '127.0.0.1')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate')
    .option('--tls-key <file>', 'and this PEM private key')
    .option('--tls-self-signed', 'serve HTTPS with a certificate generated into the data folder');
}

/** The demo tenant of `nimbus start`, created on first run, its app secret kept in the data folder. */
async function prepareDemo(svc: Services, url: string, dataDir: string): Promise<Prepared> {
  const name = process.env.NIMBUS_DEMO_TENANT ?? 'contoso';
  // The demo tenant, its domain, users and the sync activation are set up by startDemo,
  // which also builds the embedded agent.
  const demo = await startDemo(svc, dataDir, name, process.env.NIMBUS_SYNC_INTERVAL ? { interval: process.env.NIMBUS_SYNC_INTERVAL } : {});
  const t = demo.tenant;
  const secretFile = join(dataDir, 'demo-app.secret');
  const apps = await svc.apps.list(t.id);
  let app = apps.find((a) => a.name === 'nimbus-demo');
  if (!app || !existsSync(secretFile)) {
    if (app) await svc.apps.remove(cliActor(t.id), app.client_id);
    const created = await svc.apps.create(cliActor(t.id), 'nimbus-demo', 'readwrite');
    app = created.app;
    writeFileSync(secretFile, created.secret, { mode: 0o600 }); // no newline: curl --data-urlencode @file keeps it
    chmodSync(secretFile, 0o600);
  }
  // The embedded agent syncs the bundled sample directory now; then the scheduler runs it on
  // its interval and when the portal asks ("Sync now", "allow these deletes").
  const intervalMs = demo.intervalMs;
  const first = await demo.syncOnce();
  const scheduler = demo.schedule((c) => {
    if (c.trigger === 'start') return; // right after the first sync: nothing new to say
    if (c.report) process.stdout.write(`${new Date().toISOString()} ${describeRun(c.report)}${c.trigger === 'request' ? ' (requested in the portal)' : ''}\n`);
    else process.stderr.write(`sync failed: ${c.error?.message ?? 'unknown error'}\n`);
  });
  const lines = [
    '',
    ...demo.lines,
    `First ${describeRun(first)}`,
    `The agent syncs again every ${intervalMs / 1000} s (NIMBUS_SYNC_INTERVAL), and when asked with "Sync now" in the portal.`,
    `Admin portal: ${url}/ (sign in as admin@${t.initial_domain}, password in ${join(dataDir, 'demo-admin.password')})`,
    `Demo app:    client id ${app.client_id} (readwrite), secret in ${secretFile}`,
    'Try it:',
    `  TOKEN=$(curl -s ${url}/${t.name}/oauth2/v2.0/token -d grant_type=client_credentials -d client_id=${app.client_id} \\`,
    `          --data-urlencode client_secret@${secretFile} -d scope=https://graph.microsoft.com/.default | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')`,
    `  curl -s -H "Authorization: Bearer $TOKEN" ${url}/v1.0/organization`,
    'Press Ctrl-C to stop.',
  ];
  return {
    lines,
    stop: async () => {
      scheduler.stop('shutdown');
      await scheduler.done;
      await demo.close();
    },
  };
}

export function serveCommands(program: Command): void {
  serveOptions(program.command('serve').description('run the cloud directory (Graph API, OAuth2 token endpoint) until stopped')).action(
    action(async (opts: ServeOpts, cmd: Command) => run(cmd, opts)),
  );
  serveOptions(program.command('start').description('run everything on the embedded default: the cloud directory, a demo tenant, and an agent syncing the bundled sample directory')).action(
    // The demo's output is read by a person: request logs only at warn unless asked for.
    action(async (opts: ServeOpts, cmd: Command) => run(cmd, opts, (svc, url) => prepareDemo(svc, url, resolveDataDir(globals(cmd).data)), 'warn')),
  );
}
