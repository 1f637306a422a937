// The stored copy of synced attributes (sync_desired) is compared as text: key order must not matter.
import { describe, expect, it } from 'vitest';
import { stableJson } from './sync-service.ts';

describe('stableJson', () => {
  it('gives the same text for the same attributes in any key order, and leaves out undefined ones', () => {
    const a = { displayName: 'Ana', userPrincipalName: 'ana@contoso.com', proxyAddresses: ['SMTP:ana@contoso.com'], members: undefined };
    const b = { members: undefined, proxyAddresses: ['SMTP:ana@contoso.com'], userPrincipalName: 'ana@contoso.com', displayName: 'Ana' };
    expect(stableJson(a)).toBe(stableJson(b));
    expect(stableJson(a)).toBe('{"displayName":"Ana","proxyAddresses":["SMTP:ana@contoso.com"],"userPrincipalName":"ana@contoso.com"}');
  });

  it('keeps the keys of nested objects (a key-list replacer would drop them)', () => {
    expect(JSON.parse(stableJson({ b: 1, a: { inner: 'kept' } }))).toEqual({ a: { inner: 'kept' }, b: 1 });
  });

  it('leaves out the key it is told to (the members of a group, stored apart), and only that key', () => {
    const g = { members: ['YQ==', 'Yg=='], displayName: 'Sales', mailEnabled: false };
    expect(stableJson(g, 'members')).toBe('{"displayName":"Sales","mailEnabled":false}');
    expect(stableJson({ ...g, members: undefined })).toBe(stableJson(g, 'members'));
    expect(g.members).toEqual(['YQ==', 'Yg==']);
  });
});
