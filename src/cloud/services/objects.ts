// Write helpers shared by users and groups: the per-tenant change sequence that delta
// queries read, and the tenant's single case-insensitive address space (UPN, mail, SMTP).
import type { Kysely } from 'kysely';
import { NimbusError } from '../../shared/errors.ts';
import { asciiLower, smtpAddress } from '../../shared/upn.ts';
import type { Database } from '../store/schema.ts';

type Db = Kysely<Database>;

/**
 * Takes `n` change numbers for the tenant and returns the last one. Runs inside the write
 * transaction, so numbers are handed out in commit order (delta never skips a change).
 */
export async function nextSeq(db: Db, tenantId: string, n = 1): Promise<number> {
  const row = await db
    .updateTable('tenants')
    .set((eb) => ({ change_seq: eb('change_seq', '+', n) }))
    .where('id', '=', tenantId)
    .returning('change_seq')
    .executeTakeFirstOrThrow();
  return Number(row.change_seq);
}

/** One address an object claims, and the property it comes from (for error messages). */
export interface AddressClaim {
  address: string;
  property: 'userPrincipalName' | 'mail' | 'proxyAddresses';
}

export function addressClaims(o: { upn?: string | null; mail?: string | null; proxyAddresses?: readonly string[] }): AddressClaim[] {
  const out = new Map<string, AddressClaim>();
  const add = (a: string | null | undefined, property: AddressClaim['property']) => {
    if (!a) return;
    const key = asciiLower(a);
    if (!out.has(key)) out.set(key, { address: key, property });
  };
  add(o.upn, 'userPrincipalName');
  add(o.mail, 'mail');
  for (const p of o.proxyAddresses ?? []) add(smtpAddress(p), 'proxyAddresses');
  return [...out.values()];
}

export interface AddressConflict {
  claim: AddressClaim;
  otherId: string;
  otherType: 'user' | 'group';
  otherName: string | null;
}

/** Which of the claims another object of the tenant already holds. */
export async function findConflicts(db: Db, tenantId: string, objectId: string, claims: readonly AddressClaim[]): Promise<AddressConflict[]> {
  if (claims.length === 0) return [];
  const held = await db
    .selectFrom('addresses')
    .select(['address', 'object_id'])
    .where('tenant_id', '=', tenantId)
    .where('address', 'in', claims.map((c) => c.address))
    .where('object_id', '!=', objectId)
    .execute();
  const out: AddressConflict[] = [];
  for (const h of held) out.push(await conflictWith(db, tenantId, claims.find((c) => c.address === h.address)!, h.object_id));
  return out;
}

/** The conflict over `claim` with the object `otherId` that holds it, named for messages (a user by UPN). */
export async function conflictWith(db: Db, tenantId: string, claim: AddressClaim, otherId: string): Promise<AddressConflict> {
  const u = await db.selectFrom('users').select(['upn']).where('tenant_id', '=', tenantId).where('id', '=', otherId).executeTakeFirst();
  if (u) return { claim, otherId, otherType: 'user', otherName: u.upn };
  const g = await db.selectFrom('groups').select(['display_name']).where('tenant_id', '=', tenantId).where('id', '=', otherId).executeTakeFirst();
  return { claim, otherId, otherType: 'group', otherName: g?.display_name ?? null };
}

export function conflictError(c: AddressConflict): NimbusError {
  const message =
    `Another object with the same value for property ${c.claim.property} already exists: '${c.claim.address}' is held by ` +
    `${c.otherType} '${c.otherName ?? c.otherId}' (id ${c.otherId}). Use a different value or change the other object first.`;
  return new NimbusError('bad_request', 'Request_BadRequest', message, {
    target: c.claim.property,
    details: [{ code: 'ObjectConflict', message, target: c.claim.property }],
  });
}

/** Makes the object hold exactly `claims`; throws a 400 naming the first conflict. */
export async function claimAddresses(db: Db, tenantId: string, objectId: string, claims: readonly AddressClaim[]): Promise<void> {
  const conflicts = await findConflicts(db, tenantId, objectId, claims);
  if (conflicts[0]) throw conflictError(conflicts[0]);
  await setAddresses(db, tenantId, objectId, claims);
}

/**
 * Makes the object hold exactly `claims`, for callers that resolved conflicts already (the
 * sync path leaves conflicting values off, in the same transaction).
 */
export async function setAddresses(db: Db, tenantId: string, objectId: string, claims: readonly AddressClaim[]): Promise<void> {
  const keep = claims.map((c) => c.address);
  let del = db.deleteFrom('addresses').where('tenant_id', '=', tenantId).where('object_id', '=', objectId);
  if (keep.length > 0) del = del.where('address', 'not in', keep);
  await del.execute();
  if (keep.length > 0) {
    await db
      .insertInto('addresses')
      .values(keep.map((address) => ({ tenant_id: tenantId, address, object_id: objectId })))
      .onConflict((oc) => oc.columns(['tenant_id', 'address']).doNothing())
      .execute();
  }
}

export async function releaseAddresses(db: Db, tenantId: string, objectId: string): Promise<void> {
  await db.deleteFrom('addresses').where('tenant_id', '=', tenantId).where('object_id', '=', objectId).execute();
}

/** The object id in an `@odata.id` reference (`https://host/v1.0/directoryObjects/{id}`, `.../users/{id}`, or a bare id). */
export function refId(ref: unknown, property = '@odata.id'): string {
  const raw = ref !== null && typeof ref === 'object' ? (ref as Record<string, unknown>)['@odata.id'] : ref;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048)
    throw new NimbusError('bad_request', 'Request_BadRequest', `Invalid reference: '${property}' must be a URL like https://graph.microsoft.com/v1.0/directoryObjects/{id}.`, { target: property });
  const last = raw.replace(/\/+$/, '').split('/').pop() ?? '';
  let decoded: string;
  try {
    decoded = decodeURIComponent(last);
  } catch {
    throw new NimbusError('bad_request', 'Request_BadRequest', `Invalid reference: '${raw}' has a malformed %-escape.`, { target: property });
  }
  const m = /^(?:[A-Za-z]+\(')?([^'()]+)(?:'\))?$/.exec(decoded);
  if (!m) throw new NimbusError('bad_request', 'Request_BadRequest', `Invalid reference: cannot find an object id in '${raw}'.`, { target: property });
  return m[1]!.toLowerCase();
}

/** Finds a live user or group of the tenant by id. */
export async function findObject(db: Db, tenantId: string, id: string): Promise<{ type: 'user' | 'group'; row: Record<string, unknown> } | undefined> {
  const u = await db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
  if (u) return { type: 'user', row: u as unknown as Record<string, unknown> };
  const g = await db.selectFrom('groups').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
  if (g) return { type: 'group', row: g as unknown as Record<string, unknown> };
  return undefined;
}
