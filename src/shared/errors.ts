// Typed errors with stable string codes. The Graph layer renders them as Graph's error
// JSON, the CLI as a message plus exit code; nothing else formats errors.
export type ErrorKind =
  | 'bad_request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'gone'
  | 'too_many_requests'
  | 'unavailable';

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  gone: 410,
  too_many_requests: 429,
  unavailable: 503,
};

export interface ErrorDetail {
  code: string;
  message: string;
  target?: string;
}

/**
 * An error meant for the user. `code` is the stable Graph-style code
 * (e.g. `Request_BadRequest`); `message` names what was wrong and what to do.
 */
export class NimbusError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly target: string | undefined;
  readonly details: ErrorDetail[];
  constructor(kind: ErrorKind, code: string, message: string, opts: { target?: string; details?: ErrorDetail[] } = {}) {
    super(message);
    this.name = 'NimbusError';
    this.kind = kind;
    this.code = code;
    this.target = opts.target;
    this.details = opts.details ?? [];
  }
  get status(): number {
    return STATUS[this.kind];
  }
}

export const badRequest = (message: string, target?: string, code = 'Request_BadRequest') =>
  new NimbusError('bad_request', code, message, target ? { target } : {});
export const notFound = (message: string, code = 'Request_ResourceNotFound') => new NimbusError('not_found', code, message);
export const forbidden = (message: string, code = 'Authorization_RequestDenied') => new NimbusError('forbidden', code, message);
export const unauthenticated = (message: string, code = 'InvalidAuthenticationToken') =>
  new NimbusError('unauthenticated', code, message);
export const conflict = (message: string, target?: string, code = 'Request_BadRequest') =>
  // Graph reports uniqueness conflicts as 400 Request_BadRequest with an ObjectConflict detail.
  new NimbusError('bad_request', code, message, target ? { target, details: [{ code: 'ObjectConflict', message, target }] } : {});
export const unsupported = (message: string) => new NimbusError('bad_request', 'Request_UnsupportedQuery', message);
