// Single and bulk UPN changes with a journal, and their undo. Plans first (suffix allowed,
// unique in the forest, readiness rules), then writes each user with one modify that deletes
// the exact old value and adds the new one, so a concurrent change fails instead of being lost.
import { existsSync, readFileSync } from 'node:fs';
import { Attribute, Change, type Entry } from 'ldapts';
import { attrBuffer, attrString, type LdapConnection } from '../shared/ldap/connection.ts';
import { escapeFilterValue } from '../shared/ldap/escape.ts';
import { LdapError } from '../shared/ldap/ldap-errors.ts';
import { asciiLower, splitUpn } from '../shared/upn.ts';
import { upnFindings } from './idfix.ts';
import { JournalWriter, readJournal, type JournalEntry } from './upn-journal.ts';
import { allowedSuffixes, readSuffixes, USER_FILTER } from './upn-suffixes.ts';

export type Selection =
  | { kind: 'user'; id: string }
  | { kind: 'base'; base: string; filter?: string | undefined }
  | { kind: 'csv'; file: string };
export type NewValue = { suffix: string } | { upn: string };

export interface PlanItem {
  /** The DN, or the identifier as given when it did not resolve. */
  dn: string;
  sAMAccountName?: string | undefined;
  old: Buffer | null;
  oldText: string | null;
  newText: string | null;
  status: 'change' | 'unchanged' | 'refused';
  reason?: string | undefined;
  suggestion?: string | undefined;
}

export interface ChangeResult extends PlanItem {
  result: 'changed' | 'unchanged' | 'refused' | 'failed' | 'would-change';
}

const USER_ATTRS = ['userPrincipalName', 'sAMAccountName'];

/** RFC 4180 CSV with a header row: `user` (sAMAccountName, DN or UPN) and optional `upn`. */
export function parseUpnCsv(text: string, file: string): { user: string; upn?: string | undefined }[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      if (row.some((x) => x.trim() !== '')) rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  row.push(cell);
  if (row.some((x) => x.trim() !== '')) rows.push(row);
  const header = (rows.shift() ?? []).map((h) => h.trim().toLowerCase());
  const ui = header.findIndex((h) => ['user', 'samaccountname', 'dn', 'distinguishedname', 'userprincipalname', 'id'].includes(h));
  const ni = header.findIndex((h) => ['upn', 'newupn', 'new_upn'].includes(h));
  if (ui < 0) throw new LdapError('LdapConfig', `${file}: the header row needs a 'user' column (sAMAccountName, DN or UPN), and optionally 'upn' for the new UPN.`);
  return rows.map((r) => ({ user: (r[ui] ?? '').trim(), upn: ni >= 0 ? (r[ni] ?? '').trim() || undefined : undefined }));
}

/** Finds one user by DN, UPN or sAMAccountName. */
export async function findUser(conn: LdapConnection, id: string): Promise<Entry | undefined> {
  const base = (await conn.rootDse()).defaultNamingContext;
  if (/^[A-Za-z][\w-]*=/.test(id) && id.includes(',')) {
    try {
      return (await conn.find(id, { scope: 'base', filter: USER_FILTER, attributes: USER_ATTRS, binary: ['userPrincipalName'] }))[0];
    } catch (err) {
      if (err instanceof LdapError && err.code === 'LdapNoSuchObject') return undefined;
      throw err;
    }
  }
  const attr = id.includes('@') ? 'userPrincipalName' : 'sAMAccountName';
  const found = await conn.find(base, { filter: `(&${USER_FILTER}(${attr}=${escapeFilterValue(id)}))`, attributes: USER_ATTRS, binary: ['userPrincipalName'] });
  return found[0];
}

function itemOf(e: Entry, value: NewValue | { upn: string }): PlanItem {
  const old = attrBuffer(e, 'userPrincipalName') ?? null;
  const oldText = old ? old.toString('utf8') : null;
  const sam = attrString(e, 'sAMAccountName');
  let newText: string;
  if ('upn' in value) newText = value.upn;
  else {
    const local = (oldText ? splitUpn(oldText)?.local : undefined) ?? sam;
    if (!local) return { dn: e.dn, sAMAccountName: sam, old, oldText, newText: null, status: 'refused', reason: 'has neither a UPN nor a sAMAccountName to keep the prefix of; give --upn' };
    newText = `${local}@${value.suffix}`;
  }
  const status = old && old.equals(Buffer.from(newText, 'utf8')) ? 'unchanged' : 'change';
  return { dn: e.dn, sAMAccountName: sam, old, oldText, newText, status };
}

/**
 * Resolves the selection and checks every new UPN: suffix allowed in the forest, passes the
 * readiness rules, unique in the run and in the directory (UPNs and implied sam@domain UPNs).
 */
