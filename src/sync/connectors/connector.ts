// The one interface every source connector (LDIF file, AD over LDAP, later generic LDAP)
// implements: stream entries as an async iterator; the engine does scope, mapping and diffing.

/** A binary attribute value (objectGUID, objectSid, ...) is a Buffer; everything else text. */
export type LdapValue = string | Buffer;

/** One directory entry as the source holds it; attribute names keep the source's spelling. */
export interface SourceEntry {
  dn: string;
  attributes: Record<string, LdapValue[]>;
  /**
   * Full imports: a newer read of an entry this import may have yielded already (it changed
   * while the import read). It replaces the earlier one instead of counting as a duplicate.
   */
  reread?: boolean;
}

/**
 * An entry that could not be read. The engine records it as a per-object error and, because
 * it cannot know which object it was, withholds deletions for that run.
 */
export interface SourceEntryError {
  error: string;
  dn?: string;
  /** Where in the source (e.g. `file.ldif:120`). */
  location?: string;
}

export type ImportItem = SourceEntry | SourceEntryError;

export const isEntryError = (i: ImportItem): i is SourceEntryError => 'error' in i;

/** A change from a delta import: a new or changed entry, or a deletion keyed by objectGUID (base64). */
/**
 * One change of a delta. An upsert carries the changed attributes, or with `whole` all the
 * attributes the connector reads (an object created since the watermark, or one read whole):
 * then the engine needs no `readEntry` for an object it holds no staged copy of.
 */
export type DeltaChange = { kind: 'upsert'; entry: SourceEntry; whole?: boolean } | { kind: 'delete'; objectGuid: string; dn?: string };

export interface DeltaImport {
  changes: AsyncIterable<DeltaChange>;
  /** The watermark to persist once every change above is safely staged. */
  watermark(): string;
  /**
   * For sources whose deltas cannot report deletions (an AD account that may not read
   * tombstones): every objectGUID (base64) present now, read after `changes`; the engine then
   * finds deletions by difference, as a full import does.
   */
  liveObjectGuids?(): AsyncIterable<string>;
}

export interface SourceConnector {
  /** Connector kind, e.g. `ldif`, `ad`. */
  readonly kind: string;
  /** What is read (file, server + base DN); a different identity starts a fresh connector space. */
  readonly identity: string;
  /** Every entry of the source. Throws SyncError when the source cannot be read at all. */
  fullImport(signal?: AbortSignal): AsyncIterable<ImportItem>;
  /**
   * After a complete fullImport: the watermark a later deltaImport starts from. Connectors take
   * it before reading the first entry, so changes made during the import are read again.
   */
  fullImportWatermark?(): string | undefined;
  /** Changes since `watermark`; connectors without it (LDIF) always run full imports. */
  /**
   * `known`: whether the engine holds an object with this objectGUID (base64) as its anchor,
   * so a user, group or contact: the connector may skip what it checks only for other entries
   * (a renamed entry it knows is not a container whose subtree moved).
   */
  deltaImport?(watermark: string, signal?: AbortSignal, known?: (objectGuid: string) => boolean): DeltaImport;
  /**
   * The whole current entry at `dn`, for a delta change the connector space holds no staged
   * copy of (new, or out of scope until now); undefined when it is gone, null when it is
   * there but not an object the connector syncs (a container, say).
   */
  readEntry?(dn: string): Promise<SourceEntry | null | undefined>;
  close(): Promise<void>;
}
