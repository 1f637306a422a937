// Object ids: UUIDs of version 7 (RFC 9562 section 5.7): 48 bits of Unix time in ms, then 74
// random bits. Still GUIDs to every Graph client, but ids made close in time sort close
// together, so bulk inserts (a first sync of 100k users, their memberships) append to the
// ends of the id indexes instead of dirtying a random page of each per row.
import { randomBytes } from 'node:crypto';

export function objectId(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70; // version 7
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
