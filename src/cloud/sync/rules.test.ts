// Unit tests of the pure sync rules: mailNickname order, UPN fallback, placeholder UPN.
import { describe, expect, it } from 'vitest';
import { decideUpn, placeholderUpn, syncMailNickname } from './rules.ts';

const verified = new Set(['contoso.com', 'contoso.onnimbus.net']);

describe('syncMailNickname', () => {
  it('prefers the on-premises mailNickname, then primary SMTP, mail and UPN prefixes', () => {
    expect(syncMailNickname({ mailNickname: 'nick', userPrincipalName: 'u@x.com' })).toBe('nick');
    expect(syncMailNickname({ proxyAddresses: ['smtp:alias@x.com', 'SMTP:primary@x.com'], mail: 'mail@x.com', userPrincipalName: 'u@x.com' })).toBe('primary');
    expect(syncMailNickname({ mail: 'mail@x.com', userPrincipalName: 'u@x.com' })).toBe('mail');
    expect(syncMailNickname({ userPrincipalName: 'carol@corp.local' })).toBe('carol');
  });
  it('drops characters a mailNickname cannot hold', () => {
    expect(syncMailNickname({ userPrincipalName: 'bad name(x)@corp.local' })).toBe('badnamex');
    expect(syncMailNickname({})).toBe('user');
  });
});

describe('decideUpn', () => {
  it('keeps a valid UPN on a verified domain', () => {
    expect(decideUpn({ userPrincipalName: 'alice@Contoso.com' }, verified, 'contoso.onnimbus.net')).toEqual({ upn: 'alice@Contoso.com', reason: 'own' });
  });
  it('falls back to <mailNickname>@<initial domain> for an unverified suffix', () => {
    expect(decideUpn({ userPrincipalName: 'carol@corp.local', mailNickname: 'carol.w' }, verified, 'contoso.onnimbus.net')).toEqual({
      upn: 'carol.w@contoso.onnimbus.net',
      reason: 'unverified-suffix',
      onPremisesUpn: 'carol@corp.local',
    });
  });
  it('falls back for invalid characters and for a missing UPN', () => {
    expect(decideUpn({ userPrincipalName: 'dan smith@contoso.com', mailNickname: 'dan' }, verified, 'c.onnimbus.net').reason).toBe('invalid-upn');
    expect(decideUpn({ mailNickname: 'erin' }, verified, 'c.onnimbus.net')).toEqual({ upn: 'erin@c.onnimbus.net', reason: 'missing-upn', onPremisesUpn: null });
  });
});

describe('placeholderUpn', () => {
  it('is the prefix plus four digits on the initial domain', () => {
    expect(placeholderUpn('alice@contoso.com', 'contoso.onnimbus.net', () => 0.0042)).toBe('alice0042@contoso.onnimbus.net');
    expect(placeholderUpn('alice@contoso.com', 'contoso.onnimbus.net')).toMatch(/^alice\d{4}@contoso\.onnimbus\.net$/);
  });
});
