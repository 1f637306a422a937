// Settings of the LDIF connector, each with its default.

/** Attributes AD holds as binary; their `::` values stay bytes instead of being read as UTF-8. */
export const DEFAULT_BINARY_ATTRIBUTES = ['objectGUID', 'objectSid', 'mS-DS-ConsistencyGuid', 'sIDHistory', 'thumbnailPhoto', 'jpegPhoto', 'userCertificate', 'msExchMailboxGuid'] as const;

export interface LdifConnectorConfig {
  /** Path of the export (`ldifde -f`, `ldapsearch -LLL ... > file`). Required. */
  path: string;
  /** Attributes whose base64 values are bytes. Default: DEFAULT_BINARY_ATTRIBUTES. */
  binaryAttributes?: readonly string[];
}
