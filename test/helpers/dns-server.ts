// Test helper: a tiny authoritative DNS server on 127.0.0.1 (UDP, a random free port)
// answering TXT queries from a map the test changes at runtime; any other name is NXDOMAIN.
// Domain verification tests point the real resolver (src/cloud/dns.ts) at it.
import { createSocket, type RemoteInfo } from 'node:dgram';
import * as dnsPacket from 'dns-packet';

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, as createTxtLookup and NIMBUS_DNS_SERVERS take it. */
  address: string;
  port: number;
  /** TXT records by (case-insensitive) name; each string is one record. */
  txt: Map<string, string[]>;
  /** Publishes (appends) a TXT record at a name. */
  publish(name: string, text: string): void;
  /** Removes every record at a name (it becomes NXDOMAIN). */
  unpublish(name: string): void;
  /** Names queried so far, lower-cased, in order. */
  queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const socket = createSocket('udp4');
  const txt = new Map<string, string[]>();
  const queries: string[] = [];
  const key = (name: string) => name.toLowerCase().replace(/\.$/, '');

  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // not a DNS packet: ignore, as a real server would
    }
    const q = query.questions?.[0];
    const base = { type: 'response' as const, id: query.id ?? 0, questions: query.questions ?? [] };
    let reply: Buffer;
    if (!q) {
      reply = dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | 1 /* FORMERR */, answers: [] });
    } else {
      const name = key(q.name);
      queries.push(name);
      const records = txt.get(name);
      if (!records) {
        reply = dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | 3 /* NXDOMAIN */, answers: [] });
      } else {
        const answers = q.type === 'TXT' ? records.map((data) => ({ type: 'TXT' as const, name: q.name, ttl: 60, class: 'IN' as const, data: [data] })) : [];
        reply = dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER, answers });
      }
    }
    socket.send(reply, rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const port = socket.address().port;

  return {
    address: `127.0.0.1:${port}`,
    port,
    txt,
    queries,
    publish(name, text) {
      const k = key(name);
      txt.set(k, [...(txt.get(k) ?? []), text]);
    },
    unpublish(name) {
      txt.delete(key(name));
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
