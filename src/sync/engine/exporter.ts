// Where the engine sends its exports: one small interface, two implementations (in-process
// on the cloud's service layer, and HTTP with a client-credentials token).
import type { LeaseState, RequestUpdate, SyncRequest } from '../../cloud/sync/sync-control.ts';
import type { SyncItem, SyncResult, SyncRunReport } from '../../cloud/sync/sync-wire.ts';

export type { LeaseState, RequestUpdate, SyncItem, SyncRequest, SyncResult, SyncRunReport };

/** An upsert whose attributes are the JSON text the engine computed and stored (valid for the cloud's schema). */
export interface PreparedUpsert {
  op: 'upsert';
  type: 'user' | 'group';
  sourceAnchor: string;
  attributesJson: string;
}

export interface Exporter {
  /** Identity of the target (URL + tenant); a different one means nothing was exported there yet. */
  readonly identity: string;
  /**
   * How many batches may be at the cloud at once and still be applied in the order sent
   * (default 1). Order matters: of two objects claiming one address, the first applied keeps it.
   */
  readonly inFlight?: number;
  /** Fails with a SyncError when exports cannot work (unreachable, bad credentials, sync not activated). */
  check(): Promise<void>;
  /** Applies one batch (<= MAX_SYNC_BATCH, 5000); one result per item, in order. Throws SyncError only for whole-batch failures. */
  export(items: SyncItem[]): Promise<SyncResult[]>;
  /**
   * The same for upserts whose attributes are still JSON text: an exporter that sends JSON
   * anyway (HTTP) splices the text in instead of the engine parsing it for it to serialize again.
   */
  exportPrepared?(items: PreparedUpsert[]): Promise<SyncResult[]>;
  /** Tells the cloud directory about a run (at its start and its end), for the portal. */
  reportRun?(run: SyncRunReport): Promise<void>;
  /** The cloud object now, in Graph's JSON shape (all properties; a deleted one from the recycle bin), or null; for `nimbus sync explain`. */
  lookup?(type: 'user' | 'group', cloudId: string): Promise<Record<string, unknown> | null>;
  /** Takes or renews the tenant's export lease for `ttlSeconds`; `acquired: false` names who holds it. */
  acquireLease?(holder: string, ttlSeconds: number): Promise<LeaseState>;
  /** Gives the lease up (clean shutdown). */
  releaseLease?(holder: string): Promise<void>;
  /** Administrators' requests waiting for the agent ("sync now", "allow deletes"), oldest first. */
  pendingRequests?(): Promise<SyncRequest[]>;
  /** Claims (before the run), completes (after it) or gives back a request; needs the lease. */
  updateRequest?(id: string, update: RequestUpdate): Promise<void>;
  close(): Promise<void>;
}
