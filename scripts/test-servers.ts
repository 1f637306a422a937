// Command line for the real test servers and the generator, used by npm scripts:
//   install | samba [--users N] [--seed S] | openldap [...] | stop | generate --format F --out FILE | fixture samba|openldap
import path from 'node:path';
import { parseArgs } from 'node:util';
import { installTestPackages } from './install-packages.ts';
import { writeChunks } from './lib/files.ts';
import { adLdif, openLdapLdif } from './generator/ldif.ts';
import { buildManifest } from './generator/manifest.ts';
import { generateDirectory } from './generator/model.ts';
import { copySlapdFixture, openLdapFixture, startSlapd } from './openldap/slapd.ts';
import { copyFixture, sambaFixture, startSamba, stopRecordedSamba } from './samba/samba.ts';
import { writeFile } from 'node:fs/promises';

const USAGE = `usage: tsx scripts/test-servers.ts <command> [options]
  install                       install samba, samba-ad-dc, winbind, ldap-utils, slapd when missing (root)
  fixture samba|openldap        build (or reuse) the cached seeded fixture and print its folder
  samba                         start Samba AD on a copy of the fixture, in the foreground (^C stops it)
  openldap                      start slapd on a copy of the fixture on a free loopback port (^C stops it)
  stop                          stop a Samba AD left running by an earlier run (by its recorded pid)
  generate --format ad-ldif|openldap-ldif|manifest --out FILE
options: --users N (default 2000)  --seed S (default 1)  --rebuild`;

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      users: { type: 'string', default: '2000' },
      seed: { type: 'string', default: '1' },
      format: { type: 'string' },
      out: { type: 'string' },
      rebuild: { type: 'boolean', default: false },
    },
  });
  const users = Number(values.users);
  const seed = Number(values.seed);
  if (!Number.isInteger(users) || !Number.isInteger(seed)) throw new Error(`--users and --seed must be integers\n${USAGE}`);
  const log = (m: string) => console.error(m);
  const [cmd, arg] = positionals;
  switch (cmd) {
    case 'install':
      await installTestPackages(log);
      return;
    case 'fixture': {
      if (arg === 'samba') {
        const f = await sambaFixture({ users, seed, rebuild: values.rebuild, log });
        console.log(JSON.stringify({ dir: f.dir, built: f.built, timings: f.timings, refused: f.manifest.refused.length }, null, 2));
      } else if (arg === 'openldap') {
        const f = await openLdapFixture({ users, seed, rebuild: values.rebuild });
        console.log(JSON.stringify({ dir: f.dir, built: f.built, timings: f.timings }, null, 2));
      } else throw new Error(`fixture needs "samba" or "openldap"\n${USAGE}`);
      return;
    }
    case 'samba': {
      const f = await sambaFixture({ users, seed, log });
      const s = await startSamba(await copyFixture(f.dir), { log });
      console.log(JSON.stringify({ url: s.url, ldapsUrl: s.ldapsUrl, bindDN: s.bindDN, baseDN: s.baseDN, pid: s.pid, dir: s.dir }, null, 2));
      await untilSignal(() => s.stop());
      return;
    }
    case 'openldap': {
      const f = await openLdapFixture({ users, seed });
      const s = await startSlapd(await copySlapdFixture(f.dir));
      console.log(JSON.stringify({ url: s.url, bindDN: s.bindDN, baseDN: s.baseDN, pid: s.pid, dir: s.dir }, null, 2));
      await untilSignal(() => s.stop());
      return;
    }
    case 'stop':
      await stopRecordedSamba(log);
      return;
    case 'generate': {
      if (!values.out) throw new Error(`generate needs --out FILE\n${USAGE}`);
      const model = generateDirectory({ users, seed });
      const out = path.resolve(values.out);
      if (values.format === 'ad-ldif') await writeChunks(out, adLdif(model));
      else if (values.format === 'openldap-ldif') await writeChunks(out, openLdapLdif(model));
      else if (values.format === 'manifest') await writeFile(out, JSON.stringify(buildManifest(model), null, 1));
      else throw new Error(`--format must be ad-ldif, openldap-ldif or manifest\n${USAGE}`);
      log(`wrote ${out}`);
      return;
    }
    default:
      throw new Error(USAGE);
  }
}

/** Keeps a foreground server up until ^C / SIGTERM, then stops it by pid. */
function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = () => {
      stop().then(resolve, (err: unknown) => {
        console.error(err);
        resolve();
      });
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
