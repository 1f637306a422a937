// Errors that stop a sync run before or outside per-object work (config, connection, target
// refusing), with stable codes; per-object problems are recorded, never thrown.

export type SyncErrorCode =
  | 'ConfigNotFound'
  | 'ConfigInvalid'
  | 'SecretUnreadable'
  | 'SourceUnreadable'
  | 'SourceEmpty'
  | 'TargetUnreachable'
  | 'TargetAuthFailed'
  | 'DirectorySyncNotActivated'
  | 'TargetRefused'
  | 'RunInProgress'
  | 'Aborted';

/** A run could not start or had to stop as a whole; `message` says what was wrong and what to do. */
export class SyncError extends Error {
  readonly code: SyncErrorCode;
  constructor(code: SyncErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SyncError';
    this.code = code;
  }
}
