// Checks the churn helper against a real Samba AD and slapd: every reported change is
// visible in the directory afterwards, and nothing is left unreported.
import { Client } from 'ldapts';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { applyChurn, typicalDelta, type ChurnResult } from '../../scripts/generator/churn.ts';
import { useOpenLdap } from '../helpers/openldap.ts';
import { useSamba } from '../helpers/samba.ts';

// The serial project does not inherit the root config's timeouts; real servers need more than 5 s.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 600_000 });

async function exists(client: Client, dn: string): Promise<boolean> {
  try {
    await client.search(dn, { scope: 'base', attributes: ['1.1'] });
    return true;
  } catch {
    return false;
  }
}

async function verify(url: string, bindDN: string, password: string, r: ChurnResult): Promise<void> {
  const c = new Client({ url });
  await c.bind(bindDN, password);
  try {
    for (const { dn } of r.created) expect(await exists(c, dn), dn).toBe(true);
    for (const dn of r.deleted) expect(await exists(c, dn), dn).toBe(false);
    for (const { from, to } of [...r.renamed, ...r.moved]) {
      expect(await exists(c, from), from).toBe(false);
      expect(await exists(c, to), to).toBe(true);
    }
    for (const { dn, attributes } of r.modified) {
      const { searchEntries } = await c.search(dn, { scope: 'base', attributes: ['title'] });
      expect(searchEntries[0]?.title).toBe(attributes.title);
    }
  } finally {
    await c.unbind();
  }
}

describe('churn on Samba AD', () => {
  const ad = useSamba();
  it('applies a typical delta (1% creates, 1% deletes, 5% modifies, a few renames and moves)', async () => {
    const mix = typicalDelta(ad().manifest.users);
    const r = await applyChurn({ ...ad(), rootOU: ad().manifest.rootOU, flavour: 'ad' }, mix, 7);
    expect(r.errors).toEqual([]);
    expect(r.created).toHaveLength(mix.creates);
    expect(r.deleted).toHaveLength(mix.deletes);
    expect(r.modified).toHaveLength(mix.modifies);
    expect(r.renamed).toHaveLength(mix.renames);
    expect(r.moved).toHaveLength(mix.moves);
    await verify(ad().url, ad().bindDN, ad().password, r);
  }, 120_000);
});

describe('churn on OpenLDAP', () => {
  const ldap = useOpenLdap();
  let r: ChurnResult;
  beforeAll(async () => {
    r = await applyChurn({ ...ldap(), rootOU: ldap().manifest.rootOU, flavour: 'openldap' }, { creates: 5, modifies: 10, deletes: 5, renames: 2, moves: 2 }, 3);
  }, 60_000);
  it('applies every change and reports it', async () => {
    expect(r.errors).toEqual([]);
    expect(r.created.length + r.deleted.length + r.modified.length + r.renamed.length + r.moved.length).toBe(24);
    await verify(ldap().url, ldap().bindDN, ldap().password, r);
  });
});
