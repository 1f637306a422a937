// Proves the slapadd-loaded OpenLDAP fixture answers over LDAP with the generated entries,
// stable entryUUIDs, the syncprov overlay, and the edge cases its manifest names.
import { Client, type Entry } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { escapeFilterValue } from '../../scripts/lib/ldap.ts';
import { useOpenLdap } from '../helpers/openldap.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ldap = useOpenLdap();

const first = (e: Entry | undefined, a: string): string | undefined => {
  const v = e?.[a];
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v[0] : v)?.toString();
};
const all = (e: Entry | undefined, a: string): string[] => {
  const v = e?.[a];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => x.toString());
};

describe('OpenLDAP fixture', () => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ url: ldap().url, timeout: 30_000 });
    await client.bind(ldap().bindDN, ldap().password);
  });
  afterAll(async () => {
    await client?.unbind();
  });

  it('listens on loopback and holds every generated user and group', async () => {
    expect(ldap().url).toMatch(/^ldap:\/\/127\.0\.0\.1:\d+$/);
    const users = await client.search(ldap().baseDN, { filter: '(objectClass=inetOrgPerson)', attributes: ['uid'], paged: { pageSize: 1000 } });
    expect(users.searchEntries).toHaveLength(ldap().manifest.counts.users);
    const groups = await client.search(ldap().baseDN, { filter: '(objectClass=groupOfNames)', attributes: ['cn'] });
    expect(groups.searchEntries).toHaveLength(ldap().manifest.counts.groups);
  });

  it('entries carry the generator GUID as entryUUID', async () => {
    for (const entry of ldap().manifest.edgeCases.manager.slice(0, 50)) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', attributes: ['entryUUID', 'uid', 'manager'] });
      expect(first(searchEntries[0], 'entryUUID')).toBe(entry.objectGUID);
      expect(first(searchEntries[0], 'uid')).toBe(entry.sAMAccountName);
      expect(first(searchEntries[0], 'manager')).toBeDefined();
    }
  });

  it('duplicate mail, disabled users, conflict names', async () => {
    const m = ldap().manifest.edgeCases;
    for (const entry of m['mail-duplicate']) {
      const { searchEntries } = await client.search(ldap().baseDN, { filter: `(mail=${escapeFilterValue(entry.mail ?? '')})`, attributes: ['uid'] });
      expect(searchEntries.length, entry.mail).toBeGreaterThanOrEqual(2);
    }
    for (const entry of m.disabled) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', attributes: ['employeeType'] });
      expect(first(searchEntries[0], 'employeeType')).toBe('disabled');
    }
    for (const entry of m['conflict-name']) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', attributes: ['cn'] });
      expect(first(searchEntries[0], 'cn')).toMatch(/\nCNF:/);
    }
  });

  it('large and nested groups hold all their members', async () => {
    const m = ldap().manifest.edgeCases;
    expect(m['large-group'].length).toBeGreaterThan(0);
    for (const entry of [...m['large-group'], ...m['nested-group']]) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', attributes: ['member'] });
      const members = all(searchEntries[0], 'member');
      expect(members).toHaveLength(entry.memberCount ?? -1);
      for (const g of entry.memberGroups ?? []) expect(members).toContain(g);
    }
  });

  it('runs the syncprov overlay: entries have entryCSN and the suffix has a contextCSN', async () => {
    const { searchEntries } = await client.search(ldap().baseDN, { scope: 'base', attributes: ['contextCSN', 'entryCSN'] });
    expect(first(searchEntries[0], 'entryCSN')).toBeDefined();
    expect(first(searchEntries[0], 'contextCSN')).toBeDefined();
  });
});
