// Installs the Debian packages the real test servers need (Samba AD DC, OpenLDAP slapd,
// ldap-utils; Chromium for the portal's browser tests) when missing, non-interactively, and
// makes sure none of them is left running as a system service holding ports 389/636.
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { run, runOk } from './lib/process.ts';

/** Packages and the binary that proves each is usable. */
export const TEST_PACKAGES: { pkg: string; needs: string }[] = [
  { pkg: 'samba', needs: '/usr/sbin/samba' },
  { pkg: 'samba-ad-dc', needs: '/usr/sbin/samba' },
  // Only a Recommends of samba-ad-dc, but provisioning cannot work without its schema files.
  { pkg: 'samba-ad-provision', needs: '/usr/share/samba/setup/ad-schema' },
  { pkg: 'samba-dsdb-modules', needs: '/usr/sbin/samba' },
  { pkg: 'samba-vfs-modules', needs: '/usr/sbin/samba' },
  { pkg: 'winbind', needs: '/usr/sbin/winbindd' },
  { pkg: 'python3-samba', needs: '/usr/lib/python3/dist-packages/samba/samdb.py' },
  { pkg: 'ldap-utils', needs: '/usr/bin/ldapsearch' },
  { pkg: 'slapd', needs: '/usr/sbin/slapd' },
  // The admin portal's browser tests (test/portal/) drive Debian's Chromium with playwright-core.
  { pkg: 'chromium', needs: '/usr/bin/chromium' },
];

/** Services the packages may register and auto-start; we run our own instances instead. */
const SERVICES = ['slapd', 'samba-ad-dc', 'smbd', 'nmbd', 'winbind'];

async function installed(pkg: string): Promise<boolean> {
  const r = await run('dpkg-query', ['-W', '-f=${Status}', pkg]).catch(() => undefined);
  return r?.code === 0 && r.stdout.includes('install ok installed');
}

export async function missingPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const { pkg, needs } of TEST_PACKAGES) {
    if (!(await installed(pkg)) || !existsSync(needs)) missing.push(pkg);
  }
  return missing;
}

const POLICY_RC = '/usr/sbin/policy-rc.d';

/**
 * Installs whatever is missing. Returns the list installed (empty when nothing was
 * needed). Throws with the command to run by hand when not root.
 */
export async function installTestPackages(log: (msg: string) => void = console.log): Promise<string[]> {
  const missing = await missingPackages();
  if (missing.length === 0) {
    log('test packages: all present');
    return [];
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing Debian packages: ${missing.join(' ')}. Run this as root, or install them yourself: ` +
        `sudo apt-get install -y ${missing.join(' ')}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true' };
  // slapd: skip its own database set-up (we write our own config per test server), so debconf
  // never asks for an admin password. krb5-config (pulled by samba-ad-dc): answer the questions.
  await runOk('debconf-set-selections', [], {
    env,
    input: [
      'slapd slapd/no_configuration boolean true',
      'krb5-config krb5-config/default_realm string CORP.EXAMPLE.COM',
      'krb5-config krb5-config/add_servers_realm string CORP.EXAMPLE.COM',
      'krb5-config krb5-config/add_servers boolean false',
      '',
    ].join('\n'),
  });
  // Keep packages from starting their services (slapd would take 389, blocking Samba).
  // Only add a policy file if the machine has none, and remove only what we added.
  const ownPolicy = !existsSync(POLICY_RC);
  if (ownPolicy) await writeFile(POLICY_RC, '#!/bin/sh\n# added by nimbus test-servers:install\nexit 101\n', { mode: 0o755 });
  try {
    log('test packages: apt-get update');
    await runOk('apt-get', ['update'], { env });
    log(`test packages: apt-get install ${missing.join(' ')}`);
    await runOk(
      'apt-get',
      ['install', '-y', '--no-install-recommends', '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', ...missing],
      { env },
    );
  } finally {
    if (ownPolicy) await rm(POLICY_RC, { force: true });
  }
  await stopSystemServices(log);
  const still = await missingPackages();
  if (still.length > 0) throw new Error(`apt-get finished but these packages are still not usable: ${still.join(' ')}`);
  return missing;
}

/** Stops and disables the packaged services in case the policy file did not hold. */
async function stopSystemServices(log: (msg: string) => void): Promise<void> {
  const systemd = existsSync('/run/systemd/system');
  for (const svc of SERVICES) {
    if (systemd) {
      const r = await run('systemctl', ['disable', '--now', svc]).catch(() => undefined);
      if (r?.code === 0) log(`test packages: disabled system service ${svc}`);
    } else if (existsSync(`/etc/init.d/${svc}`)) {
      await run(`/etc/init.d/${svc}`, ['stop']).catch(() => undefined);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  installTestPackages().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
