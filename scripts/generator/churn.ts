// Applies a seeded mix of creates / modifies / deletes / renames / moves to a running
// directory over LDAP (ldapts), for delta-sync tests and benchmarks; returns what it did.
import type { ConnectionOptions } from 'node:tls';
import { Attribute, Change, Client } from 'ldapts';
import { escapeRdnValue } from '../lib/ldap.ts';
import { Rng } from './random.ts';

export interface ChurnMix {
  creates?: number;
  modifies?: number;
  deletes?: number;
  renames?: number;
  moves?: number;
}

export interface ChurnTarget {
  url: string;
  bindDN: string;
  password: string;
  /** Subtree holding the generated users (the manifest's rootOU). */
  rootOU: string;
  /** 'ad' for Samba/AD (user objects, sAMAccountName), 'openldap' for inetOrgPerson. */
  flavour: 'ad' | 'openldap';
  /** Domain for UPNs of created AD users. */
  domainDnsName?: string;
  tlsOptions?: ConnectionOptions;
}

export interface ChurnResult {
  created: { dn: string; name: string }[];
  modified: { dn: string; attributes: Record<string, string> }[];
  deleted: string[];
  renamed: { from: string; to: string }[];
  moved: { from: string; to: string }[];
  /** Operations the server refused; churn goes on (batch work returns results, it does not throw). */
  errors: { op: string; dn: string; error: string }[];
  ms: number;
}

/** The typical delta AD Connect documents: ~1% creates, ~1% deletes, ~5% modifies (plus a few renames/moves). */
export function typicalDelta(totalUsers: number): Required<ChurnMix> {
  const pct = (p: number) => Math.max(1, Math.round((totalUsers * p) / 100));
  return { creates: pct(1), deletes: pct(1), modifies: pct(5), renames: pct(0.2), moves: pct(0.2) };
}

/** AD names that sync must never touch; churn leaves them alone too. */
const PROTECTED = /^(\$DUPLICATE-|MSOL_|AAD_|svc-)/i;

/** Splits "CN=x,OU=y,..." into its RDN and parent (the first unescaped comma). */
function splitDn(dn: string): { rdn: string; parent: string } {
  const i = dn.search(/(?<!\\),/);
  return { rdn: dn.slice(0, i), parent: dn.slice(i + 1) };
}

export async function applyChurn(target: ChurnTarget, mix: ChurnMix, seed = 1): Promise<ChurnResult> {
  const t0 = Date.now();
  const rng = new Rng(seed);
  const ad = target.flavour === 'ad';
  const client = new Client({ url: target.url, timeout: 60_000, ...(target.tlsOptions ? { tlsOptions: target.tlsOptions } : {}) });
  const result: ChurnResult = { created: [], modified: [], deleted: [], renamed: [], moved: [], errors: [], ms: 0 };
  try {
    await client.bind(target.bindDN, target.password);
    const userFilter = ad ? '(&(objectClass=user)(!(objectClass=computer))(!(isCriticalSystemObject=TRUE)))' : '(objectClass=inetOrgPerson)';
    const nameAttr = ad ? 'sAMAccountName' : 'uid';
    const { searchEntries } = await client.search(target.rootOU, {
      scope: 'sub',
      filter: userFilter,
      attributes: [nameAttr],
      paged: { pageSize: 1000 },
    });
    // Sorted, so the same seed picks the same objects whatever order the server returns.
    const candidates = searchEntries
      .filter((e) => !PROTECTED.test(String(e[nameAttr] ?? '')) && !/\\0ACNF:/i.test(e.dn))
      .map((e) => e.dn)
      .sort();
    const userOUs = [...new Set(candidates.map((dn) => splitDn(dn).parent))].sort();
    const pool = rng.shuffle(candidates);
    const take = () => pool.pop();
    const attempt = async (op: string, dn: string, fn: () => Promise<void>): Promise<boolean> => {
      try {
        await fn();
        return true;
      } catch (err) {
        result.errors.push({ op, dn, error: err instanceof Error ? err.message : String(err) });
        return false;
      }
    };

    for (let i = 0; i < (mix.deletes ?? 0); i++) {
      const dn = take();
      if (!dn) break;
      if (await attempt('delete', dn, () => client.del(dn))) result.deleted.push(dn);
    }
    for (let i = 0; i < (mix.modifies ?? 0); i++) {
      const dn = take();
      if (!dn) break;
      const attributes = {
        title: `Churned Title ${seed}-${i}`,
        telephoneNumber: `+1 555 ${String(1000 + rng.int(9000))}`,
        [ad ? 'department' : 'departmentNumber']: rng.pick(['Engineering', 'Sales', 'Finance', 'Legal']),
      };
      const changes = Object.entries(attributes).map(
        ([type, v]) => new Change({ operation: 'replace', modification: new Attribute({ type, values: [v] }) }),
      );
      if (await attempt('modify', dn, () => client.modify(dn, changes))) result.modified.push({ dn, attributes });
    }
    for (let i = 0; i < (mix.renames ?? 0); i++) {
      const dn = take();
      if (!dn) break;
      const { rdn, parent } = splitDn(dn);
      const to = `${rdn} (renamed ${seed}-${i}),${parent}`;
      if (await attempt('rename', dn, () => client.modifyDN(dn, to))) result.renamed.push({ from: dn, to });
    }
    for (let i = 0; i < (mix.moves ?? 0); i++) {
      const dn = take();
      if (!dn) break;
      const { rdn, parent } = splitDn(dn);
      const others = userOUs.filter((ou) => ou !== parent);
      if (others.length === 0) break;
      // Same-named users live in other OUs; try OUs until the name is free there.
      let lastError = '';
      let moved = false;
      for (const ou of rng.shuffle(others)) {
        const to = `${rdn},${ou}`;
        try {
          await client.modifyDN(dn, to);
          result.moved.push({ from: dn, to });
          moved = true;
          break;
        } catch (err) {
          lastError = err instanceof Error ? err.message : String(err);
          if (!/already exists/i.test(lastError)) break;
        }
      }
      if (!moved) result.errors.push({ op: 'move', dn, error: lastError });
    }
    for (let i = 0; i < (mix.creates ?? 0); i++) {
      const name = `churn-${seed}-${i}`;
      const cn = `Churn User ${seed}-${i}`;
      const parent = userOUs.length > 0 ? rng.pick(userOUs) : target.rootOU;
      const dn = ad ? `CN=${escapeRdnValue(cn)},${parent}` : `uid=${escapeRdnValue(name)},${parent}`;
      const attrs: Record<string, string[]> = ad
        ? {
            objectClass: ['top', 'person', 'organizationalPerson', 'user'],
            cn: [cn],
            sAMAccountName: [name.slice(0, 20)],
            userPrincipalName: [`${name}@${target.domainDnsName ?? 'corp.example.com'}`],
            displayName: [cn],
            givenName: ['Churn'],
            sn: [`User ${seed}-${i}`],
            // Enabled without a password (NORMAL_ACCOUNT | PASSWD_NOTREQD), like the fixture's users.
            userAccountControl: ['544'],
          }
        : {
            objectClass: ['top', 'inetOrgPerson'],
            uid: [name],
            cn: [cn],
            sn: [`User ${seed}-${i}`],
            mail: [`${name}@example.com`],
          };
      if (await attempt('create', dn, () => client.add(dn, attrs))) result.created.push({ dn, name });
    }
  } finally {
    await client.unbind().catch(() => undefined);
  }
  result.ms = Date.now() - t0;
  return result;
}
