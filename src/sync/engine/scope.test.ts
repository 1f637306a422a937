// Unit tests of the scope rules: always-excluded objects, OU include/exclude, LDAP filters.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SourceEntry } from '../connectors/connector.ts';
import { sidToString } from './ad-values.ts';
import { compileScope, matchesFilter, normalizeDn, objectTypeOf, scopeOf } from './scope.ts';

const BASE = 'DC=corp,DC=example,DC=com';
const user = (dn: string, attrs: Record<string, string[]> = {}): SourceEntry => ({ dn, attributes: { objectClass: ['top', 'person', 'user'], ...attrs } });
const rules = compileScope({ baseDn: BASE, include: [], exclude: [`OU=Service Accounts,${BASE}`] });

describe('scope rules', () => {
  it('types entries: users, groups; computers and OUs are ignored', () => {
    expect(objectTypeOf(user(`CN=a,${BASE}`))).toBe('user');
    expect(objectTypeOf({ dn: 'x', attributes: { objectClass: ['top', 'group'] } })).toBe('group');
    expect(objectTypeOf({ dn: 'x', attributes: { objectClass: ['top', 'person', 'user', 'computer'] } })).toBeNull();
    expect(objectTypeOf({ dn: 'x', attributes: { objectClass: ['organizationalUnit'] } })).toBeNull();
  });

  it('always excludes critical system objects, krbtgt, AAD_/MSOL_ accounts and CNF: conflicts', () => {
    const out = (e: SourceEntry) => {
      const d = scopeOf(e, rules);
      return d.inScope ? null : d.reason;
    };
    expect(out(user(`CN=Administrator,CN=Users,${BASE}`, { isCriticalSystemObject: ['TRUE'] }))).toMatch(/critical system object/);
    expect(out(user(`CN=krbtgt,CN=Users,${BASE}`, { sAMAccountName: ['krbtgt'] }))).toMatch(/Kerberos/);
    expect(out(user(`CN=krbtgt_1234,CN=Users,${BASE}`, { sAMAccountName: ['krbtgt_1234'] }))).toMatch(/Kerberos/);
    expect(out(user(`CN=x,${BASE}`, { sAMAccountName: ['MSOL_0123abcd'] }))).toMatch(/MSOL_/);
    expect(out(user(`CN=x,${BASE}`, { sAMAccountName: ['aad_0123'] }))).toMatch(/AAD_/);
    expect(out(user(`CN=Ann\\0ACNF:4f1c2b7a-1111-2222-3333-444455556666,OU=Sales,${BASE}`))).toMatch(/CNF/);
    expect(out(user(`CN=Ann,OU=Sales,${BASE}`, { isDeleted: ['TRUE'] }))).toMatch(/tombstone/);
    expect(out(user(`CN=Ann,OU=Sales,${BASE}`, { sAMAccountName: ['ann'] }))).toBeNull();
  });

  it('applies include and exclude by DN subtree, case- and space-insensitively', () => {
    const r = compileScope({ baseDn: BASE, include: [`OU=Sales,${BASE}`, `OU=IT,${BASE}`], exclude: [`OU=Temp,OU=Sales,${BASE}`] });
    expect(scopeOf(user(`CN=a,ou=sales, dc=corp,dc=example,dc=com`), r).inScope).toBe(true);
    expect(scopeOf(user(`CN=a,OU=Marketing,${BASE}`), r)).toEqual({ inScope: false, reason: 'not under an included OU (source.include / baseDn)' });
    expect(scopeOf(user(`CN=a,OU=Temp,OU=Sales,${BASE}`), r).inScope).toBe(false);
    // "OU=Sales2" is not under "OU=Sales".
    expect(scopeOf(user(`CN=a,OU=XSales,${BASE}`), r).inScope).toBe(false);
    expect(scopeOf(user(`CN=a,OU=Service Accounts,${BASE}`), rules).inScope).toBe(false);
  });

  it('evaluates LDAP filters over multi-valued attributes, substrings and AD bitwise rules', () => {
    const e = user(`CN=a,${BASE}`, { department: ['Sales'], proxyAddresses: ['SMTP:a@x.com', 'smtp:b@y.com'], userAccountControl: ['514'], employeeID: ['42'] });
    const m = (f: string) => matchesFilter(compileScope({ filter: f }).filter!, e);
    expect(m('(department=sales)')).toBe(true);
    expect(m('(&(objectClass=user)(department=Sales))')).toBe(true);
    expect(m('(|(department=IT)(department=HR))')).toBe(false);
    expect(m('(proxyAddresses=smtp:b@y.com)')).toBe(true);
    expect(m('(proxyAddresses=*@y.com)')).toBe(true);
    expect(m('(proxyAddresses=SMTP:*x*)')).toBe(true);
    expect(m('(mail=*)')).toBe(false);
    expect(m('(!(userAccountControl:1.2.840.113556.1.4.803:=2))')).toBe(false);
    expect(m('(userAccountControl:1.2.840.113556.1.4.804:=3)')).toBe(true);
    expect(m('(employeeID>=5)')).toBe(true);
    expect(m('(employeeID<=5)')).toBe(false);
    expect(m('department=Sales')).toBe(true);
    expect(scopeOf(e, compileScope({ filter: '(department=IT)' }))).toEqual({ inScope: false, reason: 'does not match source.filter' });
  });

  it('rejects a bad filter and unsupported matching rules with the setting name', () => {
    expect(() => compileScope({ filter: '(&(a=b)' })).toThrow(/source.filter/);
    expect(() => compileScope({ filter: '(memberOf:1.2.840.113556.1.4.1941:=CN=x)' })).toThrow(/not supported/);
  });

  it('renders objectSid as S-1-5-...', () => {
    expect(sidToString(Buffer.from('AQUAAAAAAAUVAAAAoGXPfnhLm1/VpTlsUAQAAA==', 'base64'))).toBe('S-1-5-21-2127521184-1604012920-1815717333-1104');
    expect(sidToString(Buffer.from([1, 2]))).toBeNull();
  });
});

describe('normalizeDn', () => {
  // The definition: RDNs split at unescaped commas, trimmed, joined, lower-cased.
  const reference = (dn: string) =>
    dn
      .split(/(?<!\\),/)
      .map((r) => r.trim())
      .join(',')
      .toLowerCase();
  it('agrees with the definition on DNs with blanks, escaped commas and mixed case', () => {
    const rdn = fc.tuple(fc.constantFrom('CN', 'OU', 'dc', 'Ou'), fc.stringMatching(/^[ A-Za-z\\,é.-]{0,12}$/), fc.constantFrom('', ' ', '  ')).map(([t, v, pad]) => `${pad}${t}=${v}${pad}`);
    fc.assert(fc.property(fc.array(rdn, { minLength: 1, maxLength: 5 }), (rdns) => normalizeDn(rdns.join(',')) === reference(rdns.join(','))));
    expect(normalizeDn('CN=Smith\\, John , OU=Sales,DC=corp')).toBe('cn=smith\\, john,ou=sales,dc=corp');
    expect(normalizeDn('CN=Ann,OU=Sales,DC=corp')).toBe('cn=ann,ou=sales,dc=corp');
  });
});
