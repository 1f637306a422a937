// Benchmark: how long building and loading the big test directories takes (100k users into
// slapd with slapadd, 20k users into Samba AD through its Python bindings). Prints figures and
// appends them to bench/results/fixtures.json; never asserts on time.
// Usage: node --import tsx bench/fixtures.ts [--slapd-users N] [--samba-users N] [--seed S]
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from 'ldapts';
import { GENERATOR_VERSION, generateDirectory } from '../scripts/generator/model.ts';
import { installTestPackages } from '../scripts/install-packages.ts';
import { buildSlapdDir, startSlapd } from '../scripts/openldap/slapd.ts';
import { copyFixture, provisionSamba, seedSamba, startSamba } from '../scripts/samba/samba.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESULTS = path.join(HERE, 'results', 'fixtures.json');

const { values } = parseArgs({
  options: {
    'slapd-users': { type: 'string', default: '100000' },
    'samba-users': { type: 'string', default: '20000' },
    seed: { type: 'string', default: '1' },
  },
});
const seed = Number(values.seed);

async function countUsers(url: string, bindDN: string, password: string, base: string, filter: string): Promise<number> {
  const c = new Client({ url, timeout: 600_000 });
  await c.bind(bindDN, password);
  try {
    const { searchEntries } = await c.search(base, { filter, attributes: ['1.1'], paged: { pageSize: 1000 } });
    return searchEntries.length;
  } finally {
    await c.unbind();
  }
}

async function time<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = Date.now();
  const r = await fn();
  return [r, Date.now() - t];
}

async function benchSlapd(users: number) {
  const [model, generateMs] = await time(async () => generateDirectory({ users, seed }));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nimbus-bench-slapd-'));
  try {
    const r = await buildSlapdDir(dir, model);
    const [server, startMs] = await time(() => startSlapd(dir));
    try {
      const [found, searchMs] = await time(() => countUsers(server.url, server.bindDN, server.password, server.baseDN, '(objectClass=inetOrgPerson)'));
      return {
        users,
        objects: model.userList.length + model.groupList.length + model.ous.length,
        generateMs,
        writeLdifMs: r.writeLdifMs,
        ldifMB: +(r.ldifBytes / 1e6).toFixed(1),
        slapaddMs: r.slapaddMs,
        startMs,
        pagedSearchAllUsersMs: searchMs,
        usersFound: found,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchSamba(users: number) {
  const [model, generateMs] = await time(async () => generateDirectory({ users, seed }));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nimbus-bench-samba-'));
  let copy: string | undefined;
  try {
    const [meta, provisionMs] = await time(() => provisionSamba(dir, model));
    const [seeded, seedMs] = await time(() => seedSamba(dir, model));
    await writeFile(path.join(dir, 'nimbus-fixture.json'), JSON.stringify({ ...meta }));
    await writeFile(path.join(dir, 'nimbus-manifest.json'), JSON.stringify(seeded.manifest));
    const [copied, copyMs] = await time(() => copyFixture(dir));
    copy = copied;
    const [server, startMs] = await time(() => startSamba(copied));
    try {
      const [found, searchMs] = await time(() =>
        countUsers(server.url, server.bindDN, server.password, model.rootOU, '(&(objectClass=user)(!(objectClass=computer)))'),
      );
      return {
        users,
        objects: model.userList.length + model.groupList.length + model.ous.length,
        generateMs,
        provisionMs,
        seedMs,
        seedPythonSeconds: seeded.result.seconds,
        copyMs,
        startMs,
        pagedSearchAllUsersMs: searchMs,
        usersFound: found,
        refusedByDirectory: seeded.result.refused.length,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (copy) await rm(copy, { recursive: true, force: true });
  }
}

await installTestPackages((m) => console.error(m));
const slapd = await benchSlapd(Number(values['slapd-users']));
console.log('slapd (slapadd):', slapd);
const samba = await benchSamba(Number(values['samba-users']));
console.log('Samba AD (python bindings, batch_mode):', samba);

const record = {
  at: new Date().toISOString(),
  generatorVersion: GENERATOR_VERSION,
  seed,
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  slapd,
  samba,
};
await mkdir(path.dirname(RESULTS), { recursive: true });
let previous: unknown[] = [];
try {
  previous = JSON.parse(await readFile(RESULTS, 'utf8')) as unknown[];
} catch {
  previous = [];
}
await writeFile(RESULTS, `${JSON.stringify([...previous, record], null, 2)}\n`);
console.log(`appended to ${path.relative(process.cwd(), RESULTS)}`);
