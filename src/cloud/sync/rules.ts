// Pure rules of the cloud side of directory sync, as Entra applies them (see
// shared/REFERENCE.md, "Microsoft Entra Connect Sync"): which mailNickname and UPN an
// incoming user gets, and the placeholder UPN of duplicate-attribute resiliency.
import { asciiLower, fallbackUpn, primarySmtp, splitUpn, upnProblem } from '../../shared/upn.ts';

export interface IncomingNames {
  userPrincipalName?: string | null;
  mailNickname?: string | null;
  mail?: string | null;
  proxyAddresses?: readonly string[];
}

const NICK_CLEAN = /[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]/g;

/**
 * mailNickname on first sync: on-premises mailNickname, else the primary SMTP prefix, else
 * the mail prefix, else the UPN prefix (Entra's order).
 */
export function syncMailNickname(o: IncomingNames): string {
  const prefix = (a: string | null | undefined) => (a ? (splitUpn(a)?.local ?? a) : undefined);
  const raw = o.mailNickname || prefix(primarySmtp(o.proxyAddresses ?? [])) || prefix(o.mail) || prefix(o.userPrincipalName) || 'user';
  const clean = raw.replace(NICK_CLEAN, '').replace(/^\.+|\.+$/g, '').slice(0, 64);
  return clean || 'user';
}

export type UpnDecision =
  | { upn: string; reason: 'own' }
  | { upn: string; reason: 'unverified-suffix' | 'invalid-upn' | 'missing-upn'; onPremisesUpn: string | null };

/**
 * The cloud UPN of a synced user: its own when the suffix is a verified domain of the tenant
 * and the UPN is valid, else `<mailNickname>@<initial domain>`.
 */
export function decideUpn(o: IncomingNames, verifiedDomains: ReadonlySet<string>, initialDomain: string): UpnDecision {
  const upn = o.userPrincipalName ?? null;
  const nick = syncMailNickname(o);
  if (!upn) return { upn: fallbackUpn(nick, initialDomain), reason: 'missing-upn', onPremisesUpn: null };
  if (upnProblem(upn)) return { upn: fallbackUpn(nick, initialDomain), reason: 'invalid-upn', onPremisesUpn: upn };
  const domain = asciiLower(splitUpn(upn)!.domain);
  if (!verifiedDomains.has(domain)) return { upn: fallbackUpn(nick, initialDomain), reason: 'unverified-suffix', onPremisesUpn: upn };
  return { upn, reason: 'own' };
}

/** Duplicate-attribute resiliency: `<prefix><4 digits>@<initial domain>`. */
export function placeholderUpn(upn: string, initialDomain: string, random: () => number = Math.random): string {
  const local = (splitUpn(upn)?.local ?? upn).slice(0, 59);
  const digits = String(Math.floor(random() * 10_000)).padStart(4, '0');
  return `${local}${digits}@${initialDomain}`;
}
