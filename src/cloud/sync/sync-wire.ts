// The wire format of the cloud side of sync: what the agent sends (objects keyed by source
// anchor, run reports) and what it gets back (per-object results, provisioning errors).
// Validated with zod; the types are derived from the schemas.
import { z } from 'zod';

// ---- input ------------------------------------------------------------------------------

/** Source anchor: base64 of ms-DS-ConsistencyGuid or objectGUID; < 60 chars, case-sensitive. */
const anchor = z.string().min(1).max(60).regex(/^[A-Za-z0-9+/=_-]+$/, 'must be base64');
const str = (max: number) => z.string().max(max).nullish();

export const syncUserAttributes = z
  .object({
    userPrincipalName: str(256),
    displayName: str(256),
    givenName: str(64),
    surname: str(64),
    mail: str(256),
    mailNickname: str(64),
    proxyAddresses: z.array(z.string().max(256)).max(1000).optional(),
    accountEnabled: z.boolean().optional(),
    jobTitle: str(128),
    department: str(64),
    companyName: str(64),
    employeeId: str(16),
    officeLocation: str(128),
    mobilePhone: str(64),
    businessPhones: z.array(z.string().max(64)).max(10).optional(),
    city: str(128),
    state: str(128),
    country: str(128),
    streetAddress: str(1024),
    postalCode: str(40),
    usageLocation: str(2),
    onPremisesDistinguishedName: str(1024),
    onPremisesSamAccountName: str(64),
    onPremisesSecurityIdentifier: str(256),
    onPremisesDomainName: str(256),
    /** Source anchor of the manager. */
    manager: anchor.nullish(),
  })
  .strict();

export const syncGroupAttributes = z
  .object({
    displayName: str(256),
    description: str(1024),
    mail: str(256),
    mailNickname: str(64),
    proxyAddresses: z.array(z.string().max(256)).max(1000).optional(),
    mailEnabled: z.boolean().optional(),
    securityEnabled: z.boolean().optional(),
    onPremisesSamAccountName: str(64),
    onPremisesSecurityIdentifier: str(256),
    onPremisesDomainName: str(256),
    onPremisesNetBiosName: str(64),
    /** Source anchors of all direct members (users and groups). */
    members: z.array(anchor).max(1_000_000).optional(),
  })
  .strict();

const syncHead = z
  .object({ op: z.enum(['upsert', 'delete']), type: z.enum(['user', 'group']), sourceAnchor: anchor, attributes: z.unknown().optional() })
  .strict();

export type SyncItem =
  | { op: 'upsert'; type: 'user'; sourceAnchor: string; attributes: SyncUserAttributes }
  | { op: 'upsert'; type: 'group'; sourceAnchor: string; attributes: SyncGroupAttributes }
  | { op: 'delete'; type: 'user' | 'group'; sourceAnchor: string };

/** Parses one batch item; the error names the field that is wrong. */
export function parseItem(o: unknown): { ok: true; item: SyncItem } | { ok: false; path: string; message: string } {
  const h = syncHead.safeParse(o);
  if (!h.success) return { ok: false, path: h.error.issues[0]!.path.join('.'), message: h.error.issues[0]!.message };
  const { op, type, sourceAnchor } = h.data;
  if (op === 'delete') return { ok: true, item: { op, type, sourceAnchor } };
  const schema = type === 'user' ? syncUserAttributes : syncGroupAttributes;
  const a = schema.safeParse(h.data.attributes ?? {});
  if (!a.success) {
    const issue = a.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : '';
    return { ok: false, path: ['attributes', ...issue.path].join('.'), message: `${issue.message}${keys}` };
  }
  return { ok: true, item: type === 'user' ? { op, type, sourceAnchor, attributes: a.data } : { op, type, sourceAnchor, attributes: a.data } };
}
export type SyncUserAttributes = z.infer<typeof syncUserAttributes>;
export type SyncGroupAttributes = z.infer<typeof syncGroupAttributes>;

