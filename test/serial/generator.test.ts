// The directory generator is deterministic: same options, same model, LDIF and manifest;
// another seed gives another directory; every edge case is present at small sizes too.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adLdif, openLdapLdif } from '../../scripts/generator/ldif.ts';
import { buildManifest } from '../../scripts/generator/manifest.ts';
import { EDGE_CASES, dnOf, generateDirectory } from '../../scripts/generator/model.ts';
import { guidFromBytes, guidToBytes } from '../../scripts/lib/ldap.ts';

const digest = (chunks: Iterable<string>) => {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
};

describe('directory generator', () => {
  it('same seed, same output (model, AD LDIF, OpenLDAP LDIF, manifest)', () => {
    const a = generateDirectory({ users: 500, seed: 42 });
    const b = generateDirectory({ users: 500, seed: 42 });
    expect(b).toEqual(a);
    expect(digest(adLdif(b))).toBe(digest(adLdif(a)));
    expect(digest(openLdapLdif(b))).toBe(digest(openLdapLdif(a)));
    expect(JSON.stringify(buildManifest(b))).toBe(JSON.stringify(buildManifest(a)));
  });

  it('a different seed gives a different directory', () => {
    const a = generateDirectory({ users: 500, seed: 1 });
    const b = generateDirectory({ users: 500, seed: 2 });
    expect(digest(adLdif(a))).not.toBe(digest(adLdif(b)));
  });

  it('pins the output of seed 1 so accidental changes are caught (bump GENERATOR_VERSION when intended)', () => {
    const m = generateDirectory({ users: 200, seed: 1 });
    expect(m.userList[0]?.guid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(m.userList).toHaveLength(200 + 6);
  });

  it('every edge case exists at 2000 users, with a group over 1500 members', () => {
    const m = buildManifest(generateDirectory({ users: 2000, seed: 1 }));
    for (const c of EDGE_CASES) expect(m.edgeCases[c].length, c).toBeGreaterThan(0);
    expect(Math.max(...m.edgeCases['large-group'].map((g) => g.memberCount ?? 0))).toBeGreaterThan(1500);
  });

  it('DNs, sAMAccountNames and GUIDs are unique; managers and members come first', () => {
    const m = generateDirectory({ users: 3000, seed: 9 });
    const objects = [...m.userList, ...m.groupList];
    expect(new Set(objects.map((o) => dnOf(o).toLowerCase())).size).toBe(objects.length);
    expect(new Set(objects.map((o) => o.sAMAccountName.toLowerCase())).size).toBe(objects.length);
    expect(new Set(objects.map((o) => o.guid)).size).toBe(objects.length);
    const seen = new Set<string>();
    for (const o of objects) {
      if (o.kind === 'user' && o.managerKey) expect(seen.has(o.managerKey)).toBe(true);
      if (o.kind === 'group') for (const k of o.memberKeys) expect(seen.has(k)).toBe(true);
      seen.add(o.key);
    }
  });

  it('AD LDIF writes objectGUID as base64 of the little-endian bytes', () => {
    const m = generateDirectory({ users: 50, seed: 3 });
    const u = m.userList[0];
    const text = [...adLdif(m)].join('');
    expect(text).toContain(`objectGUID:: ${guidToBytes(u?.guid ?? '').toString('base64')}`);
    expect(guidFromBytes(guidToBytes('4b1d3f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b')).toString()).toBe('4b1d3f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b');
    expect(guidToBytes('4b1d3f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b').toString('hex')).toBe('0e3f1d4b2d1c5f4e8a9b0c1d2e3f4a5b');
  });
});
