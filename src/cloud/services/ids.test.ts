// Object ids are RFC 9562 version-7 UUIDs: GUID-shaped, unique, and ordered by creation time.
import { describe, expect, it } from 'vitest';
import { objectId } from './ids.ts';

describe('objectId', () => {
  it('is a version-7, RFC-variant UUID carrying the time in ms', () => {
    const at = Date.UTC(2026, 10, 25, 2, 30);
    const id = objectId(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
  });

  it('sorts by creation time and does not repeat', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => objectId(1_700_000_000_000 + Math.floor(i / 10)));
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 10; i < ids.length; i += 10) expect(ids[i - 10]! < ids[i]!).toBe(true);
  });
});