export async function planUpnChanges(conn: LdapConnection, sel: Selection, value: NewValue | undefined): Promise<PlanItem[]> {
  const dse = await conn.rootDse();
  const items: PlanItem[] = [];
  if (sel.kind === 'user') {
    if (!value) throw new LdapError('LdapConfig', 'Give --suffix S or --upn U.');
    const e = await findUser(conn, sel.id);
    if (!e) throw new LdapError('LdapNoSuchObject', `No user '${sel.id}' (looked up as ${sel.id.includes('@') ? 'a UPN' : /=/.test(sel.id) ? 'a DN' : 'a sAMAccountName'} under ${dse.defaultNamingContext}). Check the name.`, { target: sel.id });
    items.push(itemOf(e, value));
  } else if (sel.kind === 'base') {
    if (!value || !('suffix' in value)) throw new LdapError('LdapConfig', '--base changes many users: give --suffix S (a full --upn fits one user only; use --user or --csv).');
    const filter = sel.filter ? `(&${USER_FILTER}${sel.filter.startsWith('(') ? sel.filter : `(${sel.filter})`})` : USER_FILTER;
    for await (const page of conn.pages(sel.base, { filter, attributes: USER_ATTRS, binary: ['userPrincipalName'] })) for (const e of page) items.push(itemOf(e, value));
  } else {
    let text: string;
    try {
      text = readFileSync(sel.file, 'utf8');
    } catch (err) {
      throw new LdapError('LdapConfig', `Cannot read the CSV ${sel.file}: ${(err as Error).message}.`);
    }
    const rows = parseUpnCsv(text, sel.file);
    for (let i = 0; i < rows.length; i += 20) {
      const chunk = rows.slice(i, i + 20);
      const found = await Promise.all(chunk.map((r) => (r.user ? findUser(conn, r.user) : Promise.resolve(undefined))));
      chunk.forEach((r, j) => {
        const e = found[j];
        const v: NewValue | undefined = r.upn ? { upn: r.upn } : value;
        if (!e) items.push({ dn: r.user || `(row ${i + j + 2})`, old: null, oldText: null, newText: r.upn ?? null, status: 'refused', reason: r.user ? 'no such user' : 'the user column is empty' });
        else if (!v) items.push({ dn: e.dn, old: null, oldText: null, newText: null, status: 'refused', reason: 'no upn column on this row and no --suffix given' });
        else items.push(itemOf(e, v));
      });
    }
  }

  const suffixes = await readSuffixes(conn);
  const allowed = allowedSuffixes(suffixes);
  const ctx = { domainDnsName: suffixes.implicit[0] ?? '' };
  const seen = new Map<string, string>();
  for (const it of items) {
    if (it.status !== 'change' || !it.newText) continue;
    const refuse = (reason: string, suggestion?: string) => Object.assign(it, { status: 'refused', reason, suggestion });
    const findings = upnFindings(it.newText, { dn: it.dn, kind: 'user', sAMAccountName: it.sAMAccountName }, ctx);
    const domain = splitUpn(it.newText)?.domain;
    if (domain && !allowed.has(asciiLower(domain))) {
      refuse(`the suffix ${domain} is not a UPN suffix of this forest; add it first: nimbus ad upn-suffix add ${domain}`);
    } else if (findings.length > 0) {
      refuse(`the new UPN ${it.newText} fails the readiness rules: ${findings.map((f) => f.message).join('; ')}`, findings.find((f) => f.suggestion)?.suggestion);
    } else {
      const k = asciiLower(it.newText);
      const other = seen.get(k);
      if (other) refuse(`${it.newText} would also be given to ${other} in this run`);
      else seen.set(k, it.dn);
    }
  }
  // Uniqueness in the directory, 40 values per query rather than one search per user.
  const pending = items.filter((it) => it.status === 'change' && it.newText);
  const implicit = new Set(suffixes.implicit);
  for (let i = 0; i < pending.length; i += 40) {
    const chunk = pending.slice(i, i + 40);
    const terms = chunk.flatMap((it) => {
      const p = splitUpn(it.newText!)!;
      const t = [`(userPrincipalName=${escapeFilterValue(it.newText!)})`];
      // AD also refuses a UPN equal to another account's implied UPN, sAMAccountName@<domain DNS name>.
      if (implicit.has(asciiLower(p.domain))) t.push(`(sAMAccountName=${escapeFilterValue(p.local)})`);
      return t;
    });
    const holders = await conn.find(dse.defaultNamingContext, { filter: `(|${terms.join('')})`, attributes: ['userPrincipalName', 'sAMAccountName'] });
    const byUpn = new Map<string, string>();
    const bySam = new Map<string, string>();
    for (const h of holders) {
      const u = attrString(h, 'userPrincipalName');
      const s = attrString(h, 'sAMAccountName');
      if (u) byUpn.set(asciiLower(u), h.dn);
      if (s) bySam.set(asciiLower(s), h.dn);
    }
    for (const it of chunk) {
      const p = splitUpn(it.newText!)!;
      const holder = byUpn.get(asciiLower(it.newText!)) ?? (implicit.has(asciiLower(p.domain)) ? bySam.get(asciiLower(p.local)) : undefined);
      if (holder && asciiLower(holder) !== asciiLower(it.dn)) {
        Object.assign(it, { status: 'refused', reason: `${it.newText} is already used by ${holder} (UPNs are unique in the forest)` });
      }
    }
  }
  return items;
}

