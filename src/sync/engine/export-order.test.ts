// Managers are exported top of the chain first, so no manager waits in the cloud for its own.
import { describe, expect, it } from 'vitest';
import { managersInOrder } from './run.ts';

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