/**
 * Objects per sync batch. Each batch is one transaction in the cloud, and a commit writes every
 * page the batch dirtied in the tenant's indexes: at 100k users, batches of 5000 took the
 * cloud's part of a first sync from 33 s to 26 s against batches of 2000 (10000 gained nothing more).
 */
export const MAX_SYNC_BATCH = 5000;

/** Largest request body of POST /sync/v1/objects (Graph requests keep the 4 MB limit). */
export const MAX_SYNC_BODY_BYTES = 16 * 1024 * 1024;

/** Objects listed in one run report (pending deletes, pending exports, deletes made); the total says how many there are. */
export const MAX_REPORTED_OBJECTS = 1000;
const count = z.number().int().nonnegative();
const objectType = z.enum(['user', 'group']);
const reportedDeletes = z
  .object({
    total: count,
    items: z.array(z.object({ anchor, type: objectType, dn: z.string().max(2048), reason: z.enum(['deleted-in-source', 'out-of-scope']) }).strict()).max(MAX_REPORTED_OBJECTS),
  })
  .strict();

/** A run as the agent reports it (POST /sync/v1/runs); sent at start and at the end. */
export const syncRunReport = z
  .object({
    runId: z.string().min(1).max(64).regex(/^[A-Za-z0-9:._-]+$/, 'letters, digits and : . _ - only'),
    kind: z.string().min(1).max(32),
    status: z.string().min(1).max(48),
    inProgress: z.boolean(),
    startedAt: z.string().datetime(),
    endedAt: z.string().datetime().nullish(),
    counts: z.record(z.string(), z.number()).default({}),
    errors: z.array(z.record(z.string(), z.unknown())).max(100).default([]),
    message: z.string().max(2000).nullish(),
    /** A run stopped by the deletion threshold: the deletes it would make (the first 1000, and the total). */
    pendingDeletes: reportedDeletes.nullish(),
    /** A staging run: the exports waiting (counts, the first 1000 with the attributes they change). */
    pendingExports: z
      .object({
        adds: count,
        updates: count,
        deletes: count,
        total: count,
        items: z.array(z.object({ action: z.enum(['add', 'update', 'delete']), type: objectType, anchor, dn: z.string().max(2048), attributes: z.array(z.string().max(128)).max(100) }).strict()).max(MAX_REPORTED_OBJECTS),
      })
      .strict()
      .nullish(),
    /** The deletes a run made (the first 1000, and the total), e.g. after an administrator allowed them. */
    deleted: reportedDeletes.nullish(),
  })
  .strict();
export type SyncRunReport = z.infer<typeof syncRunReport>;

/** Days run reports are kept (AD Connect keeps run history 7 days). */
export const SYNC_RUN_RETENTION_DAYS = 7;

// ---- output -----------------------------------------------------------------------------

export interface ProvisioningError {
  category: 'PropertyConflict' | 'InvalidSoftMatch' | 'InvalidHardMatch' | 'ObjectTypeMismatch' | 'DataValidationFailed';
  propertyCausingError: string;
  value: string;
  occurredDateTime: string;
  /** The other object in a conflict (id and display name). */
  conflictingObjectId?: string;
  conflictingObjectDisplayName?: string | null;
}

export type MatchKind = 'hard' | 'soft-upn' | 'soft-smtp' | 'soft-proxy' | 'new';

export interface SyncResult {
  sourceAnchor: string;
  type: 'user' | 'group';
  status: 'created' | 'updated' | 'restored' | 'unchanged' | 'deleted' | 'not-found' | 'error';
  id?: string;
  match?: MatchKind;
  /** Why soft match did not happen although a candidate existed. */
  softMatchRefused?: string;
  userPrincipalName?: string;
  provisioningErrors?: ProvisioningError[];
  /** Anchors (manager, members) not known in the cloud yet; export them, then this again. */
  unresolvedReferences?: string[];
  message?: string;
}

