// Where the engine sends its exports: one small interface, two implementations (in-process
// on the cloud's service layer, and HTTP with a client-credentials token).
import type { SyncItem, SyncResult, SyncRunReport } from '../../cloud/sync/sync-wire.ts';

export type { SyncItem, SyncResult, SyncRunReport };

export interface Exporter {
  /** Identity of the target (URL + tenant); a different one means nothing was exported there yet. */
  readonly identity: string;
  /** Fails with a SyncError when exports cannot work (unreachable, bad credentials, sync not activated). */
  check(): Promise<void>;
  /** Applies one batch (<= 500); one result per item, in order. Throws SyncError only for whole-batch failures. */
  export(items: SyncItem[]): Promise<SyncResult[]>;
  /** Tells the cloud directory about a run (at its start and its end), for the portal. */
  reportRun?(run: SyncRunReport): Promise<void>;
  close(): Promise<void>;
}
