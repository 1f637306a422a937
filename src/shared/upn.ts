// UPN and address rules shared by the cloud directory, the sync engine and the prep tooling:
// syntax (Microsoft Entra's username rules), splitting, and the fallback UPN.

/** Entra: the local part may contain A-Z a-z 0-9 ' . - _ ! # ^ ~ (no leading, trailing or double dot). */
const LOCAL_PART = /^[A-Za-z0-9'_!#^~-]+(\.[A-Za-z0-9'_!#^~-]+)*$/;
const DOMAIN_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export const UPN_MAX_LENGTH = 113;
export const UPN_LOCAL_MAX_LENGTH = 64;

export function splitUpn(upn: string): { local: string; domain: string } | null {
  const at = upn.lastIndexOf('@');
  if (at <= 0 || at === upn.length - 1) return null;
  return { local: upn.slice(0, at), domain: upn.slice(at + 1) };
}

/** Why a domain name is not a valid FQDN, or null when it is. */
export function fqdnProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > 253) return 'it is longer than 253 characters';
  const labels = name.split('.');
  if (labels.length < 2) return 'it needs at least two labels, like contoso.com';
  for (const label of labels) {
    if (!DOMAIN_LABEL.test(label)) return `the label '${label}' is not a valid DNS label (letters, digits and inner hyphens, 1-63 characters)`;
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return 'the top-level label is numeric';
  return null;
}

/** Why a UPN is not acceptable to the cloud directory, or null when it is. */
export function upnProblem(upn: string): string | null {
  if (upn.length > UPN_MAX_LENGTH) return `it is longer than ${UPN_MAX_LENGTH} characters`;
  const parts = splitUpn(upn);
  if (!parts) return "it must have the form name@domain";
  if (parts.local.length > UPN_LOCAL_MAX_LENGTH) return `the part before '@' is longer than ${UPN_LOCAL_MAX_LENGTH} characters`;
  if (!LOCAL_PART.test(parts.local)) {
    return "the part before '@' may only contain letters A-Z, digits and ' . - _ ! # ^ ~, with no leading, trailing or double dot";
  }
  const d = fqdnProblem(parts.domain);
  return d ? `its domain is not valid: ${d}` : null;
}

/** Lower-cases ASCII letters only, like SQLite's lower(), so keys compare the same in SQL and JS. */
export function asciiLower(s: string): string {
  // Most addresses are lower-case already: returned as they are. Otherwise a run of A-Z at a
  // time (toLowerCase of A-Z alone is ASCII), not a call per letter.
  return ASCII_UPPER.test(s) ? s.replace(ASCII_UPPER_RUNS, (run) => run.toLowerCase()) : s;
}
const ASCII_UPPER = /[A-Z]/;
const ASCII_UPPER_RUNS = /[A-Z]+/g;

/** The address an SMTP proxy address claims (`SMTP:a@b` / `smtp:a@b` -> `a@b`), or null for other types. */
export function smtpAddress(proxy: string): string | null {
  return /^smtp:/i.test(proxy) ? proxy.slice(5) : null;
}

/** Primary SMTP address (`SMTP:` upper-case prefix) of a proxyAddresses list. */
export function primarySmtp(proxies: readonly string[]): string | null {
  const p = proxies.find((x) => x.startsWith('SMTP:'));
  return p ? p.slice(5) : null;
}

/** The fallback UPN for an unverified suffix: `<mailNickname>@<initial domain>`. */
export function fallbackUpn(mailNickname: string, initialDomain: string): string {
  return `${mailNickname}@${initialDomain}`;
}

/**
 * Top-level labels that are not routable on the internet and that directories commonly use
 * (IdFix's "top-level domain" error, e.g. corp.local). A suffix ending in one of these can never
 * be verified in a tenant.
 */
export const NON_ROUTABLE_TLDS: ReadonlySet<string> = new Set([
  'local', 'lan', 'internal', 'intranet', 'corp', 'home', 'localdomain', 'localhost', 'private', 'priv', 'domain', 'ad', 'loc', 'invalid', 'test', 'example',
]);

/** True when the domain's top-level label is routable (not `.local` and friends, not a single label). */
export function isRoutableDomain(domain: string): boolean {
  const labels = asciiLower(domain).split('.');
  if (labels.length < 2) return false;
  return !NON_ROUTABLE_TLDS.has(labels[labels.length - 1] ?? '');
}
