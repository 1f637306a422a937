// Typed LDAP errors with stable codes: every failure of the connection layer becomes one of
// these, naming what was wrong (bind identity, URL, object, right) and what to do.
import {
  InsufficientAccessError,
  InvalidCredentialsError,
  NoSuchObjectError,
  StrongAuthRequiredError,
  ConfidentialityRequiredError,
  UnwillingToPerformError,
  ConstraintViolationError,
  NoSuchAttributeError,
  TypeOrValueExistsError,
} from 'ldapts';
import { NimbusError, type ErrorKind } from '../errors.ts';

export type LdapErrorCode =
  | 'LdapInvalidCredentials'
  | 'LdapUnreachable'
  | 'LdapTls'
  | 'LdapTimeout'
  | 'LdapInsufficientRights'
  | 'LdapNoSuchObject'
  | 'LdapStrongAuthRequired'
  | 'LdapConfig'
  | 'LdapOperationFailed';

const KIND: Record<LdapErrorCode, ErrorKind> = {
  LdapInvalidCredentials: 'unavailable',
  LdapUnreachable: 'unavailable',
  LdapTls: 'unavailable',
  LdapTimeout: 'unavailable',
  LdapStrongAuthRequired: 'unavailable',
  LdapConfig: 'unavailable',
  LdapInsufficientRights: 'forbidden',
  LdapNoSuchObject: 'not_found',
  LdapOperationFailed: 'bad_request',
};

/**
 * An LDAP failure meant for the user. Connection-level codes have kind `unavailable`, which the
 * CLI renders as exit 2 ("could not run"); per-object failures are ordinary errors.
 */
export class LdapError extends NimbusError {
  declare readonly code: LdapErrorCode;
  constructor(code: LdapErrorCode, message: string, opts: { target?: string; cause?: unknown } = {}) {
    super(KIND[code], code, message, opts.target ? { target: opts.target } : {});
    this.name = 'LdapError';
    if (opts.cause !== undefined) (this as { cause?: unknown }).cause = opts.cause;
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|ERR_SSL|EPROTO|HOSTNAME|DEPTH_ZERO|ALTNAME/;

/** Turns a socket/TLS failure while connecting into an LdapError naming the URL. */
export function connectError(err: unknown, url: string, how: { starttls: boolean; caFile?: string | undefined }): LdapError {
  const e = err as NodeJS.ErrnoException & { reason?: string };
  const code = e?.code ?? '';
  const msg = e?.message ?? String(err);
  if (TLS_CODES.test(code) || /certificate|tls|ssl/i.test(msg)) {
    const hint = how.caFile
      ? `check that ${how.caFile} holds the CA that signed the server's certificate and that the certificate names the host in the URL`
      : 'pass --ca-file with the PEM certificate of the CA that signed the domain controller\'s certificate';
    return new LdapError('LdapTls', `TLS with ${url} failed${how.starttls ? ' (StartTLS)' : ''}: ${msg}. ${hint[0]?.toUpperCase()}${hint.slice(1)}.`, { target: url, cause: err });
  }
  if (/timeout|timed out/i.test(msg) || code === 'ETIMEDOUT') {
    return new LdapError('LdapTimeout', `${url} did not answer in time (${msg}). Check the host and port, or raise --timeout.`, { target: url, cause: err });
  }
  return new LdapError(
    'LdapUnreachable',
    `Cannot reach the LDAP server at ${url} (${code || msg}). Check the URL (ldap://host:389 or ldaps://host:636), that the domain controller is running, and that no firewall blocks the port.`,
    { target: url, cause: err },
  );
}

/** Turns a failed bind into an LdapError naming the bind identity. */
export function bindError(err: unknown, url: string, bindDn: string, starttls: boolean): LdapError {
  if (err instanceof InvalidCredentialsError) {
    return new LdapError(
      'LdapInvalidCredentials',
      `The domain controller at ${url} refused the credentials of ${bindDn}: wrong password, unknown account, or the account is disabled or locked. Check the bind DN/UPN and the password (--password-file or NIMBUS_AD_PASSWORD).`,
      { target: bindDn, cause: err },
    );
  }
  if (err instanceof StrongAuthRequiredError || err instanceof ConfidentialityRequiredError) {
    return new LdapError(
      'LdapStrongAuthRequired',
      `${url} requires an encrypted connection for the bind of ${bindDn}${starttls ? '' : '. Use ldaps://host:636 or add --starttls'}.`,
      { target: bindDn, cause: err },
    );
  }
  if (err instanceof LdapError) return err;
  return connectError(err, url, { starttls });
}

/**
 * Turns a failed operation on one object into an LdapError naming the object and, for access
 * errors, the right needed (`right` says what the operation needed, e.g. "write userPrincipalName").
 */
export function operationError(err: unknown, dn: string, right: string): LdapError {
  if (err instanceof LdapError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (err instanceof InsufficientAccessError || (err instanceof UnwillingToPerformError && /access|denied/i.test(msg))) {
    return new LdapError(
      'LdapInsufficientRights',
      `The bind account may not ${right} on ${dn}. Grant it that right (delegate control on the object or its OU) or bind as an account that has it.`,
      { target: dn, cause: err },
    );
  }
  if (err instanceof NoSuchObjectError) return new LdapError('LdapNoSuchObject', `${dn} does not exist (or the bind account cannot see it).`, { target: dn, cause: err });
  if (err instanceof NoSuchAttributeError) return new LdapError('LdapOperationFailed', `${dn} changed meanwhile: the value to replace is no longer there (${msg}). Re-read it and try again.`, { target: dn, cause: err });
  if (err instanceof TypeOrValueExistsError || err instanceof ConstraintViolationError) {
    return new LdapError('LdapOperationFailed', `The domain controller refused the change of ${dn}: ${msg}.`, { target: dn, cause: err });
  }
  if ((err as NodeJS.ErrnoException)?.code || /socket|connection|closed/i.test(msg)) {
    // `right` says what was under way: a read, or the right a change needs (a write).
    const doing = right.startsWith('read') ? 'reading' : 'changing';
    return new LdapError('LdapUnreachable', `The connection to the domain controller was lost while ${doing} ${dn} (${msg}). Check that it is reachable and run the command again.`, { target: dn, cause: err });
  }
  return new LdapError('LdapOperationFailed', `${dn}: ${msg}.`, { target: dn, cause: err });
}
