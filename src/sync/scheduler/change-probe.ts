// A cheap "did the source change?" question the agent asks every sync.changePoll, so a change
// reaches the cloud in seconds without running a cycle per second. AD: change notification
// (change-notification.ts: the DC tells us within milliseconds, nothing is polled; measured
// ~25 ms from a write to the signal on Samba, bench/agent-latency.ts), and while that is not
// running (refused, connection lost; retried every minute) the RootDSE's highestCommittedUSN
// ([MS-ADTS] 3.1.1.3.2.1), one base search on a connection kept open; any write on the DC
// raises it. LDIF: the file's size and modification time. A different token means "run a
// delta now"; the delta itself decides what changed (a change outside the scope costs one
// no-change delta).
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LdapConnection } from '../../shared/ldap/connection.ts';
import { watchChanges, type NotificationWatch } from '../connectors/ad/change-notification.ts';
import type { SyncConfig } from '../config.ts';

export interface ChangeProbe {
  /** How changes are noticed now: AD change notification, the AD USN poll, the file's stat. */
  readonly kind: 'ad-notification' | 'ad-usn' | 'file' | 'none';
  /** An opaque token that changes when the source may have changed; undefined when the source cannot be asked now. */
  token(): Promise<string | undefined>;
  /** Called as soon as the source reports a change (AD change notification), so the caller need not wait for its next poll. */
  onChange?(listener: () => void): void;
  close(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 10_000;
/** After a notification watch failed or ended, try it again this much later (the USN poll covers meanwhile). */
const NOTIFICATION_RETRY_MS = 60_000;

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
  // Change notification: while it runs, the token is a local counter (no round trip).
  let watch: NotificationWatch | undefined;
  let starting: Promise<void> | undefined;
  let retryAt = 0;
  let changes = 0;
  let closed = false;
  const listeners: (() => void)[] = [];
  const startWatch = () => {
    if (watch || starting || closed || Date.now() < retryAt) return;
    starting = (async () => {
      const nc = (await (conn ??= await LdapConnection.open({ url: s.url!, bindDn: s.bindDn!, password: () => password.reveal(), starttls: !!s.starttls, caFile, timeoutMs: PROBE_TIMEOUT_MS, baseDn: s.baseDn })).rootDse()).defaultNamingContext;
      const w = await watchChanges({
        url: s.url!,
        bindDn: s.bindDn!,
        password: () => password.reveal(),
        baseDn: nc,
        ...(caFile ? { caFile } : {}),
        onChange: () => {
          changes++;
          for (const l of listeners) l();
        },
        onEnd: () => {
          watch = undefined;
          retryAt = Date.now() + NOTIFICATION_RETRY_MS;
        },
      });
      if (closed) w.close();
      else watch = w;
    })()
      .catch(() => {
        // Refused (StartTLS-only DC, no such control) or unreachable: poll the USN for now.
        retryAt = Date.now() + NOTIFICATION_RETRY_MS;
      })
      .finally(() => (starting = undefined));
  };
  return {
    get kind() {
      return watch ? ('ad-notification' as const) : ('ad-usn' as const);
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async token() {
      // StartTLS sessions are not spoken by the watch's own connection: poll instead.
      if (!s.starttls && config.sync.changeNotification) {
        startWatch();
        // The first answer already from the watch (a bind away), so the token does not switch kinds right after.
        await starting;
      }
      if (watch) return `notification:${changes}`;
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
    async close() {
      closed = true;
      await starting;
      watch?.close();
      watch = undefined;
      await drop();
    },
  };
}
