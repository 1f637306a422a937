// AD's change notification (LDAP_SERVER_NOTIFICATION_OID 1.2.840.113556.1.4.528, [MS-ADTS]
// 3.1.1.3.4.1.9): a search that never ends; the DC sends an entry each time an object under
// the base changes. ldapts resolves a search only when it ends, so this speaks LDAP itself on
// its own connection, with ldapts's message classes and parser: bind, one search, then each
// SearchResultEntry is a "something changed" signal (the delta that follows reads what).
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { BindRequest, BindResponse, Control, FilterParser, MessageParser, SearchEntry, SearchRequest, SearchResponse, UnbindRequest } from 'ldapts';

export const NOTIFICATION_OID = '1.2.840.113556.1.4.528';

export interface NotificationOptions {
  url: string;
  bindDn: string;
  password: () => string;
  /** The naming context root: AD accepts a subtree notification search only there. */
  baseDn: string;
  caFile?: string;
  /** Each change: the DN the DC named. */
  onChange: (dn: string) => void;
  /** The watch ended (connection lost, refused): the caller falls back to polling or restarts it. */
  onEnd: (err: Error) => void;
}

export interface NotificationWatch {
  close(): void;
}

/** Starts watching; resolves once the DC accepted the bind (the search then runs until close()). */
export function watchChanges(o: NotificationOptions): Promise<NotificationWatch> {
  const u = new URL(o.url);
  const secure = u.protocol === 'ldaps:';
  const port = Number(u.port || (secure ? 636 : 389));
  const socket: Socket = secure ? tlsConnect({ host: u.hostname, port, ...(isIP(u.hostname) ? {} : { servername: u.hostname }), ...(o.caFile ? { ca: readFileSync(o.caFile, 'utf8') } : {}) }) : netConnect({ host: u.hostname, port });
  const parser = new MessageParser();
  const details = new Map<string, { message: SearchRequest | BindRequest }>();
  let ended = false;
  const end = (err: Error) => {
    if (ended) return;
    ended = true;
    socket.destroy();
    o.onEnd(err);
  };
  return new Promise((resolve, reject) => {
    let bound = false;
    const search = new SearchRequest({
      messageId: 2,
      baseDN: o.baseDn,
      scope: 'sub',
      filter: FilterParser.parseString('(objectClass=*)'),
      attributes: ['objectGUID'],
      timeLimit: 0,
      controls: [new Control(NOTIFICATION_OID, { critical: true })],
    });
    parser.on('message', (m: unknown) => {
      if (m instanceof BindResponse) {
        if (m.status !== 0) {
          const err = new Error(`the domain controller refused the bind for change notification (result ${m.status}${m.errorMessage ? `: ${m.errorMessage}` : ''})`);
          ended = true;
          socket.destroy();
          reject(err);
          return;
        }
        bound = true;
        details.set('2', { message: search });
        socket.write(search.write());
        resolve({
          close() {
            if (ended) return;
            ended = true;
            socket.end(new UnbindRequest({ messageId: 3 }).write());
            socket.destroySoon?.();
          },
        });
      } else if (m instanceof SearchEntry) {
        o.onChange(m.name);
      } else if (m instanceof SearchResponse) {
        // A notification search ends only when refused (unsupported, scope) or the DC stops.
        end(new Error(`the change-notification search ended (result ${m.status}${m.errorMessage ? `: ${m.errorMessage}` : ''})`));
      }
    });
    parser.on('error', (err: Error) => end(err));
    socket.on('data', (data: Buffer) => parser.read(data, details));
    socket.on('error', (err) => (bound ? end(err) : reject(err)));
    socket.on('close', () => (bound ? end(new Error('the connection to the domain controller closed')) : reject(new Error('the connection to the domain controller closed before the bind'))));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      const bind = new BindRequest({ messageId: 1, dn: o.bindDn, password: o.password() });
      details.set('1', { message: bind });
      socket.write(bind.write());
    });
  });
}
