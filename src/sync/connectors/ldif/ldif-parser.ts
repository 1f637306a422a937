// Streaming LDIF content parser (RFC 2849) for ldifde / ldapsearch exports: folded lines,
// comments, `::` base64 values, binary attributes kept as bytes, multi-valued and ranged
// attributes. It takes text in chunks of any size and works synchronously within a chunk
// (an await per line cost more than the parsing), so memory is bounded by the chunk and the
// largest single entry.
import { guidTextToBytes } from '../../engine/ad-values.ts';
import type { ImportItem, LdapValue } from '../connector.ts';

export interface LdifParseOptions {
  /** Attribute names (any case) whose base64 values are returned as Buffers. */
  binaryAttributes: readonly string[];
  /** Used in error locations, e.g. the file name. */
  sourceName?: string;
}

// An attribute description: name or OID, then options (`;range=0-1499`, `;binary`).
const DESCRIPTION = /^([A-Za-z0-9][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)((?:;[^:;]+)*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const GUID_TEXT = /^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$/;

interface Logical {
  text: string;
  line: number;
}

/**
 * The LDIF reader: `write` text as it arrives (lines may be split anywhere), `end` at the end
 * of the input; both append the entries (and per-entry errors) completed so far to `out`.
 */
export class LdifReader {
  private readonly binary: ReadonlySet<string>;
  private readonly sourceName: string;
  /** Attribute description -> its base name (options dropped), or null when malformed. */
  private readonly names = new Map<string, string | null>();
  private partial = '';
  private rec: Logical[] = [];
  private cur: Logical | undefined;
  private inComment = false;
  private n = 0;

  constructor(opts: LdifParseOptions) {
    this.binary = new Set(opts.binaryAttributes.map((a) => a.toLowerCase()));
    this.sourceName = opts.sourceName ?? 'ldif';
  }

  write(text: string, out: ImportItem[]): void {
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      if (nl < 0) break;
      let line = text.slice(at, nl);
      if (at === 0 && this.partial) {
        line = this.partial + line;
        this.partial = '';
      }
      this.line(line, out);
      at = nl + 1;
    }
    if (at < text.length) this.partial += text.slice(at);
  }

  end(out: ImportItem[]): void {
    if (this.partial) {
      const last = this.partial;
      this.partial = '';
      this.line(last, out);
    }
    this.flush();
    this.record(out);
  }

  private where(line: number): string {
    return `${this.sourceName}:${line}`;
  }

  private flush(): void {
    if (this.cur) this.rec.push(this.cur);
    this.cur = undefined;
  }

  private record(out: ImportItem[]): void {
    if (this.rec.length) {
      const item = this.parseRecord(this.rec);
      if (item) out.push(item);
    }
    this.rec = [];
  }

  /** One physical line (without its line feed). */
  private line(physical: string, out: ImportItem[]): void {
    this.n++;
    const line = physical.endsWith('\r') ? physical.slice(0, -1) : physical;
    if (line.startsWith(' ')) {
      // RFC 2849 folding: a line starting with one space continues the previous line.
      if (this.inComment) return;
      if (this.cur) this.cur.text += line.slice(1);
      else out.push({ error: 'a continuation line (starting with a space) has no line to continue', location: this.where(this.n) });
      return;
    }
    this.flush();
    this.inComment = false;
    if (line === '') {
      this.record(out);
      return;
    }
    if (line.startsWith('#')) {
      this.inComment = true;
      return;
    }
    this.cur = { text: line, line: this.n };
  }

  /** The base name of an attribute description, or null when it is not one. */
  private nameOf(description: string): string | null {
    let name = this.names.get(description);
    if (name === undefined) {
      const m = DESCRIPTION.exec(description);
      name = m ? m[1]! : null;
      this.names.set(description, name);
    }
    return name;
  }

  /** Parses the logical lines of one record into an entry, or an error naming the line. */
  private parseRecord(rec: Logical[]): ImportItem | undefined {
    let i = 0;
    if (/^version:/i.test(rec[0]?.text ?? '')) i++;
    if (i >= rec.length) return undefined;
    const attributes: Record<string, LdapValue[]> = {};
    // Multi-valued attributes repeat the name, in any case; ranged ones (`member;range=0-1499`)
    // add to the base name. The first spelling seen is kept.
    const canonical = new Map<string, string>();
    let dn: string | undefined;
    for (let first = true; i < rec.length; i++, first = false) {
      const l = rec[i]!;
      const text = l.text;
      const colon = text.indexOf(':');
      const name = colon > 0 ? this.nameOf(text.slice(0, colon)) : null;
      if (name === null) return { error: `'${text.slice(0, 60)}' is not an LDIF 'attribute: value' line`, dn, location: this.where(l.line) };
      const next = text.charCodeAt(colon + 1);
      const sep = next === 58 /* : */ ? '::' : next === 60 /* < */ ? ':<' : ':';
      let v = colon + sep.length;
      while (text.charCodeAt(v) === 32) v++;
      const raw = text.slice(v);
      if (sep === ':<') return { error: `URL values (${name}:< ...) are not supported; export with values inline`, dn, location: this.where(l.line) };
      const lower = name.toLowerCase();
      let value: LdapValue;
      if (sep === '::') {
        const b64 = raw.trim();
        if (!BASE64.test(b64) || b64.length % 4 === 1) return { error: `the base64 value of ${name} is malformed`, dn, location: this.where(l.line) };
        const bytes = Buffer.from(b64, 'base64');
        value = this.binary.has(lower) ? bytes : bytes.toString('utf8');
      } else if (lower === 'objectguid' && this.binary.has(lower) && GUID_TEXT.test(raw)) {
        // Some tools print objectGUID as text; the anchor is always built from the bytes.
        value = guidTextToBytes(raw.replace(/[{}]/g, ''));
      } else value = raw;
      if (first) {
        if (lower !== 'dn') return { error: `a record must start with 'dn:', found '${name}:'`, location: this.where(l.line) };
        dn = typeof value === 'string' ? value : value.toString('utf8');
        continue;
      }
      if (lower === 'dn') return { error: "a second 'dn:' line: records must be separated by a blank line", dn, location: this.where(l.line) };
      if (lower === 'changetype') {
        if (String(value).toLowerCase() === 'add') continue;
        return { error: `change records (changetype: ${String(value)}) are not supported; export the directory content (ldifde -f / ldapsearch)`, dn, location: this.where(l.line) };
      }
      let key = canonical.get(lower);
      if (key === undefined) {
        key = name;
        canonical.set(lower, key);
      }
      (attributes[key] ??= []).push(value);
    }
    if (dn === undefined) return undefined;
    return { dn, attributes };
  }
}

/** Parses LDIF from physical lines (no line terminators) into entries and per-entry errors. */
export async function* parseLdif(lines: AsyncIterable<string> | Iterable<string>, opts: LdifParseOptions): AsyncGenerator<ImportItem> {
  const reader = new LdifReader(opts);
  const out: ImportItem[] = [];
  for await (const line of lines) {
    reader.write(`${line}\n`, out);
    yield* out.splice(0);
  }
  reader.end(out);
  yield* out;
}
