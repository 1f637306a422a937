// Unit tests of the pure IdFix rules: each rule, the exclusions, the streaming duplicate
// tracker (order-independent, self-matches ignored) and the mechanical fix suggestions.
import { describe, expect, it } from 'vitest';
import { DuplicateTracker, exclusionReason, fixUpnLocal, objectFindings, upnFindings, type DirObjectView } from './idfix.ts';
import { parseUpnCsv } from './set-upn.ts';

const ctx = { domainDnsName: 'corp.example.com', routableSuffix: 'contoso.com' };
const user = (over: Partial<DirObjectView> = {}): DirObjectView => ({ dn: 'CN=A,DC=corp', kind: 'user', sAMAccountName: 'a', userPrincipalName: 'a@contoso.com', proxyAddresses: [], ...over });
const rules = (o: DirObjectView) => objectFindings(o, ctx).map((f) => f.rule);

describe('UPN rules', () => {
  it('a clean UPN has no findings', () => {
    expect(upnFindings('first.last@contoso.com', user(), ctx)).toEqual([]);
    expect(upnFindings("o'neil_x-y@corp.example.com", user(), ctx)).toEqual([]);
  });

  it.each([
    ['john smith@contoso.com', 'upn-character', 'john.smith@contoso.com'],
    ['a%b@contoso.com', 'upn-character', 'ab@contoso.com'],
    ['jürgen.müller@contoso.com', 'upn-character', 'juergen.mueller@contoso.com'],
    ['ann,lee@contoso.com', 'upn-character', 'ann.lee@contoso.com'],
    ['x(y)@contoso.com', 'upn-character', 'xy@contoso.com'],
    ['trailing.@contoso.com', 'upn-localpart', 'trailing@contoso.com'],
    ['bob@corp.local', 'upn-topleveldomain', 'bob@contoso.com'],
    ['bob@contoso-.com', 'upn-domainpart', undefined],
    ['nodomain', 'upn-format', undefined],
    ['a@b@contoso.com', 'upn-format', undefined],
    [`${'x'.repeat(64)}@contoso.com`, 'upn-length', undefined],
    [`x@${'d'.repeat(44)}.com`, 'upn-length', undefined],
  ])('%s -> %s', (upn, rule, suggestion) => {
    const f = upnFindings(upn, user(), ctx);
    expect(f.map((x) => x.rule)).toContain(rule);
    expect(f.find((x) => x.rule === rule)?.suggestion).toBe(suggestion);
  });

  it('a blank UPN suggests sAMAccountName@domain, and then checks sAMAccountName', () => {
    expect(upnFindings(undefined, user({ sAMAccountName: 'jdoe' }), ctx)[0]).toMatchObject({ rule: 'upn-blank', error: 'blank', suggestion: 'jdoe@corp.example.com' });
    expect(rules(user({ userPrincipalName: undefined, sAMAccountName: 'a+b' }))).toEqual(['upn-blank', 'sam-character']);
    expect(rules(user({ userPrincipalName: undefined, sAMAccountName: 'x'.repeat(21) }))).toEqual(['upn-blank', 'sam-length']);
    // With a UPN, sAMAccountName is not checked (IdFix).
    expect(rules(user({ sAMAccountName: 'a+b' }))).toEqual([]);
  });

  it('fixUpnLocal gives nothing when nothing valid is left', () => {
    expect(fixUpnLocal('(&)')).toBeNull();
  });
});

describe('other attributes', () => {
  it('proxyAddresses: characters, format, routable domain, length; mailNickname leading dot', () => {
    expect(rules(user({ proxyAddresses: ['smtp:a b@contoso.com'] }))).toEqual(['proxy-character']);
    expect(rules(user({ proxyAddresses: ['smtp:nobody'] }))).toEqual(['proxy-format']);
    expect(rules(user({ proxyAddresses: ['SMTP:a@corp.local'] }))).toEqual(['proxy-topleveldomain']);
    expect(rules(user({ proxyAddresses: [`X500:/o=${'x'.repeat(260)}`] }))).toEqual(['proxy-length']);
    expect(rules(user({ proxyAddresses: ['X500:/o=Org/ou=Site'] }))).toEqual([]);
    expect(objectFindings(user({ mailNickname: '.bob' }), ctx)[0]).toMatchObject({ rule: 'mailnickname-format', suggestion: 'bob' });
  });

  it('groups and contacts are not held to user-only rules', () => {
    expect(rules({ dn: 'CN=G', kind: 'group', sAMAccountName: 'Windows Authorization Access Group', proxyAddresses: [] })).toEqual([]);
    expect(rules({ dn: 'CN=C', kind: 'contact', proxyAddresses: ['SMTP:c@contoso.com'] })).toEqual([]);
  });
});

