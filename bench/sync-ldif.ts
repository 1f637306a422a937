// Benchmark: full sync of a generated AD-flavoured LDIF (default 100k users + 5k groups) into
// a cloud directory, in-process (the agent on a worker thread, as `nimbus start` runs it) and
// over HTTP. Each sync runs in its own child process so peak RSS (process.resourceUsage().maxRSS,
// worker thread included) is the sync's own. Prints figures and appends them to
// bench/results/sync-ldif.jsonl; never asserts on time.
// Usage: node --import tsx bench/sync-ldif.ts [--users N] [--groups N] [--seed S] [--only inprocess|http] [--keep DIR] [--source]
// (Runs compiled, as `nimbus` does: see bench/compiled.ts; --source: the TypeScript through tsx.)
// (--keep DIR: generate the LDIF into DIR once and reuse it on later runs with the same sizes.)
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { adLdif, ldifLine } from '../scripts/generator/ldif.ts';
import { dnOf, generateDirectory } from '../scripts/generator/model.ts';
import { startCloud, type TestCloud } from '../test/helpers/cloud.ts';
import { syncTenant, writeConfig, writeLdif } from '../test/sync/helpers.ts';
import { openSyncAgent } from '../src/sync/agent.ts';
import { openSyncAgentThread } from '../src/sync/agent-thread.ts';
import { loadSyncConfig } from '../src/sync/config.ts';
import { createInProcessExporter } from '../src/sync/engine/exporter-inprocess.ts';
import type { Phase } from '../src/sync/engine/run.ts';
import { tuneHeap } from '../src/shared/heap.ts';
import { RESULTS_DIR, runCompiled } from './compiled.ts';

runCompiled(import.meta.url);

const RESULTS = path.join(RESULTS_DIR, 'sync-ldif.jsonl');
const SELF = fileURLToPath(import.meta.url);

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '100000' },
    groups: { type: 'string', default: '5000' },
    seed: { type: 'string', default: '1' },
    only: { type: 'string' },
    keep: { type: 'string' },
    source: { type: 'boolean' },
    // Internal: the child process roles.
    child: { type: 'string' },
    ldif: { type: 'string' },
    config: { type: 'string' },
    dir: { type: 'string' },
  },
});
/** How a child runs this file: compiled as it is, the sources through tsx (--source). */
const RUN_SELF = [...(SELF.endsWith('.ts') ? ['--import', 'tsx'] : []), SELF, ...(values.source ? ['--source'] : [])];

/** The generator's directory plus `groups` extra groups of 20 users each (the generator makes ~25). */
async function generate(file: string, users: number, groups: number, seed: number): Promise<number> {
  const model = generateDirectory({ users, seed });
  await writeLdif(file, adLdif(model));
  const extra = Math.max(0, groups - model.groupList.length);
  const dns = model.userList.filter((u) => u.key.startsWith('u')).map((u) => dnOf(u));
  const chunks: string[] = [];
  for (let i = 0; i < extra; i++) {
    const guid = createHash('sha1').update(`bench-group-${seed}-${i}`).digest().subarray(0, 16);
    const lines = [`dn: CN=Bench Group ${i},OU=Groups,${model.rootOU}`, 'objectClass: top', 'objectClass: group', `cn: Bench Group ${i}`, `sAMAccountName: bench-g${i}`, 'groupType: -2147483646'];
    for (let m = 0; m < 20; m++) lines.push(ldifLine('member', dns[(i * 7919 + m * 104729) % dns.length]!));
    lines.push(ldifLine('objectGUID', guid));
    chunks.push(`${lines.join('\n')}\n\n`);
  }
  await writeLdif(`${file}.groups`, chunks);
  execFileSync('sh', ['-c', `cat "${file}.groups" >> "${file}" && rm "${file}.groups"`]);
  return model.userList.length + model.groupList.length + extra;
}

interface Figures {
  mode: string;
  seconds: number;
  objectsPerSecond: number;
  peakRssMB: number;
  /** User + system CPU of the process (the agent's alone over HTTP): more than `seconds` means both cores worked. */
  cpuSeconds: number;
  /** Over HTTP: the cloud directory's CPU (the parent process) during the run. */
  cloudCpuSeconds?: number;
  phases: Partial<Record<Phase, number>>;
  counts: unknown;
  status: string;
}

