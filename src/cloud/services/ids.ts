// Object ids: UUIDs of version 7 (RFC 9562 section 5.7): 48 bits of Unix time in ms, then 74
// random bits. Still GUIDs to every Graph client, but ids made close in time sort close
// together, so bulk inserts (a first sync of 100k users, their memberships) append to the
// ends of the id indexes instead of dirtying a random page of each per row.
import { randomUUID } from 'node:crypto';

export function objectId(now = Date.now()): string {
  // The random bits come from randomUUID (v4), which draws from a cached entropy pool: a
  // randomBytes(16) per id costs ~10 µs, as much as inserting the row. Its variant nibble
  // (hex 16) is already RFC 9562's; the first 12 hex digits become the time, hex 12 the version.
  const r = randomUUID().replace(/-/g, '');
  const h = `${now.toString(16).padStart(12, '0')}7${r.slice(13)}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
