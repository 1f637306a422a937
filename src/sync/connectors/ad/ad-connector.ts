// The Active Directory connector: a full import is a paged search (1000 per page, AD's
// MaxPageSize) streamed page by page; a delta import reads changes since a watermark with the
// DirSync control ([MS-ADTS] 3.1.1.3.4.1.3), or, when the bind account lacks "Replicating
// Directory Changes", with uSNChanged above the last highestCommittedUSN plus tombstones read
// through the Show Deleted control. The engine owns scope, merging and persistence of the
// watermark; this file only talks LDAP.
import { InsufficientAccessError, NoSuchObjectError, UnavailableCriticalExtensionError, UnwillingToPerformError, type Entry } from 'ldapts';
import { LdapConnection } from '../../../shared/ldap/connection.ts';
import { LdapError } from '../../../shared/ldap/ldap-errors.ts';
import { SyncError } from '../../errors.ts';
import type { DeltaChange, DeltaImport, ImportItem, LdapValue, SourceConnector, SourceEntry } from '../connector.ts';
import { AD_BINARY_ATTRIBUTES, AD_CONTAINER_FILTER, AD_DELTA_FILTER, AD_OBJECT_FILTER, DEFAULT_AD_ATTRIBUTES, type AdConnectorConfig } from './ad-connector-config.ts';
import { DIRSYNC_FLAGS, DirSyncControl, ShowDeletedControl } from './dirsync-control.ts';

/** What the connector space stores between runs (opaque to the engine). */
/**
 * Where the next delta starts. DirSync: the cookie, and the DC's write mark (which DC, and its
 * highestCommittedUSN) read just before it was asked for (`hcu`): while the mark has not moved,
 * nothing was written on the DC, so a delta answers "no changes" from one RootDSE read instead
 * of a DirSync search.
 */
type Watermark = { m: 'dirsync'; cookie: string; hcu?: string } | { m: 'usn'; usn: string };

const RANGE = /^(.+);range=(\d+)-(\d+|\*)$/i;
/** A filter no object matches: a DirSync search with it only returns a fresh cookie. */
const MATCH_NOTHING = '(objectGUID=\\00)';

const toSyncError = (err: unknown, what: string): SyncError => {
  if (err instanceof SyncError) return err;
  const msg = err instanceof LdapError ? err.message : `${what}: ${(err as Error)?.message ?? String(err)}`;
  return new SyncError('SourceUnreadable', `${msg} Nothing was deleted; fix it and run again.`, { cause: err });
};

/** DirSync is refused when the account lacks the replication right or the server lacks the control. */
const dirSyncRefused = (err: unknown) => err instanceof InsufficientAccessError || err instanceof UnavailableCriticalExtensionError || err instanceof UnwillingToPerformError;

/** The first RDN's value, unescaped (RFC 4514 `\,` and `\XX` hex pairs). */
function rdnValue(dn: string): { type: string; value: string } | undefined {
  const rdn = dn.split(/(?<!\\),/)[0] ?? '';
  const eq = rdn.indexOf('=');
  if (eq < 0) return undefined;
  const raw = rdn.slice(eq + 1);
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\' && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (raw[i] === '\\' && i + 1 < raw.length) {
      bytes.push(...Buffer.from(raw[++i]!, 'utf8'));
    } else bytes.push(...Buffer.from(raw[i]!, 'utf8'));
  }
  return { type: rdn.slice(0, eq).trim(), value: Buffer.from(bytes).toString('utf8') };
}

/**
 * Pages of several paged searches as they arrive, each with the connection it came from; each
 * search keeps reading ahead while the caller works on another's page.
 */
async function* mergePages(streams: { conn: LdapConnection; pages: AsyncGenerator<Entry[]> }[]): AsyncGenerator<{ conn: LdapConnection; page: Entry[] }> {
  const next = (i: number) => streams[i]!.pages.next().then((r) => ({ i, r }));
  const waiting = new Map(streams.map((_, i) => [i, next(i)]));
  try {
    while (waiting.size) {
      const { i, r } = await Promise.race(waiting.values());
      if (r.done) {
        waiting.delete(i);
        continue;
      }
      waiting.set(i, next(i));
      yield { conn: streams[i]!.conn, page: r.value };
    }
  } finally {
    // Stopped early (an error, a break): end the other searches too.
    for (const p of waiting.values()) p.catch(() => undefined);
    for (const [i] of waiting) await streams[i]!.pages.return(undefined).catch(() => undefined);
  }
}

