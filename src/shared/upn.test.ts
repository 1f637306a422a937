// asciiLower keys addresses the way SQLite's lower() does: ASCII letters only.
import { describe, expect, it } from 'vitest';
import { asciiLower } from './upn.ts';

describe('asciiLower', () => {
  it('lower-cases A-Z only, like SQLite lower(), leaving other letters as they are', () => {
    expect(asciiLower('Jessica.RAMIREZ@Contoso.COM')).toBe('jessica.ramirez@contoso.com');
    expect(asciiLower('ÉLODIE.Åberg@Bücher.DE')).toBe('Élodie.Åberg@bücher.de');
    expect(asciiLower('already@lower.case')).toBe('already@lower.case');
    expect(asciiLower('')).toBe('');
  });

  it('agrees with a letter-by-letter lowering on random strings', () => {
    const alphabet = 'aZ@.ÄéİK-9 zA';
    let seed = 11;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const slow = (s: string) => [...s].map((c) => (c >= 'A' && c <= 'Z' ? String.fromCharCode(c.charCodeAt(0) + 32) : c)).join('');
    for (let t = 0; t < 500; t++) {
      const s = Array.from({ length: rnd(20) }, () => alphabet[rnd(alphabet.length)]).join('');
      expect(asciiLower(s)).toBe(slow(s));
    }
  });
});
