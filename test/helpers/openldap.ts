// Test-suite setup for a real OpenLDAP slapd: a copy of the cached slapadd-loaded fixture,
// started on a free loopback port before the suite and stopped by pid after it.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll } from 'vitest';
import { copySlapdFixture, openLdapFixture, startSlapd } from '../../scripts/openldap/slapd.ts';
import type { TestDirectory } from './samba.ts';

export type { TestDirectory } from './samba.ts';

export interface OpenLdapSuiteOptions {
  /** Ordinary users in the fixture; default NIMBUS_TEST_USERS or 2000. */
  users?: number;
  seed?: number;
}

/** Starts slapd on a pristine copy of the fixture; call stop() when done. */
export async function startOpenLdapDirectory(options: OpenLdapSuiteOptions = {}): Promise<TestDirectory & { stop(): Promise<void> }> {
  const fixture = await openLdapFixture({ users: options.users ?? Number(process.env.NIMBUS_TEST_USERS ?? 2000), seed: options.seed ?? 1 });
  const dir = await copySlapdFixture(fixture.dir);
  try {
    const server = await startSlapd(dir);
    return {
      url: server.url,
      bindDN: server.bindDN,
      password: server.password,
      baseDN: server.baseDN,
      domainDnsName: fixture.manifest.domain.dnsName,
      manifest: fixture.manifest,
      dataDir: dir,
      stop: async () => {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Registers beforeAll/afterAll; read the getter inside tests. */
export function useOpenLdap(options: OpenLdapSuiteOptions = {}): () => TestDirectory {
  let dir: (TestDirectory & { stop(): Promise<void> }) | undefined;
  beforeAll(async () => {
    dir = await startOpenLdapDirectory(options);
  }, 600_000);
  afterAll(async () => {
    await dir?.stop();
  }, 60_000);
  return () => {
    if (!dir) throw new Error('useOpenLdap(): slapd is not running; read it inside a test, not at collection time');
    return dir;
  };
}
