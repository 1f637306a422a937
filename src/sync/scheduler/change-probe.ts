// A cheap "did the source change?" question the agent asks every sync.changePoll, so a change
// reaches the cloud in seconds without running a cycle per second. AD: the RootDSE's
// highestCommittedUSN ([MS-ADTS] 3.1.1.3.2.1: the highest USN committed on this DC), one
// base search on a connection kept open; any write on the DC raises it. LDIF: the file's size
// and modification time. A different token means "run a delta now"; the delta itself decides
// what changed (a change outside the scope costs one no-change delta).
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LdapConnection } from '../../shared/ldap/connection.ts';
import type { SyncConfig } from '../config.ts';

export interface ChangeProbe {
  readonly kind: 'ad-usn' | 'file' | 'none';
  /** An opaque token that changes when the source may have changed; undefined when the source cannot be asked now. */
  token(): Promise<string | undefined>;
  close(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 10_000;

export function createChangeProbe(config: SyncConfig): ChangeProbe {
  const s = config.source;
  if (s.type === 'ldif' && s.path) {
    const path = s.path;
    return {
      kind: 'file',
      async token() {
        try {
          const st = await stat(path);
          return `${st.size}:${st.mtimeMs}:${st.ino}`;
        } catch {
          return 'missing';
        }
      },
      async close() {},
    };
  }
  const password = config.secrets.sourcePassword;
  if (s.type !== 'ad' || !s.url || !s.bindDn || !password) return { kind: 'none', token: () => Promise.resolve(undefined), close: () => Promise.resolve() };
  const base = config.file === 'environment' ? process.cwd() : dirname(config.file);
  const caFile = s.caFile === undefined ? undefined : isAbsolute(s.caFile) ? s.caFile : resolve(base, s.caFile);
  let conn: LdapConnection | undefined;
  const drop = async () => {
    const c = conn;
    conn = undefined;
    await c?.close().catch(() => undefined);
  };
  return {
    kind: 'ad-usn',
    async token() {
      try {
        conn ??= await LdapConnection.open({ url: s.url!, bindDn: s.bindDn!, password: () => password.reveal(), starttls: !!s.starttls, caFile, timeoutMs: PROBE_TIMEOUT_MS, baseDn: s.baseDn });
        const r = await conn.client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['highestCommittedUSN'] });
        const v = r.searchEntries[0]?.highestCommittedUSN;
        const usn = Array.isArray(v) ? v[0] : v;
        return usn === undefined ? undefined : usn.toString();
      } catch {
        // The DC is down or the connection dropped: reconnect next time; the interval still runs cycles.
        await drop();
        return undefined;
      }
    },
    close: drop,
  };
}
