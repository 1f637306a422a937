// Active Directory value formats: objectGUID byte order, objectSid binary -> S-1-5-... text.

/** AD objectGUID bytes from the canonical text form (first three fields little-endian). */
export function guidTextToBytes(guid: string): Buffer {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`not a GUID: ${guid}`);
  const b = Buffer.from(hex, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

/**
 * The text form of a binary SID ([MS-DTYP] 2.4.2.2): revision, sub-authority count,
 * 48-bit big-endian identifier authority, then little-endian 32-bit sub-authorities.
 */
export function sidToString(sid: Buffer): string | null {
  if (sid.length < 8) return null;
  const revision = sid[0]!;
  const count = sid[1]!;
  if (sid.length !== 8 + 4 * count) return null;
  const authority = sid.readUIntBE(2, 6);
  const subs: number[] = [];
  for (let i = 0; i < count; i++) subs.push(sid.readUInt32LE(8 + 4 * i));
  return `S-${revision}-${authority}${subs.map((s) => `-${s}`).join('')}`;
}