/** Child: one full sync; the in-process child hosts its own cloud directory. */
async function child(mode: 'inprocess' | 'http'): Promise<void> {
  // The heap setting the nimbus command applies (src/cli/main.ts), so peak RSS is the product's.
  tuneHeap();
  const phases: Partial<Record<Phase, number>> = {};
  let current: Phase | undefined;
  let at = 0;
  const onProgress = (p: { phase: Phase }) => {
    if (p.phase === current) return;
    const t = performance.now();
    if (current) phases[current] = (phases[current] ?? 0) + (t - at) / 1000;
    current = p.phase;
    at = t;
  };
  let cloud: TestCloud | undefined;
  let agentConfig;
  let exporter;
  if (mode === 'http') agentConfig = loadSyncConfig({ file: values.config!, env: {} });
  else {
    cloud = await startCloud();
    const t = await syncTenant(cloud, 'bench');
    agentConfig = (await writeConfig(values.dir!, cloud, t, { ldif: values.ldif!, sync: { deletionThreshold: 500, dataDir: './agent-inprocess' } })).config;
    exporter = await createInProcessExporter(cloud.svc, 'bench');
  }
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  // In-process as `nimbus start` runs it: the agent on its own thread, the cloud directory on this one.
  const agent = exporter ? await openSyncAgentThread(agentConfig, { exporter }) : await openSyncAgent(agentConfig);
  const r = await agent.run({ onProgress });
  await agent.close();
  const seconds = (performance.now() - start) / 1000;
  if (current) phases[current] = (phases[current] ?? 0) + (performance.now() - at) / 1000;
  const objects = r.counts.adds + r.counts.updates + r.counts.unchanged;
  const out: Figures = { mode, seconds, objectsPerSecond: Math.round(objects / seconds), peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), cpuSeconds: Number(((process.cpuUsage(cpu0).user + process.cpuUsage(cpu0).system) / 1e6).toFixed(1)), phases, counts: r.counts, status: r.status };
  await cloud?.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  if (values.child) return child(values.child as 'inprocess' | 'http');
  const users = Number(values.users);
  const groups = Number(values.groups);
  const seed = Number(values.seed);
  if (values.only && values.only !== 'inprocess' && values.only !== 'http') throw new Error('--only takes inprocess or http');
  const dir = values.keep ? path.resolve(values.keep) : path.join(os.tmpdir(), `nimbus-bench-sync-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const ldif = path.join(dir, `export-${users}-${groups}-${seed}.ldif`);
  const totalFile = `${ldif}.entries`;
  const t = performance.now();
  let total: number;
  if (values.keep && existsSync(totalFile)) {
    total = Number(readFileSync(totalFile, 'utf8'));
    for (const d of ['agent-inprocess', 'agent-http']) rmSync(path.join(dir, d), { recursive: true, force: true });
  } else {
    total = await generate(ldif, users, groups, seed);
    writeFileSync(totalFile, String(total));
    console.log(`generated ${total} entries (${(statSync(ldif).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }

  const inProcess = (): Figures => {
    const out = execFileSync(process.execPath, [...RUN_SELF, '--child', 'inprocess', '--ldif', ldif, '--dir', dir], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
    return JSON.parse(out.trim().split('\n').pop()!) as Figures;
  };
  // HTTP: the cloud directory lives in this (parent) process, the agent in the child.
  const overHttp = async (): Promise<Figures> => {
    const cloud = await startCloud();
    const tenant = await syncTenant(cloud, 'bench');
    const { file } = await writeConfig(dir, cloud, tenant, { ldif, sync: { dataDir: './agent-http' } });
    try {
      const cpu0 = process.cpuUsage();
      // execFile, not execFileSync: that would block this process's event loop, and with it the HTTP server.
      const { stdout } = await promisify(execFile)(process.execPath, [...RUN_SELF, '--child', 'http', '--config', file, '--ldif', ldif, '--dir', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
      const cpu = process.cpuUsage(cpu0);
      return { ...(JSON.parse(stdout.trim().split('\n').pop()!) as Figures), cloudCpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(1)) };
    } finally {
      await cloud.close();
    }
  };
  const results: Figures[] = [];
  if (values.only !== 'http') results.push(inProcess());
  if (values.only !== 'inprocess') results.push(await overHttp());

  const record = { at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, users, groups, entries: total, results };
  for (const r of results) console.log(`${r.mode.padEnd(9)} ${r.status}: ${r.seconds.toFixed(1)} s, ${r.objectsPerSecond} objects/s, CPU ${r.cpuSeconds} s${r.cloudCpuSeconds !== undefined ? ` (+ cloud ${r.cloudCpuSeconds} s)` : ''}, peak RSS ${r.peakRssMB} MB, phases ${JSON.stringify(Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, Number(v.toFixed(2))])))}`);
  mkdirSync(path.dirname(RESULTS), { recursive: true });
  appendFileSync(RESULTS, `${JSON.stringify(record)}\n`);
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
}

await main();