/** An entry's objectGUID in base64 (the form the engine anchors on), or undefined without one. */
function guidOf(e: Entry): string | undefined {
  const g = Array.isArray(e.objectGUID) ? e.objectGUID[0] : e.objectGUID;
  return Buffer.isBuffer(g) ? g.toString('base64') : undefined;
}

export function createAdConnector(config: AdConnectorConfig): SourceConnector {
  const attributes = [...(config.attributes ?? DEFAULT_AD_ATTRIBUTES)];
  // By base name: a configured `member;range=0-999` still keeps the `member` values.
  const wanted = new Set(attributes.map((a) => (RANGE.exec(a)?.[1] ?? a).toLowerCase()));
  const binary = [...AD_BINARY_ATTRIBUTES];
  const method = config.deltaMethod ?? 'auto';
  let conn: LdapConnection | undefined;
  let fullWatermark: string | undefined;

  const connect = async (): Promise<LdapConnection> => {
    if (conn) return conn;
    try {
      conn = await LdapConnection.open(config.connection);
      return conn;
    } catch (err) {
      throw toSyncError(err, `Cannot connect to ${config.connection.url}`);
    }
  };
  const namingContext = async (c: LdapConnection) => {
    try {
      return (await c.rootDse()).defaultNamingContext;
    } catch (err) {
      throw toSyncError(err, 'Reading the RootDSE failed');
    }
  };
  const highestUsn = async (c: LdapConnection): Promise<string> => {
    const r = await c.client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['highestCommittedUSN'] });
    const v = r.searchEntries[0]?.highestCommittedUSN;
    const usn = Array.isArray(v) ? v[0] : v;
    if (usn === undefined) throw new SyncError('SourceUnreadable', `${config.connection.url} has no highestCommittedUSN in its RootDSE; it does not look like Active Directory.`);
    return usn.toString();
  };

  /**
   * Completes `attr;range=0-1499` values: AD returns at most MaxValRange (1500) values of a
   * multi-valued attribute per read ([MS-ADTS] 3.1.1.3.1.3.3); the rest is read with
   * `attr;range=1500-*` until the server answers a range ending in `*`.
   */
  const completeRanges = async (c: LdapConnection, dn: string, attrs: Record<string, LdapValue[]>): Promise<void> => {
    for (const key of Object.keys(attrs)) {
      const m = RANGE.exec(key);
      if (!m) continue;
      const name = m[1]!;
      const all = [...attrs[key]!];
      delete attrs[key];
      let end = m[3]!;
      while (end !== '*') {
        const r = await c.client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes: [`${name};range=${Number(end) + 1}-*`] });
        const e = r.searchEntries[0];
        const next = e && Object.keys(e).find((k) => RANGE.exec(k)?.[1]?.toLowerCase() === name.toLowerCase());
        if (!e || !next) break;
        const v = e[next]!;
        all.push(...(Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x : String(x))));
        end = RANGE.exec(next)![3]!;
      }
      attrs[name] = all;
    }
  };

  /**
   * This DC's write position: its NTDS Settings DN (dsServiceName: which DC, should a name
   * lead to another) and highestCommittedUSN. The same mark twice means nothing was written.
   */
  const writeMark = async (c: LdapConnection): Promise<string | undefined> => {
    const r = await c.client.search('', { scope: 'base', filter: '(objectClass=*)', attributes: ['dsServiceName', 'highestCommittedUSN'] });
    const e = r.searchEntries[0];
    const one = (v: unknown) => (Array.isArray(v) ? v[0] : v) as string | Buffer | undefined;
    const dc = one(e?.dsServiceName);
    const usn = one(e?.highestCommittedUSN);
    return dc === undefined || usn === undefined ? undefined : `${dc.toString()}#${usn.toString()}`;
  };

  /**
   * An ldapts entry as the engine's SourceEntry. ldapts fills requested attributes the server
   * did not return with []; `keepEmpty` keeps returned-but-empty ones (a delta's cleared
   * attribute), which only works when the request named `*` rather than each attribute.
   */
  const toEntry = async (c: LdapConnection, e: Entry, keepEmpty: boolean): Promise<SourceEntry> => {
    const attrs: Record<string, LdapValue[]> = {};
    for (const [k, v] of Object.entries(e)) {
      if (k === 'dn' || k === '*') continue;
      const base = (RANGE.exec(k)?.[1] ?? k).toLowerCase();
      if (!wanted.has(base)) continue;
      const vs = (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x : String(x)));
      if (vs.length === 0 && !keepEmpty) continue;
      attrs[k] = vs;
    }
    await completeRanges(c, e.dn, attrs);
    return { dn: e.dn, attributes: attrs };
  };

  /** The watermark "now", taken before a full import reads anything. */
  const currentWatermark = async (c: LdapConnection, nc: string): Promise<Watermark> => {
    if (method !== 'usn') {
      const ctl = new DirSyncControl({ flags: DIRSYNC_FLAGS.ANCESTORS_FIRST_ORDER });
      try {
        const hcu = await writeMark(c);
        // A filter nothing matches: the server walks its changes but returns only the cookie.
        await c.client.search(nc, { scope: 'sub', filter: MATCH_NOTHING, attributes: ['objectGUID'] }, ctl);
        return { m: 'dirsync', cookie: ctl.cookie.toString('base64'), ...(hcu !== undefined ? { hcu } : {}) };
      } catch (err) {
        if (method === 'dirsync' || !dirSyncRefused(err)) throw toSyncError(err, `DirSync on ${nc} failed`);
      }
    }
    return { m: 'usn', usn: await highestUsn(c) };
  };

  async function* dirSyncChanges(c: LdapConnection, nc: string, cookie: Buffer, since: string | undefined, done: (w: Watermark) => void, signal?: AbortSignal, known?: (objectGuid: string) => boolean): AsyncGenerator<DeltaChange> {
    // Read before the search: a write after this read is in the cookie, and moves the number.
    const hcu = await writeMark(c).catch(() => undefined);
    if (hcu !== undefined && hcu === since) {
      // Nothing written on this DC since the last cookie was taken: no search needed.
      done({ m: 'dirsync', cookie: cookie.toString('base64'), hcu });
      return;
    }
    for (;;) {
      const ctl = new DirSyncControl({ flags: DIRSYNC_FLAGS.ANCESTORS_FIRST_ORDER, cookie });
      let entries: Entry[];
      try {
        // `*` (not a list): ldapts then leaves unreturned attributes out, so an attribute the
        // delta returns with no values is one that was cleared.
        entries = (await c.client.search(nc, { scope: 'sub', filter: AD_DELTA_FILTER, attributes: ['*'], explicitBufferAttributes: binary }, ctl)).searchEntries;
      } catch (err) {
        throw toSyncError(err, `DirSync on ${nc} failed`);
      }
      for (const e of entries) {
        if (signal?.aborted) throw new SyncError('Aborted', 'The delta import was stopped; its watermark was not saved, so the next run reads these changes again.');
        // `name` comes back when the entry was renamed or moved; a container's rename or move
        // changes the DN of everything under it, and AD reports only the container.
        if (e.name !== undefined && !isKnown(e, known) && (await isContainer(c, e))) yield* subtree(c, e.dn, signal);
        else yield await deltaChange(c, e);
      }
      cookie = ctl.cookie;
      // MoreResults: the server stopped at maxBytes; ask again with the new cookie.
      if (!ctl.moreResults) break;
    }
    done({ m: 'dirsync', cookie: cookie.toString('base64'), ...(hcu !== undefined ? { hcu } : {}) });
  }

  /** Whether the engine holds the entry (by its objectGUID): a user, group or contact, then. */
  const isKnown = (e: Entry, known?: (objectGuid: string) => boolean): boolean => {
    const g = guidOf(e);
    return known !== undefined && g !== undefined && known(g);
  };

  /** Whether a DirSync entry is an OU or container (not a user, group or contact). */
  const isContainer = async (c: LdapConnection, e: Entry): Promise<boolean> => {
    // A created object comes with its objectClass; a renamed or moved one without: ask.
    const found =
      e.objectClass !== undefined
        ? undefined
        : await c.client.search(e.dn, { scope: 'base', filter: AD_CONTAINER_FILTER, attributes: ['objectClass'] }).catch((err: unknown) => {
            if (err instanceof NoSuchObjectError) return undefined;
            throw toSyncError(err, `Reading ${e.dn} failed`);
          });
    const classes = e.objectClass ?? found?.searchEntries[0]?.objectClass;
    if (classes === undefined) return false;
    const set = new Set((Array.isArray(classes) ? classes : [classes]).map((x) => String(x).toLowerCase()));
    return (set.has('organizationalunit') || set.has('container')) && !set.has('user') && !set.has('group') && !set.has('contact');
  };

  /** Every synced object under a renamed or moved container, read whole, as changes. */
  async function* subtree(c: LdapConnection, dn: string, signal?: AbortSignal): AsyncGenerator<DeltaChange> {
    try {
      for await (const page of c.pages(dn, { filter: AD_OBJECT_FILTER, attributes, binary, pageSize: config.pageSize ?? 1000 })) {
        for (const e of page) {
          if (signal?.aborted) throw new SyncError('Aborted', 'The delta import was stopped; its watermark was not saved, so the next run reads these changes again.');
          const entry = await toEntry(c, e, false);
          entry.attributes.distinguishedName = [e.dn];
          yield { kind: 'upsert', entry, whole: true };
        }
      }
    } catch (err) {
      if (err instanceof SyncError) throw err;
      if (err instanceof NoSuchObjectError) return; // moved again or deleted since: a later change says where
      throw toSyncError(err, `Reading the objects under the renamed or moved container ${dn} failed`);
    }
  }

  /** A DirSync entry: a tombstone becomes a delete; anything else an upsert of the changed attributes. */
  const deltaChange = async (c: LdapConnection, e: Entry): Promise<DeltaChange> => {
    // Created since the cookie: every attribute it has is new, so DirSync returned them all
    // (whenCreated is written once, at creation; a reanimated tombstone keeps its old one).
    const created = e.whenCreated !== undefined && e.objectClass !== undefined;
    const entry = await toEntry(c, e, !created);
    const guid = entry.attributes.objectGUID?.[0];
    const deleted = String(Array.isArray(e.isDeleted) ? e.isDeleted[0] : (e.isDeleted ?? '')).toUpperCase() === 'TRUE';
    if (deleted && Buffer.isBuffer(guid)) return { kind: 'delete', objectGuid: guid.toString('base64'), dn: e.dn };
    // A rename returns `name` but not the DN-derived values the staged copy holds: set them.
    entry.attributes.distinguishedName = [e.dn];
    const rdn = rdnValue(e.dn);
    if (rdn && rdn.type.toLowerCase() === 'cn') entry.attributes.cn = [rdn.value];
    return { kind: 'upsert', entry, ...(created ? { whole: true } : {}) };
  };

  async function* usnChanges(c: LdapConnection, nc: string, since: string, done: (w: Watermark) => void, signal?: AbortSignal): AsyncGenerator<DeltaChange> {
    // Read the new high-water mark first: a change made while we read is read again next time.
    const high = await highestUsn(c);
    const next = BigInt(since) + 1n;
    try {
      for await (const page of c.pages(nc, { filter: `(&${AD_OBJECT_FILTER}(uSNChanged>=${next}))`, attributes, binary, pageSize: config.pageSize ?? 1000 })) {
        for (const e of page) {
          if (signal?.aborted) throw new SyncError('Aborted', 'The delta import was stopped; its watermark was not saved.');
          yield { kind: 'upsert', entry: await toEntry(c, e, false) };
        }
      }
      // A container changed since (renamed or moved, maybe): its objects' DNs may have changed.
      for await (const page of c.pages(nc, { filter: `(&${AD_CONTAINER_FILTER}(uSNChanged>=${next}))`, attributes: ['objectClass'], binary, pageSize: config.pageSize ?? 1000 })) {
        for (const e of page) yield* subtree(c, e.dn, signal);
      }
      // Tombstones keep objectGUID and isDeleted; only Show Deleted makes searches return them.
      const pages = c.client.searchPaginated(nc, { scope: 'sub', filter: `(&(isDeleted=TRUE)(uSNChanged>=${next}))`, attributes: ['objectGUID', 'isDeleted'], explicitBufferAttributes: binary, paged: { pageSize: config.pageSize ?? 1000 } }, new ShowDeletedControl());
      for await (const page of pages) {
        for (const e of page.searchEntries) {
          const g = guidOf(e);
          if (g !== undefined) yield { kind: 'delete', objectGuid: g, dn: e.dn };
        }
      }
    } catch (err) {
      throw toSyncError(err, `Reading changes under ${nc} failed`);
    }
    done({ m: 'usn', usn: high });
  }

  return {
    kind: 'ad',
    identity: `ad:${config.connection.url.toLowerCase()}|${config.baseDn.toLowerCase()}`,

    async *fullImport(signal?: AbortSignal): AsyncGenerator<ImportItem> {
      fullWatermark = undefined;
      const c = await connect();
      const nc = await namingContext(c);
      const wm = await currentWatermark(c, nc);
      const aborted = () => new SyncError('Aborted', 'The import was stopped before it finished; nothing was deleted.');
      const read = (conn: LdapConnection, filter: string) => conn.pages(config.baseDn, { filter, attributes, binary, pageSize: config.pageSize ?? 1000 });
      const parts = Math.max(1, config.readConnections ?? 2);
      try {
        if (parts === 1) {
          for await (const page of read(c, AD_OBJECT_FILTER)) {
            for (const e of page) {
              if (signal?.aborted) throw aborted();
              yield await toEntry(c, e, false);
            }
          }
        } else {
          // uSNChanged ranges up to the DC's mark before the read, one connection each. An
          // object changed during the read may leave its range before that range reaches it:
          // the catch-up below reads everything changed since the mark, as newer reads.
          const start = BigInt(await highestUsn(c));
          const conns = [c];
          try {
            for (let i = 1; i < parts; i++) conns.push(await LdapConnection.open(config.connection));
            const width = start / BigInt(parts) + 1n;
            const streams = conns.map((conn, i) => ({ conn, pages: read(conn, `(&${AD_OBJECT_FILTER}(uSNChanged>=${BigInt(i) * width})(uSNChanged<=${i === parts - 1 ? start : BigInt(i + 1) * width - 1n}))`) }));
            for await (const { conn, page } of mergePages(streams)) {
              for (const e of page) {
                if (signal?.aborted) throw aborted();
                yield await toEntry(conn, e, false);
              }
            }
          } finally {
            for (const extra of conns.slice(1)) await extra.close().catch(() => undefined);
          }
          for await (const page of read(c, `(&${AD_OBJECT_FILTER}(uSNChanged>=${start + 1n}))`)) {
            for (const e of page) {
              if (signal?.aborted) throw aborted();
              yield { ...(await toEntry(c, e, false)), reread: true };
            }
          }
        }
      } catch (err) {
        // A failure part-way must fail the import: a partial read would look like deletions.
        throw toSyncError(err, `Reading ${config.baseDn} failed part-way`);
      }
      fullWatermark = JSON.stringify(wm);
    },

    fullImportWatermark: () => fullWatermark,

    deltaImport(watermark: string, signal?: AbortSignal, known?: (objectGuid: string) => boolean): DeltaImport {
      let wm: Watermark;
      try {
        wm = JSON.parse(watermark) as Watermark;
      } catch {
        throw new SyncError('SourceUnreadable', 'The saved AD watermark is not readable; run `nimbus sync --full`.');
      }
      let next: string | undefined;
      const done = (w: Watermark) => void (next = JSON.stringify(w));
      return {
        changes: (async function* () {
          const c = await connect();
          const nc = await namingContext(c);
          if (wm.m === 'dirsync') {
            try {
              yield* dirSyncChanges(c, nc, Buffer.from(wm.cookie, 'base64'), wm.hcu, done, signal, known);
              return;
            } catch (err) {
              // Rights taken away since the last run: fall back, from the USN of now is unsafe
              // (changes since the cookie would be lost), so ask for a full import instead.
              if (!(err instanceof SyncError && dirSyncRefused(err.cause))) throw err;
              throw new SyncError('SourceUnreadable', `DirSync was refused on ${nc} (the bind account lost "Replicating Directory Changes"?). Run \`nimbus sync --full\` once; later deltas use uSNChanged.`, { cause: err });
            }
          }
          yield* usnChanges(c, nc, wm.usn, done, signal);
        })(),
        watermark: () => {
          if (next === undefined) throw new Error('the delta import has not finished');
          return next;
        },
        // uSNChanged deltas: an account without "Replicating Directory Changes" usually may not
        // list CN=Deleted Objects either, so tombstones may be invisible; the list of live
        // objectGUIDs (one small attribute per object) lets the engine find deletions anyway.
        ...(wm.m === 'usn'
          ? {
              liveObjectGuids: async function* () {
                const c = await connect();
                const nc = await namingContext(c);
                try {
                  for await (const page of c.pages(nc, { filter: AD_OBJECT_FILTER, attributes: ['objectGUID'], binary, pageSize: config.pageSize ?? 1000 })) {
                    for (const e of page) {
                      const g = guidOf(e);
                      if (g !== undefined) yield g;
                    }
                  }
                } catch (err) {
                  throw toSyncError(err, `Listing the objects under ${nc} failed`);
                }
              },
            }
          : {}),
      };
    },

    async readEntry(dn: string): Promise<SourceEntry | null | undefined> {
      const c = await connect();
      try {
        const r = await c.client.search(dn, { scope: 'base', filter: AD_OBJECT_FILTER, attributes, explicitBufferAttributes: binary });
        const e = r.searchEntries[0];
        // There, but not a user, group or contact (an OU whose description changed, say).
        return e ? await toEntry(c, e, false) : null;
      } catch (err) {
        if (err instanceof NoSuchObjectError) return undefined;
        throw toSyncError(err, `Reading ${dn} failed`);
      }
    },

    async close() {
      await conn?.close();
      conn = undefined;
    },
  };
}
