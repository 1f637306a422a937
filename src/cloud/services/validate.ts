// Request-body validation for users and groups, driven by the property tables: unknown
// properties, wrong types, overlong strings and permission to write each property.
import { badRequest } from '../../shared/errors.ts';
import { checkValue, findProp, type ObjectType, type PropDef } from '../model/properties.ts';
import { isSync, type Actor } from './context.ts';

export interface ValidBody {
  values: Map<PropDef, unknown>;
  /** Properties handled by the service itself (passwordProfile, ...@odata.bind). */
  special: Record<string, unknown>;
}

export function validateBody(
  type: ObjectType,
  actor: Actor,
  body: unknown,
  opts: { special: readonly string[]; synced: boolean },
): ValidBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw badRequest(`The request body must be a JSON object with the ${type}'s properties.`);
  const values = new Map<PropDef, unknown>();
  const special: Record<string, unknown> = {};
  const lockedByOnPrem: string[] = [];
  for (const [key, raw] of Object.entries(body as Record<string, unknown>)) {
    if (key === '@odata.type') continue;
    if (opts.special.includes(key)) {
      special[key] = raw;
      continue;
    }
    const p = findProp(type, key);
    if (!p) throw badRequest(`Property '${key}' does not exist as a declared property or extension property of ${type}.`, key);
    if (p.write === 'none') throw badRequest(`Property '${p.name}' is read-only and cannot be set.`, p.name);
    if (p.write === 'sync' && !isSync(actor))
      throw badRequest(`Property '${p.name}' is owned by directory synchronization and can only be set by an app with the sync role.`, p.name);
    if (opts.synced && p.onPrem && !isSync(actor)) lockedByOnPrem.push(p.name);
    values.set(p, checkValue(p, raw));
  }
  if (lockedByOnPrem.length > 0)
    throw badRequest(
      `Unable to update the following properties of a ${type} synchronized from on-premises: ${lockedByOnPrem.join(', ')}. Change them in the on-premises directory; they sync from there.`,
      lockedByOnPrem[0],
    );
  return { values, special };
}

export function requireProps(type: ObjectType, v: ValidBody, names: readonly string[]): void {
  // A required property sent as null is as missing as one not sent at all.
  const have = new Set([...v.values].filter(([, val]) => val !== null).map(([p]) => p.name));
  const missing = names.filter((n) => !have.has(n) && !(n in v.special));
  if (missing.length > 0)
    throw badRequest(`Missing required propert${missing.length > 1 ? 'ies' : 'y'} for a new ${type}: ${missing.join(', ')}.`, missing[0]);
}

export function get<T>(v: ValidBody, name: string): T | undefined {
  for (const [p, val] of v.values) if (p.name === name) return val as T;
  return undefined;
}

/** Entra: mailNickname may not contain spaces or @ ( ) \ [ ] " ; : < > , and is 1-64 characters. */
export function checkMailNickname(n: string | null): void {
  if (n === null) throw badRequest("Invalid value for property 'mailNickname': it is required and cannot be null.", 'mailNickname');
  if (n.length === 0 || n.length > 64 || /[\s@()\\[\]";:<>,]/.test(n) || /[^\x20-\x7e]/.test(n))
    throw badRequest(`Invalid value for property 'mailNickname': '${n}' must be 1-64 ASCII characters without spaces or @ ( ) \\ [ ] " ; : < > ,.`, 'mailNickname');
}

/** Proxy addresses: `type:address`; SMTP ones must hold a valid address. */
export function checkProxyAddresses(list: readonly string[]): void {
  let primaries = 0;
  for (const p of list) {
    const m = /^([A-Za-z0-9]{1,9}):(.+)$/.exec(p);
    if (!m || /[\s<>();,[\]"]/.test(p))
      throw badRequest(`Invalid value for property 'proxyAddresses': '${p}' must look like SMTP:name@domain (no spaces or < > ( ) ; , [ ] ").`, 'proxyAddresses');
    if (m[1]!.toLowerCase() === 'smtp' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(m[2]!))
      throw badRequest(`Invalid value for property 'proxyAddresses': '${p}' is not a valid e-mail address.`, 'proxyAddresses');
    if (m[1] === 'SMTP') primaries++;
  }
  if (primaries > 1) throw badRequest("Invalid value for property 'proxyAddresses': only one primary address (upper-case SMTP:) is allowed.", 'proxyAddresses');
}

export function checkMail(mail: string): void {
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(mail)) throw badRequest(`Invalid value for property 'mail': '${mail}' is not a valid e-mail address.`, 'mail');
}
