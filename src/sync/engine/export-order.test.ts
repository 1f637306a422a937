// Managers are exported top of the chain first, so no manager waits in the cloud for its own; DN references are looked up in key order; batches stay under their byte limits.
import { describe, expect, it } from 'vitest';
import { exportBatches, lookupSorted, managersInOrder, MAX_GROUP_BATCH_BYTES } from './run.ts';

describe('managersInOrder', () => {
  it('puts each manager after its own manager, keeping the given (DN) order within a level', () => {
    // a <- b <- c (c reports to b, b to a); d reports to someone outside the list; e to c.
    const rows = [
      { anchor: 'c', manager: 'b' },
      { anchor: 'e', manager: 'c' },
      { anchor: 'b', manager: 'a' },
      { anchor: 'd', manager: 'outside' },
      { anchor: 'a', manager: null },
    ];
    expect(managersInOrder(rows)).toEqual(['d', 'a', 'b', 'c', 'e']);
  });

  it('a cycle does not hang: its members come after everything else, in the given order', () => {
    const rows = [
      { anchor: 'x', manager: 'y' },
      { anchor: 'top', manager: null },
      { anchor: 'y', manager: 'x' },
      { anchor: 'under', manager: 'top' },
      { anchor: 'z', manager: 'x' },
    ];
    const out = managersInOrder(rows);
    expect(out.slice(0, 2)).toEqual(['top', 'under']);
    expect(new Set(out.slice(2))).toEqual(new Set(['x', 'y', 'z']));
    expect(out.indexOf('z')).toBeGreaterThan(out.indexOf('x'));
    expect(out).toHaveLength(5);
  });

  it('is empty for no managers', () => {
    expect(managersInOrder([])).toEqual([]);
  });
});

describe('lookupSorted', () => {
  it('asks once per distinct key, in key order, and answers in the order given (repeats and misses included)', () => {
    const known = new Map([
      ['cn=b', 'B'],
      ['cn=d', 'D'],
    ]);
    const asked: string[][] = [];
    const out = lookupSorted(['cn=d', 'cn=a', 'cn=b', 'cn=d', 'cn=c', 'cn=b'], (unique) => {
      asked.push(unique);
      return unique.map((k) => known.get(k) ?? null);
    });
    expect(asked).toEqual([['cn=a', 'cn=b', 'cn=c', 'cn=d']]);
    expect(out).toEqual(['D', null, 'B', 'D', null, 'B']);
  });

  it('answers null for a null key (no reference) without asking for it', () => {
    const asked: string[][] = [];
    const out = lookupSorted([null, 'cn=b', null, 'cn=a'], (unique) => {
      asked.push(unique);
      return unique.map((k) => k.toUpperCase());
    });
    expect(asked).toEqual([['cn=a', 'cn=b']]);
    expect(out).toEqual([null, 'CN=B', null, 'CN=A']);
    expect(lookupSorted([null, null], () => expect.unreachable('no lookup for null keys'))).toEqual([null, null]);
  });

  it('matches a direct lookup on random lists, and asks nothing for none', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let t = 0; t < 300; t++) {
      const known = new Map(Array.from({ length: 10 }, (_, i) => [`k${i}`, rnd(2) ? `a${i}` : undefined]));
      const keys = Array.from({ length: rnd(25) }, () => `k${rnd(10)}`);
      expect(lookupSorted(keys, (unique) => unique.map((k) => known.get(k)))).toEqual(keys.map((k) => known.get(k) ?? null));
    }
    expect(lookupSorted([], () => expect.unreachable('no lookup for no keys'))).toEqual([]);
  });

  it('with a memo, asks only for keys no earlier call answered (misses included), and keeps no more than its room', () => {
    const known = new Map([
      ['cn=a', 'A'],
      ['cn=b', 'B'],
      ['cn=e', 'E'],
    ]);
    const asked: string[][] = [];
    const lookup = (unique: string[]) => (asked.push(unique), unique.map((k) => known.get(k)));
    const memo = { answers: new Map<string, string | null>(), max: 3 };
    expect(lookupSorted(['cn=b', 'cn=x', 'cn=a'], lookup, memo)).toEqual(['B', null, 'A']);
    expect(lookupSorted(['cn=a', 'cn=e', 'cn=x', null, 'cn=b', 'cn=e'], lookup, memo)).toEqual(['A', 'E', null, null, 'B', 'E']);
    expect(asked).toEqual([['cn=a', 'cn=b', 'cn=x'], ['cn=e']]);
    // Full (three answers): cn=e was not kept, so it is asked again.
    expect(memo.answers.size).toBe(3);
    expect(lookupSorted(['cn=e', 'cn=b'], lookup, memo)).toEqual(['E', 'B']);
    expect(asked[2]).toEqual(['cn=e']);
  });

  it('with a memo across calls, matches a direct lookup on random lists', () => {
    let seed = 11;
    // The generator's high bits (its low ones repeat with a short period).
    const rnd = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n);
    const known = new Map(Array.from({ length: 40 }, (_, i) => [`k${i}`, rnd(3) ? `a${i}` : undefined]));
    const memo = { answers: new Map<string, string | null>(), max: 25 };
    let asked = 0;
    for (let t = 0; t < 200; t++) {
      const keys = Array.from({ length: rnd(30) }, () => (rnd(8) ? `k${rnd(40)}` : null));
      expect(lookupSorted(keys, (unique) => ((asked += unique.length), unique.map((k) => known.get(k))), memo)).toEqual(keys.map((k) => (k === null ? null : (known.get(k) ?? null))));
    }
    expect(memo.answers.size).toBe(25);
    // Repeated keys were answered from the memo: far fewer asked than given.
    expect(asked).toBeLessThan(2000);
  });
});

describe('exportBatches: export batches under the byte limits', () => {
  const rows = (type: string, ...sizes: number[]) => sizes.map((n) => ({ type, desired: 'x'.repeat(n) }));
  const MB = 1024 * 1024;
  const split = (rs: { type: string; desired: string | null }[]) => [...exportBatches(rs)].map((b) => b.length);

  it('puts groups in batches of at most MAX_GROUP_BATCH_BYTES of JSON, users in batches of up to 12 MB', () => {
    const G = MAX_GROUP_BATCH_BYTES / MB;
    expect(split(rows('group', ...Array<number>(G + 2).fill(MB)))).toEqual([G, 2]);
    expect(split(rows('user', ...Array<number>(10).fill(MB)))).toEqual([10]);
    expect(split(rows('user', ...Array<number>(14).fill(MB)))).toEqual([12, 2]);
  });

  it('sends a row larger than the limit alone, and never an empty batch', () => {
    const over = MAX_GROUP_BATCH_BYTES + MB;
    expect(split(rows('group', 100, over, 100))).toEqual([1, 1, 1]);
    expect(split(rows('group', over))).toEqual([1]);
    expect([...exportBatches([])]).toEqual([]);
    const given = rows('group', 100, over, 100, MAX_GROUP_BATCH_BYTES / 2, MAX_GROUP_BATCH_BYTES / 2);
    expect([...exportBatches(given)].flat()).toEqual(given);
  });
});
