// The LDAP connection layer shared by every `nimbus ad` command and the sync engine's AD
// connector: connect (ldap, ldaps, StartTLS), bind, RootDSE, streaming paged search, modify,
// all failures translated into LdapError once, here.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client, type Change, type Control, type Entry } from 'ldapts';
import type { LdapConnectionConfig } from './ldap-config.ts';
import { bindError, connectError, LdapError, operationError } from './ldap-errors.ts';

export interface RootDse {
  defaultNamingContext: string;
  configurationNamingContext: string;
  rootDomainNamingContext: string;
  schemaNamingContext?: string | undefined;
  dnsHostName?: string | undefined;
}

export interface PagedSearchOptions {
  scope?: 'base' | 'one' | 'sub';
  filter?: string;
  attributes?: string[];
  /** Attributes returned as Buffers (binary, or to keep exact bytes). */
  binary?: string[];
  /** Entries per page; default 500 (AD's MaxPageSize is 1000). */
  pageSize?: number;
}

/** First value of an attribute as text, or undefined. */
export function attrString(e: Entry, name: string): string | undefined {
  const v = e[name];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.toString();
}

/** All values of an attribute as text. */
export function attrStrings(e: Entry, name: string): string[] {
  const v = e[name];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => x.toString());
}

/** First value of an attribute as bytes (the attribute must be asked for as binary). */
export function attrBuffer(e: Entry, name: string): Buffer | undefined {
  const v = e[name];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  if (first === undefined) return undefined;
  return Buffer.isBuffer(first) ? first : Buffer.from(first, 'utf8');
}

export class LdapConnection {
  readonly url: string;
  readonly bindDn: string;
  #client: Client;
  #rootDse: RootDse | undefined;

  private constructor(client: Client, config: LdapConnectionConfig) {
    this.#client = client;
    this.url = config.url;
    this.bindDn = config.bindDn;
  }

  /** Connects and binds; throws LdapError naming the URL or the bind identity. */
  static async open(config: LdapConnectionConfig): Promise<LdapConnection> {
    let tlsOptions: ConnectionOptions | undefined;
    if (config.caFile) {
      let ca: Buffer;
      try {
        ca = readFileSync(config.caFile);
      } catch (err) {
        throw new LdapError('LdapConfig', `Cannot read the CA file ${config.caFile}: ${(err as Error).message}.`);
      }
      tlsOptions = { ca };
    }
    const client = new Client({ url: config.url, timeout: config.timeoutMs, connectTimeout: config.timeoutMs, ...(tlsOptions && /^ldaps:/i.test(config.url) ? { tlsOptions } : {}) });
    const conn = new LdapConnection(client, config);
    if (config.starttls) {
      try {
        await client.startTLS(tlsOptions ?? {});
      } catch (err) {
        await conn.close();
        throw connectError(err, config.url, { starttls: true, caFile: config.caFile });
      }
    }
    try {
      await client.bind(config.bindDn, config.password());
    } catch (err) {
      await conn.close();
      throw bindError(err, config.url, config.bindDn, config.starttls);
    }
    return conn;
  }

  /** The raw ldapts client, for operations this layer does not wrap (DirSync in the connector). */
  get client(): Client {
    return this.#client;
  }

  async rootDse(): Promise<RootDse> {
    if (this.#rootDse) return this.#rootDse;
    let e: Entry | undefined;
    try {
      const r = await this.#client.search('', {
        scope: 'base',
        filter: '(objectClass=*)',
        attributes: ['defaultNamingContext', 'configurationNamingContext', 'rootDomainNamingContext', 'schemaNamingContext', 'dnsHostName'],
      });
      e = r.searchEntries[0];
    } catch (err) {
      throw operationError(err, 'the RootDSE', 'read');
    }
    const get = (a: string) => (e ? attrString(e, a) : undefined);
    const dc = get('defaultNamingContext');
    const cfg = get('configurationNamingContext');
    if (!dc || !cfg) {
      throw new LdapError('LdapOperationFailed', `${this.url} answered without defaultNamingContext/configurationNamingContext in its RootDSE: it does not look like Active Directory. Point --url at a domain controller.`);
    }
    this.#rootDse = {
      defaultNamingContext: dc,
      configurationNamingContext: cfg,
      rootDomainNamingContext: get('rootDomainNamingContext') ?? dc,
      schemaNamingContext: get('schemaNamingContext'),
      dnsHostName: get('dnsHostName'),
    };
    return this.#rootDse;
  }

  /**
   * Streams the entries of a paged search one page at a time (RFC 2696), so callers never hold
   * the whole directory: `for await (const page of conn.pages(...)) for (const e of page) ...`.
   */
  async *pages(base: string, opts: PagedSearchOptions = {}): AsyncGenerator<Entry[]> {
    const gen = this.#client.searchPaginated(base, {
      scope: opts.scope ?? 'sub',
      filter: opts.filter ?? '(objectClass=*)',
      ...(opts.attributes ? { attributes: opts.attributes } : {}),
      ...(opts.binary ? { explicitBufferAttributes: opts.binary } : {}),
      paged: { pageSize: opts.pageSize ?? 500 },
    });
    // Read ahead: the next page is asked for before this one is handed out, so the server
    // works on it while the caller processes this one (import time ~ max, not sum, of both).
    let next = gen.next();
    try {
      for (;;) {
        const r = await next;
        if (r.done) return;
        next = gen.next();
        // Awaited on the next turn; this only keeps an early stop from leaving it unhandled.
        next.catch(() => undefined);
        yield r.value.searchEntries;
      }
    } catch (err) {
      throw operationError(err, base, 'read (list contents)');
    } finally {
      // The caller stopped early (break, error): drain the read-ahead, end the search.
      await next.catch(() => undefined);
      await gen.return(undefined).catch(() => undefined);
    }
  }

  /** Every entry of a paged search, one by one. */
  async *entries(base: string, opts: PagedSearchOptions = {}): AsyncGenerator<Entry> {
    for await (const page of this.pages(base, opts)) yield* page;
  }

  /** A search expected to return few entries (base reads, lookups). */
  async find(base: string, opts: PagedSearchOptions = {}): Promise<Entry[]> {
    try {
      const r = await this.#client.search(base, {
        scope: opts.scope ?? 'sub',
        filter: opts.filter ?? '(objectClass=*)',
        ...(opts.attributes ? { attributes: opts.attributes } : {}),
        ...(opts.binary ? { explicitBufferAttributes: opts.binary } : {}),
      });
      return r.searchEntries;
    } catch (err) {
      throw operationError(err, base, 'read');
    }
  }

  /** One modify request; `right` names what the change needs for the error message. */
  async modify(dn: string, changes: Change | Change[], right: string, controls?: Control | Control[]): Promise<void> {
    try {
      await this.#client.modify(dn, changes, controls);
    } catch (err) {
      throw operationError(err, dn, right);
    }
  }

  async close(): Promise<void> {
    try {
      await this.#client.unbind();
    } catch {
      // The socket may already be gone (server stopped, failed TLS); nothing left to release.
    }
  }
}
