// Test-suite setup for a real Samba AD DC: a pristine copy of the cached seeded fixture,
// started before the suite and stopped (by pid, port freed) after it. Only for test/serial,
// because Samba always listens on 127.0.0.1:389.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll } from 'vitest';
import type { Manifest } from '../../scripts/generator/manifest.ts';
import { copyFixture, sambaFixture, startSamba, type RunningSamba } from '../../scripts/samba/samba.ts';

/** What a test gets: enough to connect with any LDAP client. */
export interface TestDirectory {
  url: string;
  ldapsUrl?: string;
  /** CA certificate for ldapsUrl (the server certificate names NIMBUSDC.<domain>, not 127.0.0.1). */
  tlsCaFile?: string;
  bindDN: string;
  password: string;
  baseDN: string;
  domainDnsName: string;
  manifest: Manifest;
  /** The server's own folder (a throwaway copy): logs, database. */
  dataDir: string;
}

export interface SambaSuiteOptions {
  /** Ordinary users in the fixture; default NIMBUS_TEST_USERS or 2000 (one group still > 1500 members). */
  users?: number;
  seed?: number;
}

const SETUP_TIMEOUT_MS = 600_000;

export const DEFAULT_TEST_USERS = Number(process.env.NIMBUS_TEST_USERS ?? 2000);

/** Starts a Samba AD DC for this suite and returns it once `beforeAll` has run. */
export async function startSambaDirectory(options: SambaSuiteOptions = {}): Promise<TestDirectory & { stop(): Promise<void> }> {
  const fixture = await sambaFixture({ users: options.users ?? DEFAULT_TEST_USERS, seed: options.seed ?? 1 });
  const dir = await copyFixture(fixture.dir);
  let server: RunningSamba;
  try {
    server = await startSamba(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: server.url,
    ldapsUrl: server.ldapsUrl,
    tlsCaFile: server.tlsCaFile,
    bindDN: server.bindDN,
    password: server.password,
    baseDN: server.baseDN,
    domainDnsName: server.domainDnsName,
    manifest: fixture.manifest,
    dataDir: dir,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Registers beforeAll/afterAll hooks; call at the top of a describe (or file) and read the
 * returned getter inside tests: `const ad = useSamba(); it('...', () => ad().url)`.
 */
export function useSamba(options: SambaSuiteOptions = {}): () => TestDirectory {
  let dir: (TestDirectory & { stop(): Promise<void> }) | undefined;
  // Building an uncached fixture takes ~15 s at 2000 users, more for big ones: give it time.
  beforeAll(async () => {
    dir = await startSambaDirectory(options);
  }, SETUP_TIMEOUT_MS);
  afterAll(async () => {
    await dir?.stop();
  }, 60_000);
  return () => {
    if (!dir) throw new Error('useSamba(): the Samba directory is not running; read it inside a test, not at collection time');
    return dir;
  };
}
