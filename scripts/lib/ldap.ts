// Small LDAP helpers for scripts and tests; the implementations live in src/shared/ldap/escape.ts
// so the prep tooling, the sync engine and the scripts share one copy.
import { Client } from 'ldapts';

export { baseDnOf, escapeFilterValue, escapeRdnValue, guidFromBytes, guidToBytes } from '../../src/shared/ldap/escape.ts';

/** Whether a simple bind succeeds: the readiness probe of the test servers. */
export async function canBind(url: string, dn: string, password: string): Promise<boolean> {
  const c = new Client({ url, timeout: 2000, connectTimeout: 1000 });
  try {
    await c.bind(dn, password);
    return true;
  } catch {
    return false;
  } finally {
    await c.unbind().catch(() => undefined);
  }
}
