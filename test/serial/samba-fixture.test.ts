// Proves the seeded Samba AD fixture holds every edge case its manifest names, by querying
// the running DC over LDAP and LDAPS exactly as the sync engine will.
import { readFile } from 'node:fs/promises';
import { Client, type Entry } from 'ldapts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { escapeFilterValue, guidFromBytes } from '../../scripts/lib/ldap.ts';
import type { ManifestEntry } from '../../scripts/generator/manifest.ts';
import { SAMBA_SYNC_PASSWORD } from '../../scripts/samba/samba.ts';
import { useSamba } from '../helpers/samba.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

const ad = useSamba();

const ATTRS = [
  'name', 'sAMAccountName', 'userPrincipalName', 'mail', 'proxyAddresses', 'userAccountControl',
  'objectGUID', 'isCriticalSystemObject', 'manager', 'groupType', 'objectClass',
];

const str = (e: Entry, a: string): string | undefined => {
  const v = e[a];
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.toString();
};
const list = (e: Entry, a: string): string[] => {
  const v = e[a];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => x.toString());
};
const lower = (s: string) => s.toLowerCase();

describe('Samba AD fixture', () => {
  let client: Client;
  /** Every user and group under the generated root OU, by lower-cased DN. */
  const byDn = new Map<string, Entry>();

  beforeAll(async () => {
    client = new Client({ url: ad().url, timeout: 30_000 });
    await client.bind(ad().bindDN, ad().password);
    const { searchEntries } = await client.search(ad().manifest.rootOU, {
      scope: 'sub',
      filter: '(|(objectClass=user)(objectClass=group))',
      attributes: ATTRS,
      paged: { pageSize: 500 },
      explicitBufferAttributes: ['objectGUID'],
    });
    for (const e of searchEntries) byDn.set(lower(e.dn), e);
  }, 60_000);
  afterAll(async () => {
    await client?.unbind();
  });

  const get = (entry: ManifestEntry): Entry => {
    const e = byDn.get(lower(entry.dn));
    expect(e, `${entry.key} ${entry.dn} is in the directory`).toBeDefined();
    return e as Entry;
  };
  const cases = () => ad().manifest.edgeCases;

  it('holds exactly the generated users and groups, with the generated objectGUIDs', () => {
    const m = ad().manifest;
    const users = [...byDn.values()].filter((e) => list(e, 'objectClass').includes('user'));
    const groups = [...byDn.values()].filter((e) => list(e, 'objectClass').includes('group'));
    expect(users).toHaveLength(m.counts.users);
    expect(groups).toHaveLength(m.counts.groups);
    for (const entries of Object.values(m.edgeCases)) {
      for (const entry of entries) {
        if (entry.key.startsWith('builtin:')) continue;
        const e = get(entry);
        expect(guidFromBytes(e.objectGUID as Buffer)).toBe(entry.objectGUID);
        expect((e.objectGUID as Buffer).toString('base64')).toBe(entry.immutableId);
      }
    }
  });

  it('has every edge case category populated except those the manifest says Samba refused', () => {
    const m = ad().manifest;
    for (const [name, entries] of Object.entries(m.edgeCases)) {
      if (name === 'upn-duplicate') continue;
      expect(entries.length, name).toBeGreaterThan(0);
    }
    // Samba, like AD, refuses duplicate UPNs: the manifest must say so rather than pretend.
    expect(m.edgeCases['upn-duplicate']).toHaveLength(0);
    expect(m.refused.length).toBeGreaterThan(0);
  });

  it('UPN suffixes: domain, non-routable .local, routable; and the forest lists the alternative suffixes', async () => {
    const m = ad().manifest;
    const check = (name: 'upn-domain-suffix' | 'upn-nonroutable-suffix' | 'upn-routable-suffix', suffix: string) => {
      for (const entry of cases()[name]) {
        const upn = str(get(entry), 'userPrincipalName');
        expect(upn, entry.dn).toBe(entry.userPrincipalName);
        expect(lower(upn ?? '').endsWith(`@${suffix}`), `${upn} ends with @${suffix}`).toBe(true);
      }
    };
    check('upn-domain-suffix', m.upnSuffixes.domain);
    check('upn-nonroutable-suffix', m.upnSuffixes.nonRoutable);
    check('upn-routable-suffix', m.upnSuffixes.routable);
    const { searchEntries } = await client.search(`CN=Partitions,CN=Configuration,${ad().baseDN}`, {
      scope: 'base',
      attributes: ['uPNSuffixes'],
    });
    expect(list(searchEntries[0] as Entry, 'uPNSuffixes').sort()).toEqual([m.upnSuffixes.routable, m.upnSuffixes.nonRoutable].sort());
  });

  it('refused duplicate UPNs landed without a UPN, and the UPN belongs to exactly one object', async () => {
    for (const r of ad().manifest.refused) {
      const e = byDn.get(lower(r.dn));
      expect(e, r.dn).toBeDefined();
      expect(str(e as Entry, 'userPrincipalName')).toBeUndefined();
      const { searchEntries } = await client.search(ad().baseDN, {
        scope: 'sub',
        filter: `(userPrincipalName=${escapeFilterValue(r.value)})`,
        attributes: ['dn'],
      });
      expect(searchEntries).toHaveLength(1);
    }
  });

  it('invalid UPN characters are stored as-is', async () => {
    const invalid = /[\s\\%&*+/=?{}|<>();:,[\]"]|[^\x20-\x7e]|\.$/;
    for (const entry of cases()['upn-invalid-characters']) {
      const upn = str(get(entry), 'userPrincipalName') ?? '';
      expect(upn).toBe(entry.userPrincipalName);
      expect(invalid.test(upn.split('@')[0] ?? ''), upn).toBe(true);
      // And an escaped equality filter finds it: values with ( ) * \ must not break the filter.
      const { searchEntries } = await client.search(ad().baseDN, {
        scope: 'sub',
        filter: `(userPrincipalName=${escapeFilterValue(upn)})`,
        attributes: ['sAMAccountName'],
      });
      expect(searchEntries.map((e) => str(e, 'sAMAccountName'))).toEqual([entry.sAMAccountName]);
    }
  });

  it('users without a UPN have none', () => {
    for (const entry of cases()['no-upn']) expect(str(get(entry), 'userPrincipalName'), entry.dn).toBeUndefined();
  });

  it('duplicate mail and proxy addresses exist across objects; a UPN equals another object\'s proxy address', () => {
    const all = [...byDn.values()];
    const holders = (pred: (e: Entry) => boolean) => all.filter(pred).length;
    for (const entry of cases()['mail-duplicate']) {
      const mail = lower(str(get(entry), 'mail') ?? '');
      expect(holders((e) => lower(str(e, 'mail') ?? '') === mail), mail).toBeGreaterThanOrEqual(2);
    }
    const smtp = (e: Entry) => list(e, 'proxyAddresses').filter((p) => /^smtp:/i.test(p)).map((p) => lower(p.slice(5)));
    for (const entry of cases()['proxy-address-duplicate']) {
      const mine = smtp(get(entry));
      const shared = mine.some((a) => holders((e) => e !== get(entry) && smtp(e).includes(a)) > 0);
      expect(shared, `${entry.dn} shares an smtp proxy address`).toBe(true);
    }
    for (const entry of cases()['upn-matches-other-proxy-address']) {
      const self = get(entry);
      const upn = lower(str(self, 'userPrincipalName') ?? '');
      const mine = smtp(self);
      const linked = all.some(
        (e) => e !== self && ((upn !== '' && smtp(e).includes(upn)) || mine.includes(lower(str(e, 'userPrincipalName') ?? '-'))),
      );
      expect(linked, entry.dn).toBe(true);
    }
  });

  it('disabled accounts have ACCOUNTDISABLE (0x2); others do not', () => {
    const disabled = new Set(cases().disabled.map((e) => lower(e.dn)));
    for (const entry of cases().disabled) expect(Number(str(get(entry), 'userAccountControl')) & 2, entry.dn).toBe(2);
    for (const entry of cases()['upn-routable-suffix']) {
      if (!disabled.has(lower(entry.dn))) expect(Number(str(get(entry), 'userAccountControl')) & 2, entry.dn).toBe(0);
    }
  });

  it('critical system objects: the generated one and the built-ins (Administrator, krbtgt)', async () => {
    const entries = cases()['critical-system-object'];
    expect(entries.map((e) => e.sAMAccountName)).toEqual(expect.arrayContaining(['Administrator', 'krbtgt', 'svc-critbackup']));
    for (const entry of entries) {
      const { searchEntries } = await client.search(entry.dn, { scope: 'base', attributes: ['isCriticalSystemObject', 'objectGUID'], explicitBufferAttributes: ['objectGUID'] });
      const e = searchEntries[0] as Entry;
      expect(str(e, 'isCriticalSystemObject'), entry.dn).toBe('TRUE');
      expect(guidFromBytes(e.objectGUID as Buffer)).toBe(entry.objectGUID);
    }
  });

  it('conflict objects carry AD\'s "<name>\\nCNF:<guid>" name', () => {
    for (const entry of cases()['conflict-name']) {
      const e = get(entry);
      const name = str(e, 'name') ?? '';
      expect(name).toMatch(/\nCNF:[0-9a-f-]{36}$/);
      expect(name.endsWith(entry.objectGUID)).toBe(true);
      expect(e.dn).toContain('\\0ACNF:');
    }
  });

  it('sync service account names (MSOL_*, AAD_*) exist', () => {
    for (const entry of cases()['sync-service-account-name']) {
      expect(str(get(entry), 'sAMAccountName')).toMatch(/^(MSOL_|AAD_)/);
    }
  });

  it('managers are set and point at users in the directory', () => {
    for (const entry of cases().manager) {
      const manager = str(get(entry), 'manager');
      expect(manager, entry.dn).toBeDefined();
      expect(byDn.has(lower(manager ?? '')), manager).toBe(true);
    }
  });

  it('groups: security, mail-enabled, nested, empty', () => {
    for (const entry of cases()['security-group']) expect(Number(str(get(entry), 'groupType')) & 0x80000000, entry.dn).not.toBe(0);
    for (const entry of cases()['mail-enabled-group']) expect(str(get(entry), 'mail'), entry.dn).toBe(entry.mail);
    expect(cases()['mail-enabled-group'].some((e) => (Number(str(get(e), 'groupType')) & 0x80000000) === 0)).toBe(true);
  });

  it('nested groups list their member groups; the empty group has no members', async () => {
    for (const entry of cases()['nested-group']) {
      const members = await readAllMembers(client, entry.dn);
      expect(members.values.map(lower)).toEqual(expect.arrayContaining((entry.memberGroups ?? []).map(lower)));
      expect(members.values).toHaveLength(entry.memberCount ?? -1);
    }
    for (const entry of cases()['empty-group']) expect((await readAllMembers(client, entry.dn)).values).toHaveLength(0);
  });

  it('groups over 1500 members are read completely with ranged retrieval (member;range=0-1499, then 1500-*)', async () => {
    const large = cases()['large-group'];
    expect(large.length).toBeGreaterThan(0);
    for (const entry of large) {
      expect(entry.memberCount).toBeGreaterThan(1500);
      // Windows AD caps an unranged read at MaxValRange (1500) and answers member;range=0-1499.
      // Samba returns every value to a plain `member` request, so ask for ranges explicitly,
      // as a client must for Windows, and check Samba pages them.
      const plain = await readAllMembers(client, entry.dn);
      expect(plain.values).toHaveLength(entry.memberCount ?? -1);
      const ranged = await readAllMembers(client, entry.dn, 'member;range=0-1499');
      expect(ranged.pages[0]).toEqual({ attribute: 'member;range=0-1499', count: 1500 });
      expect(ranged.pages.at(-1)?.attribute).toMatch(/;range=\d+-\*$/);
      expect(ranged.values).toHaveLength(entry.memberCount ?? -1);
      expect(new Set(ranged.values.map(lower)).size).toBe(entry.memberCount);
    }
  });

  it('LDAPS answers with the certificate Samba generated; the sync account can bind', async () => {
    const ca = await readFile(ad().tlsCaFile ?? '');
    const tls = new Client({
      url: ad().ldapsUrl ?? '',
      // The certificate names NIMBUSDC.<domain>; we connect to 127.0.0.1, so check the chain only.
      tlsOptions: { ca, checkServerIdentity: () => undefined },
    });
    try {
      const sync = cases()['upn-domain-suffix'].find((e) => e.sAMAccountName === 'svc-nimbus-sync');
      expect(sync).toBeDefined();
      await tls.bind(sync?.userPrincipalName ?? '', SAMBA_SYNC_PASSWORD);
      const { searchEntries } = await tls.search(ad().baseDN, { scope: 'base', attributes: ['distinguishedName'] });
      expect(searchEntries[0]?.dn).toBe(ad().baseDN);
    } finally {
      await tls.unbind();
    }
  });
});

/**
 * Reads `member` the way AD wants it read: ask for `first` (plain `member` or a range); while
 * the answer is `member;range=<lo>-<hi>`, ask for `member;range=<hi+1>-*` until it ends in `*`.
 */
async function readAllMembers(
  client: Client,
  dn: string,
  first = 'member',
): Promise<{ pages: { attribute: string; count: number }[]; values: string[] }> {
  const values: string[] = [];
  const pages: { attribute: string; count: number }[] = [];
  let request = first;
  for (;;) {
    const { searchEntries } = await client.search(dn, { scope: 'base', attributes: [request] });
    const e = searchEntries[0];
    if (!e) throw new Error(`${dn} not found`);
    const key = Object.keys(e).find((k) => k === 'member' || k.startsWith('member;range='));
    if (!key) return { pages, values };
    const got = list(e, key);
    pages.push({ attribute: key, count: got.length });
    values.push(...got);
    const m = /^member;range=(\d+)-(\d+|\*)$/.exec(key);
    if (!m || m[2] === '*') return { pages, values };
    request = `member;range=${Number(m[2]) + 1}-*`;
  }
}
