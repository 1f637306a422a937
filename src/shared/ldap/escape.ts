// LDAP value helpers shared by src, scripts and tests: RFC 4515 filter escaping, RFC 4514 RDN
// escaping, and the AD objectGUID byte order (little-endian first three fields).

/**
 * Escapes a value for use inside an LDAP search filter (RFC 4515 §3). Strings keep their
 * non-ASCII characters as UTF-8 (RFC 4515 allows it, and ldapts decodes `\xx` escapes one
 * byte per character, which would corrupt multi-byte characters); Buffers (binary values
 * such as objectGUID) are escaped byte by byte.
 */
export function escapeFilterValue(value: string | Buffer): string {
  if (typeof value !== 'string') return [...value].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
  return value.replace(/[*()\\\0]/g, (ch) => `\\${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Escapes an attribute value for use in a DN's RDN (RFC 4514 §2.4). */
export function escapeRdnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (ch === '\n') out += '\\0A';
    else if (ch === '\r') out += '\\0D';
    else if (',+"\\<>;='.includes(ch)) out += `\\${ch}`;
    else if ((i === 0 && (ch === ' ' || ch === '#')) || (i === value.length - 1 && ch === ' ')) out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

/** AD objectGUID bytes from the canonical text form (first three fields are little-endian). */
export function guidToBytes(guid: string): Buffer {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${guid}`);
  const b = Buffer.from(hex, 'hex');
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
}

/** Canonical text form of AD objectGUID bytes. */
export function guidFromBytes(bytes: Buffer): string {
  if (bytes.length !== 16) throw new Error(`objectGUID must be 16 bytes, got ${bytes.length}`);
  const h = Buffer.concat([
    Buffer.from(bytes.subarray(0, 4)).reverse(),
    Buffer.from(bytes.subarray(4, 6)).reverse(),
    Buffer.from(bytes.subarray(6, 8)).reverse(),
    bytes.subarray(8),
  ]).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The base DN of a DNS domain name: corp.example.com -> DC=corp,DC=example,DC=com. */
export function baseDnOf(dnsName: string): string {
  return dnsName
    .split('.')
    .map((p) => `DC=${p}`)
    .join(',');
}
