// The DirSync request/response control ([MS-ADTS] 3.1.1.3.4.1.3, OID 1.2.840.113556.1.4.841):
// the same BER shape both ways, SEQUENCE { flags INTEGER, maxBytes INTEGER, cookie OCTET STRING }.
// In the response the first field is "MoreResults" (non-zero: call again with the new cookie).
// ldapts parses a response control into the request control with the same OID, so after a
// search the new cookie is on this object.
import type { BerReader, BerWriter } from 'asn1';
import { Control } from 'ldapts';

export const DIRSYNC_OID = '1.2.840.113556.1.4.841';
/** Show Deleted ([MS-ADTS] 3.1.1.3.4.1.14): tombstones are returned by ordinary searches. */
export const SHOW_DELETED_OID = '1.2.840.113556.1.4.417';

/** [MS-ADTS] 3.1.1.3.4.1.3 flags we use. */
export const DIRSYNC_FLAGS = {
  /** Parents before children, so a new OU arrives before the users created in it. */
  ANCESTORS_FIRST_ORDER: 0x800,
} as const;

const OCTET_STRING = 0x04;

/** Encodes a non-negative INTEGER the way BER wants it (two's complement, minimal length). */
function berInt(n: number): Buffer {
  const bytes: number[] = [];
  let v = n >>> 0;
  do {
    bytes.unshift(v & 0xff);
    v >>>= 8;
  } while (v > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return Buffer.concat([Buffer.from([0x02]), berLength(bytes.length), Buffer.from(bytes)]);
}

function berLength(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const b: number[] = [];
  for (let v = len; v > 0; v >>>= 8) b.unshift(v & 0xff);
  return Buffer.from([0x80 | b.length, ...b]);
}

export class DirSyncControl extends Control {
  flags: number;
  maxBytes: number;
  cookie: Buffer;
  /** Set from the response: the server has more changes for this cookie. */
  moreResults = false;

  constructor(opts: { flags?: number; maxBytes?: number; cookie?: Buffer } = {}) {
    // Critical: a server that does not know DirSync must refuse, not return a plain search.
    super(DIRSYNC_OID, { critical: true });
    this.flags = opts.flags ?? 0;
    this.maxBytes = opts.maxBytes ?? 0;
    this.cookie = opts.cookie ?? Buffer.alloc(0);
  }

  protected override writeControl(writer: BerWriter): void {
    // Encoded by hand: the body is tiny and this keeps asn1's writer quirks (empty strings) out.
    const cookie = Buffer.concat([Buffer.from([OCTET_STRING]), berLength(this.cookie.length), this.cookie]);
    const body = Buffer.concat([berInt(this.flags), berInt(this.maxBytes), cookie]);
    writer.writeBuffer(Buffer.concat([Buffer.from([0x30]), berLength(body.length), body]), OCTET_STRING);
  }

  protected override parseControl(reader: BerReader): void {
    if (reader.readSequence() === null) return;
    this.moreResults = (reader.readInt() ?? 0) !== 0;
    reader.readInt();
    this.cookie = reader.readString(OCTET_STRING, true) ?? Buffer.alloc(0);
  }
}

/** Show Deleted has no value. */
export class ShowDeletedControl extends Control {
  constructor() {
    super(SHOW_DELETED_OID, { critical: true });
  }
}