export interface ApplyOptions {
  journal: string;
  /** Modify requests in flight at once; default 2: hides the round trip, while more only contend inside the DC (bench/upn-bulk.ts: 8 was 1.26x the ldapmodify floor, 2 was 1.15x). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  url: string;
  bindDn: string;
}

/** Runs `fn` over items with at most `n` in flight, in order of start. */
async function pool<T>(items: T[], n: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** Writes the planned changes; returns a result per item and never throws for one user. */
export async function applyUpnChanges(conn: LdapConnection, items: PlanItem[], opts: ApplyOptions): Promise<ChangeResult[]> {
  const results: ChangeResult[] = items.map((it) => ({ ...it, result: it.status === 'change' ? 'failed' : it.status === 'unchanged' ? 'unchanged' : 'refused' }));
  const todo = results.filter((r) => r.status === 'change');
  if (todo.length === 0) return results;
  const startSeq = existsSync(opts.journal) ? readJournal(opts.journal).maxSeq : 0;
  const journal = new JournalWriter(opts.journal);
  journal.write({ type: 'run', startedAt: new Date().toISOString(), url: opts.url, bindDn: opts.bindDn, planned: todo.length });
  let done = 0;
  try {
    await pool(todo, opts.concurrency ?? 2, async (r, i) => {
      const seq = startSeq + i + 1;
      const next = Buffer.from(r.newText!, 'utf8');
      journal.write({ type: 'change', seq, dn: r.dn, old: r.old ? r.old.toString('base64') : null, oldText: r.oldText, new: next.toString('base64'), newText: r.newText! });
      const changes = [
        ...(r.old ? [new Change({ operation: 'delete', modification: new Attribute({ type: 'userPrincipalName', values: [r.old] }) })] : []),
        new Change({ operation: 'add', modification: new Attribute({ type: 'userPrincipalName', values: [next] }) }),
      ];
      try {
        await conn.modify(r.dn, changes, 'write userPrincipalName');
        r.result = 'changed';
        journal.write({ type: 'done', seq, status: 'ok' });
      } catch (err) {
        r.result = 'failed';
        r.reason = (err as Error).message;
        journal.write({ type: 'done', seq, status: 'failed', error: r.reason });
      }
      opts.onProgress?.(++done, todo.length);
    });
  } finally {
    journal.close();
  }
  return results;
}

export interface UndoResult {
  dn: string;
  from: string | null;
  to: string | null;
  result: 'restored' | 'not-applied' | 'already-undone' | 'conflict' | 'failed';
  reason?: string | undefined;
}

/**
 * Restores the old values of a journal, newest first. An entry whose modify never happened
 * (killed run, failed user) is recognised by reading the current value; a value changed since
 * by someone else is left alone and reported as a conflict.
 */
export async function undoJournal(conn: LdapConnection, path: string, opts: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<UndoResult[]> {
  const { entries } = readJournal(path);
  const ordered = [...entries].sort((a, b) => b.change.seq - a.change.seq);
  const journal = new JournalWriter(path);
  const results: UndoResult[] = [];
  let done = 0;
  try {
    await pool(ordered, opts.concurrency ?? 2, async (e: JournalEntry) => {
      const c = e.change;
      const old = c.old === null ? null : Buffer.from(c.old, 'base64');
      const next = Buffer.from(c.new, 'base64');
      const res: UndoResult = { dn: c.dn, from: c.newText, to: c.oldText, result: 'failed' };
      results.push(res);
      if (e.undo && (e.undo.status === 'restored' || e.undo.status === 'not-applied')) {
        res.result = 'already-undone';
        opts.onProgress?.(++done, ordered.length);
        return;
      }
      const changes = [
        new Change({ operation: 'delete', modification: new Attribute({ type: 'userPrincipalName', values: [next] }) }),
        ...(old ? [new Change({ operation: 'add', modification: new Attribute({ type: 'userPrincipalName', values: [old] }) })] : []),
      ];
      try {
        await conn.modify(c.dn, changes, 'write userPrincipalName');
        res.result = 'restored';
      } catch (err) {
        // Did the original change ever land? Read the value now and decide.
        let current: Buffer | null | 'unreadable' = 'unreadable';
        try {
          const [cur] = await conn.find(c.dn, { scope: 'base', attributes: ['userPrincipalName'], binary: ['userPrincipalName'] });
          current = cur ? (attrBuffer(cur, 'userPrincipalName') ?? null) : 'unreadable';
        } catch {
          // Reported below as a failure with the original error.
        }
        const same = (a: Buffer | null, b: Buffer | null) => (a === null ? b === null : b !== null && a.equals(b));
        if (current !== 'unreadable' && same(current, old)) res.result = 'not-applied';
        else if (current !== 'unreadable' && !same(current, next)) {
          res.result = 'conflict';
          res.reason = `the UPN is now ${current ? current.toString('utf8') : '(none)'}, changed since by someone else; left alone`;
        } else {
          res.result = 'failed';
          res.reason = (err as Error).message;
        }
      }
      journal.write({ type: 'undo', seq: c.seq, status: res.result, error: res.reason, at: new Date().toISOString() });
      opts.onProgress?.(++done, ordered.length);
    });
  } finally {
    journal.close();
  }
  return results;
}
