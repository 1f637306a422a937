// Looks up TXT records for domain verification through a configurable resolver, so tests
// (and air-gapped operators) can point it at their own DNS server.
import { Resolver } from 'node:dns/promises';

export interface TxtLookup {
  (name: string): Promise<string[]>;
}

export function createTxtLookup(servers: readonly string[], timeoutMs = 3000): TxtLookup {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers(servers.map(normalizeServer));
  return async (name) => {
    const records = await resolver.resolveTxt(name);
    return records.map((chunks) => chunks.join(''));
  };
}

/** `host:port` as node's resolver wants it (`[::1]:53` for IPv6). */
function normalizeServer(s: string): string {
  const m = /^([^:[\]]+):(\d+)$/.exec(s);
  return m ? `${m[1]}:${m[2]}` : s;
}
