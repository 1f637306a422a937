// IN-list chunks come in a few fixed lengths (padded with the last value), so each batch-cache
// query has a handful of prepared statements whatever the batch holds.
import { describe, expect, it } from 'vitest';
import { chunks } from './batch-cache.ts';

describe('batch-cache chunks', () => {
  it('keeps every value once, in order, and pads each chunk to one of the fixed lengths', () => {
    for (const n of [1, 7, 8, 9, 33, 128, 129, 499, 500, 501, 1234]) {
      const xs = Array.from({ length: n }, (_, i) => `v${i}`);
      const cs = chunks(xs);
      expect(cs.every((c) => [8, 32, 128, 500].includes(c.length))).toBe(true);
      // Padding repeats the chunk's last value; nothing else is added or lost.
      expect(cs.flatMap((c) => c.filter((v, i) => i === 0 || v !== c[i - 1]))).toEqual(xs);
    }
    expect(chunks([])).toEqual([]);
  });
});
