// Unit tests of the attribute flows: defaults (UPN from sAMAccountName, disabled bit, SID,
// group type) and JSONata overrides checked at start-up.
import { describe, expect, it } from 'vitest';
import { createMapper } from './mapping.ts';

const ctx = { domain: 'corp.example.com' };
const user = { dn: 'CN=Ann,OU=Sales,DC=corp,DC=example,DC=com', attrs: { sAMAccountName: ['ann'], givenName: ['Ann'], sn: ['Lee'], title: ['Rep'], department: ['Sales'], userAccountControl: ['514'], telephoneNumber: ['+1 555'], objectSid: ['AQUAAAAAAAUVAAAAoGXPfnhLm1/VpTlsUAQAAA=='], manager: ['CN=Bob,OU=Sales,DC=corp,DC=example,DC=com'] } };

describe('attribute mapping', () => {
  it('maps AD users by the default flows', async () => {
    const m = await createMapper({}, ctx).map('user', user);
    expect(m.attributes).toMatchObject({ userPrincipalName: 'ann@corp.example.com', displayName: undefined, givenName: 'Ann', surname: 'Lee', jobTitle: 'Rep', accountEnabled: false, businessPhones: ['+1 555'], onPremisesSecurityIdentifier: 'S-1-5-21-2127521184-1604012920-1815717333-1104', onPremisesDistinguishedName: user.dn, onPremisesDomainName: 'corp.example.com' });
    expect(m.manager).toBe('CN=Bob,OU=Sales,DC=corp,DC=example,DC=com');
  });

  it('maps group type and mail-enabled state', async () => {
    const mapper = createMapper({}, ctx);
    const sec = await mapper.map('group', { dn: 'CN=G,DC=x', attrs: { cn: ['G'], groupType: ['-2147483646'], member: ['CN=a,DC=x'] } });
    expect(sec).toMatchObject({ attributes: { displayName: 'G', securityEnabled: true, mailEnabled: false }, members: ['CN=a,DC=x'] });
    const dl = await mapper.map('group', { dn: 'CN=D,DC=x', attrs: { cn: ['D'], groupType: ['8'], mail: ['d@contoso.com'] } });
    expect(dl.attributes).toMatchObject({ securityEnabled: false, mailEnabled: true });
  });

  it('applies JSONata overrides and drops flows set to null', async () => {
    const mapper = createMapper({ user: { displayName: "givenName & ' ' & $uppercase(sn)", jobTitle: null, department: "department = 'Sales' ? 'Revenue' : department", usageLocation: "'DE'" } }, ctx);
    const m = await mapper.map('user', user);
    expect(m.attributes).toMatchObject({ displayName: 'Ann LEE', jobTitle: undefined, department: 'Revenue', usageLocation: 'DE' });
  });

  it('describes where every flow reads from (explain), overrides included', async () => {
    const mapper = createMapper({ user: { jobTitle: null, usageLocation: "'DE'" } }, ctx);
    const sources = mapper.sources('user');
    const m = await mapper.map('user', user);
    for (const a of [...Object.keys(m.attributes), 'manager']) expect(sources[a], a).toBeTruthy();
    expect(sources).toMatchObject({ surname: 'sn', jobTitle: expect.stringMatching(/^none \(mapping.user.jobTitle: null/), usageLocation: "mapping.user.usageLocation: 'DE'" });
    const g = await mapper.map('group', { dn: 'CN=G,DC=x', attrs: { cn: ['G'] } });
    for (const a of [...Object.keys(g.attributes), 'members']) expect(mapper.sources('group')[a], a).toBeTruthy();
  });

  it('rejects unknown targets and bad expressions at start-up, naming the setting', () => {
    expect(() => createMapper({ user: { favouriteColour: 'x' } }, ctx)).toThrow(/mapping.user.favouriteColour: 'favouriteColour' is not a cloud user attribute/);
    expect(() => createMapper({ group: { displayName: 'cn &' } }, ctx)).toThrow(/mapping.group.displayName: the expression 'cn &' does not parse/);
  });
});