describe('exclusions', () => {
  it.each([
    [{ isCriticalSystemObject: true }, 'critical'],
    [{ dn: 'CN=Bob\\0ACNF:1234,OU=X' }, 'CNF'],
    [{ sAMAccountName: 'Administrator' }, 'Admini'],
    [{ sAMAccountName: 'krbtgt' }, 'krbtgt'],
    [{ sAMAccountName: 'MSOL_abc' }, 'MSOL'],
    [{ sAMAccountName: 'AAD_abc' }, 'AAD_'],
    [{ sAMAccountName: 'SystemMailbox{1}' }, 'SystemMailbox'],
    [{ sAMAccountName: 'DiscoverySearchMailbox{D9}' }, 'DiscoverySearchMailbox'],
    [{ sAMAccountName: 'HOST01$' }, '$'],
  ])('%o is excluded (%s)', (over, why) => {
    expect(exclusionReason(user(over))).toContain(why);
  });
  it('ordinary objects are in scope', () => {
    expect(exclusionReason(user())).toBeNull();
  });
});

describe('DuplicateTracker', () => {
  const run = (objs: DirObjectView[]) => {
    const t = new DuplicateTracker();
    return objs.flatMap((o) => t.add(o)).map((f) => `${f.rule}:${f.dn}`).sort();
  };

  it('a UPN equal to its own proxy address is not a duplicate', () => {
    expect(run([user({ userPrincipalName: 'a@contoso.com', proxyAddresses: ['SMTP:a@contoso.com'] })])).toEqual([]);
  });

  it('reports both holders once, case-insensitively, for UPN, proxy, mail, mailNickname', () => {
    const a = user({ dn: 'A', userPrincipalName: 'x@contoso.com', mail: 'm@contoso.com', mailNickname: 'nick' });
    const b = user({ dn: 'B', userPrincipalName: 'X@CONTOSO.COM', mail: 'M@contoso.com', mailNickname: 'NICK' });
    const c = user({ dn: 'C', userPrincipalName: 'c@contoso.com', mail: 'm@contoso.com' });
    expect(run([a, b, c])).toEqual(['mail-duplicate:A', 'mail-duplicate:B', 'mail-duplicate:C', 'mailnickname-duplicate:A', 'mailnickname-duplicate:B', 'upn-duplicate:A', 'upn-duplicate:B']);
  });

  it('UPN vs another object proxy is upn-matches-proxy, in either order; proxy vs proxy wins over it', () => {
    const a = user({ dn: 'A', userPrincipalName: 'alias@contoso.com' });
    const b = user({ dn: 'B', userPrincipalName: 'b@contoso.com', proxyAddresses: ['smtp:alias@contoso.com'] });
    expect(run([a, b])).toEqual(['upn-matches-proxy:A', 'upn-matches-proxy:B']);
    expect(run([b, a])).toEqual(['upn-matches-proxy:A', 'upn-matches-proxy:B']);
    // A holds the address as UPN and as its primary SMTP; B as a secondary: a proxy duplicate.
    const a2 = user({ dn: 'A', userPrincipalName: 'p@contoso.com', proxyAddresses: ['SMTP:p@contoso.com'] });
    const b2 = user({ dn: 'B', userPrincipalName: 'b@contoso.com', proxyAddresses: ['smtp:p@contoso.com'] });
    expect(run([b2, a2])).toEqual(['proxy-duplicate:A', 'proxy-duplicate:B']);
    // A group holding a user's address too.
    const g = { dn: 'G', kind: 'group' as const, proxyAddresses: ['smtp:p@contoso.com'] };
    expect(run([a2, b2, g])).toEqual(['proxy-duplicate:A', 'proxy-duplicate:B', 'proxy-duplicate:G']);
  });

  it('sAMAccountName duplicates count only for users without a UPN', () => {
    const a = user({ dn: 'A', userPrincipalName: undefined, sAMAccountName: 's' });
    const b = user({ dn: 'B', userPrincipalName: undefined, sAMAccountName: 'S' });
    expect(run([a, b])).toEqual(['sam-duplicate:A', 'sam-duplicate:B']);
  });
});

describe('parseUpnCsv', () => {
  it('reads quoted DNs with commas, CRLF, and an optional upn column', () => {
    expect(parseUpnCsv('user,upn\r\n"CN=A,OU=X",a@b.com\r\njdoe,\r\n\r\n', 'f.csv')).toEqual([
      { user: 'CN=A,OU=X', upn: 'a@b.com' },
      { user: 'jdoe', upn: undefined },
    ]);
    expect(parseUpnCsv('sAMAccountName\nx\n', 'f.csv')).toEqual([{ user: 'x', upn: undefined }]);
    expect(() => parseUpnCsv('name\nx\n', 'f.csv')).toThrow(/'user' column/);
  });
});
