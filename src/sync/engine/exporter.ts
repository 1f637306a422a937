// Where the engine sends its exports: one small interface, two implementations (in-process
// on the cloud's service layer, and HTTP with a client-credentials token).
import type { SyncItem, SyncResult } from '../../cloud/sync/sync-service.ts';

export type { SyncItem, SyncResult };

export interface Exporter {
  /** Identity of the target (URL + tenant); a different one means nothing was exported there yet. */
  readonly identity: string;
  /** Fails with a SyncError when exports cannot work (unreachable, bad credentials, sync not activated). */
  check(): Promise<void>;
  /** Applies one batch (<= 500); one result per item, in order. Throws SyncError only for whole-batch failures. */
  export(items: SyncItem[]): Promise<SyncResult[]>;
  close(): Promise<void>;
}
