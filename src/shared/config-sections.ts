// The `source` and `target` sections of the one YAML config file, shared by the sync agent
// (src/sync/config.ts) and the AD preparation tooling (src/shared/ldap/ldap-config.ts).
import { z } from 'zod';
import { MAX_SYNC_BATCH } from '../cloud/sync/sync-wire.ts';

export const dnList = z.array(z.string().min(1));

export const sourceSchema = z
  .object({
    /** `ad` (LDAP to a domain controller) or `ldif` (an ldifde/ldapsearch export file). Required. */
    type: z.enum(['ad', 'ldif']),
    /** ad: `ldap://host:389` or `ldaps://host:636`. */
    url: z.string().regex(/^ldaps?:\/\//i, 'must start with ldap:// or ldaps://').optional(),
    /** ad: the account to bind as (DN or UPN). */
    bindDn: z.string().min(1).optional(),
    /** ad: file holding the bind password (or env NIMBUS_SOURCE_PASSWORD). */
    passwordFile: z.string().min(1).optional(),
    /** Search base; also gives the AD domain DNS name (its DC= parts). ad: required; ldif: optional. */
    baseDn: z.string().min(1).optional(),
    /** AD domain DNS name for `<sAMAccountName>@<domain>` UPNs; default: from baseDn's DC= parts. */
    domain: z.string().min(1).optional(),
    /** Only objects at or under these DNs are in scope; default: everything under baseDn. */
    include: dnList.default([]),
    /** Objects at or under these DNs are out of scope (wins over include). Default: none. */
    exclude: dnList.default([]),
    /** An LDAP filter (RFC 4515) an object must match to be in scope, e.g. `(!(department=Temp))`. Default: none. */
    filter: z.string().min(1).optional(),
    /** ldif: path of the export file. */
    path: z.string().min(1).optional(),
    /** ad: PEM CA file to trust for ldaps:// or StartTLS. Default: Node's built-in CAs. */
    caFile: z.string().min(1).optional(),
    /** ad: upgrade ldap:// with StartTLS. Default false. */
    starttls: z.boolean().optional(),
    /** ad: connections a full import reads over at once, each a uSNChanged range of the directory. Default 2; 1 reads in one search. */
    readConnections: z.number().int().min(1).max(8).optional(),
  })
  .strict();

export const targetSchema = z
  .object({
    /** `nimbus`: a Nimbus cloud directory. Default nimbus. */
    type: z.enum(['nimbus']).default('nimbus'),
    /** Base URL of the cloud directory, e.g. http://127.0.0.1:8080. Required. */
    url: z.string().url(),
    /** Tenant id, name or verified domain. Required. */
    tenant: z.string().min(1),
    /** Client id of an app with the sync role (`nimbus app create --role sync`). Required. */
    clientId: z.string().min(1),
    /** File holding the app's client secret (or env NIMBUS_TARGET_CLIENT_SECRET). */
    clientSecretFile: z.string().min(1).optional(),
    /** PEM file of a private CA to trust when the cloud directory serves HTTPS with its own certificate. Default: system CAs. */
    caFile: z.string().min(1).optional(),
    /** Objects per export batch, 1-2000 (the cloud's limit): each is one cloud transaction, and larger ones write the indexes fewer times. */
    batchSize: z.number().int().min(1).max(MAX_SYNC_BATCH).default(MAX_SYNC_BATCH),
  })
  .strict();

