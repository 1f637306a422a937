// Streaming LDIF content parser (RFC 2849) for ldifde / ldapsearch exports: folded lines,
// comments, `::` base64 values, binary attributes kept as bytes, multi-valued and ranged
// attributes. Works line by line, so memory is bounded by the largest single entry.
import { guidTextToBytes } from '../../engine/ad-values.ts';
import type { ImportItem, LdapValue } from '../connector.ts';

export interface LdifParseOptions {
  /** Attribute names (any case) whose base64 values are returned as Buffers. */
  binaryAttributes: readonly string[];
  /** Used in error locations, e.g. the file name. */
  sourceName?: string;
}

// name, options (`;range=0-1499`, `;binary`), separator (`:`, `::`, `:<`), value.
const LINE = /^([A-Za-z0-9][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)((?:;[^:;]+)*)(::|:<|:)[ ]*(.*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const GUID_TEXT = /^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$/;

interface Logical {
  text: string;
  line: number;
}

/** Parses logical LDIF lines of one record into an entry, or an error naming the line. */
function parseRecord(rec: Logical[], binary: ReadonlySet<string>, where: (line: number) => string): ImportItem | undefined {
  let i = 0;
  if (/^version:/i.test(rec[0]?.text ?? '')) i++;
  if (i >= rec.length) return undefined;
  const first = rec[i]!;
  const parsed: { name: string; value: LdapValue; line: number }[] = [];
  let dn: string | undefined;
  for (; i < rec.length; i++) {
    const l = rec[i]!;
    const m = LINE.exec(l.text);
    if (!m) return { error: `'${l.text.slice(0, 60)}' is not an LDIF 'attribute: value' line`, dn, location: where(l.line) };
    const name = m[1]!;
    const sep = m[3]!;
    const raw = m[4]!;
    if (sep === ':<') return { error: `URL values (${name}:< ...) are not supported; export with values inline`, dn, location: where(l.line) };
    let value: LdapValue;
    if (sep === '::') {
      const b64 = raw.trim();
      if (!BASE64.test(b64) || b64.length % 4 === 1) return { error: `the base64 value of ${name} is malformed`, dn, location: where(l.line) };
      const bytes = Buffer.from(b64, 'base64');
      value = binary.has(name.toLowerCase()) ? bytes : bytes.toString('utf8');
    } else if (binary.has(name.toLowerCase()) && name.toLowerCase() === 'objectguid' && GUID_TEXT.test(raw)) {
      // Some tools print objectGUID as text; the anchor is always built from the bytes.
      value = guidTextToBytes(raw.replace(/[{}]/g, ''));
    } else value = raw;
    if (l === first) {
      if (name.toLowerCase() !== 'dn') return { error: `a record must start with 'dn:', found '${name}:'`, location: where(l.line) };
      dn = typeof value === 'string' ? value : value.toString('utf8');
      continue;
    }
    if (name.toLowerCase() === 'dn') return { error: "a second 'dn:' line: records must be separated by a blank line", dn, location: where(l.line) };
    if (name.toLowerCase() === 'changetype') {
      if (String(value).toLowerCase() === 'add') continue;
      return { error: `change records (changetype: ${String(value)}) are not supported; export the directory content (ldifde -f / ldapsearch)`, dn, location: where(l.line) };
    }
    parsed.push({ name, value, line: l.line });
  }
  if (dn === undefined) return undefined;
  // Multi-valued attributes repeat the name; ranged ones (`member;range=0-1499`) add to the base name.
  const attributes: Record<string, LdapValue[]> = {};
  const canonical = new Map<string, string>();
  for (const p of parsed) {
    const key = p.name.toLowerCase();
    let name = canonical.get(key);
    if (name === undefined) {
      name = p.name;
      canonical.set(key, name);
    }
    (attributes[name] ??= []).push(p.value);
  }
  return { dn, attributes };
}

/** Parses LDIF from physical lines (no line terminators) into entries and per-entry errors. */
export async function* parseLdif(lines: AsyncIterable<string> | Iterable<string>, opts: LdifParseOptions): AsyncGenerator<ImportItem> {
  const binary = new Set(opts.binaryAttributes.map((a) => a.toLowerCase()));
  const where = (line: number) => `${opts.sourceName ?? 'ldif'}:${line}`;
  let rec: Logical[] = [];
  let cur: Logical | undefined;
  let inComment = false;
  let n = 0;
  const flush = () => {
    if (cur) rec.push(cur);
    cur = undefined;
  };
  for await (const physical of lines) {
    n++;
    const line = physical.endsWith('\r') ? physical.slice(0, -1) : physical;
    if (line.startsWith(' ')) {
      // RFC 2849 folding: a line starting with one space continues the previous line.
      if (inComment) continue;
      if (cur) cur.text += line.slice(1);
      else {
        yield { error: 'a continuation line (starting with a space) has no line to continue', location: where(n) };
      }
      continue;
    }
    flush();
    inComment = false;
    if (line === '') {
      if (rec.length) {
        const item = parseRecord(rec, binary, where);
        if (item) yield item;
      }
      rec = [];
      continue;
    }
    if (line.startsWith('#')) {
      inComment = true;
      continue;
    }
    cur = { text: line, line: n };
  }
  flush();
  if (rec.length) {
    const item = parseRecord(rec, binary, where);
    if (item) yield item;
  }
}
