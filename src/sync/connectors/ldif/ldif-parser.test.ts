// Unit tests of the streaming LDIF parser against a hand-written AD export and edge inputs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ImportItem, SourceEntry } from '../connector.ts';
import { createLdifConnector, LDIF_CHUNK_BYTES } from './ldif-connector.ts';
import { DEFAULT_BINARY_ATTRIBUTES } from './ldif-connector-config.ts';
import { LdifReader, parseLdif } from './ldif-parser.ts';

const FIXTURE = fileURLToPath(new URL('../../../../test/fixtures/ad-sample.ldif', import.meta.url));

async function collect(it: AsyncIterable<ImportItem>): Promise<ImportItem[]> {
  const out: ImportItem[] = [];
  for await (const x of it) out.push(x);
  return out;
}
const parse = (text: string) => collect(parseLdif(text.split('\n'), { binaryAttributes: DEFAULT_BINARY_ATTRIBUTES }));

describe('LDIF parser', () => {
  it('reads an ldapsearch/ldifde export from a file as a stream', async () => {
    const items = (await collect(createLdifConnector({ path: FIXTURE }).fullImport())) as SourceEntry[];
    expect(items.map((i) => i.dn)).toEqual([
      'CN=Jürgen Müller,OU=Sales,DC=corp,DC=example,DC=com',
      'CN=Big Group,OU=Sales,DC=corp,DC=example,DC=com',
      'CN=Dupe\\0ACNF:1234,OU=Sales,DC=corp,DC=example,DC=com',
      'CN=Crlf User,OU=Sales,DC=corp,DC=example,DC=com',
    ]);
    const [user, group, , crlf] = items as [SourceEntry, SourceEntry, SourceEntry, SourceEntry];
    // `::` text values are UTF-8; folded lines are joined; multi-valued attributes keep order.
    expect(user.attributes.cn).toEqual(['Jürgen Müller']);
    expect(user.attributes.description).toEqual(['A long description that is folded by the exporter because it is longer than seventy-six characters in total']);
    expect(user.attributes.proxyAddresses).toEqual(['SMTP:juergen.mueller@contoso.com', 'smtp:jm@contoso.com']);
    expect(user.attributes.objectClass).toHaveLength(4);
    // Binary attributes stay bytes.
    expect(user.attributes.objectGUID![0]).toEqual(Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'));
    expect(Buffer.isBuffer(user.attributes.objectSid![0])).toBe(true);
    // Ranged values are gathered under the base attribute name.
    expect(group.attributes.member).toHaveLength(3);
    expect(Object.keys(group.attributes)).not.toContain('member;range=0-1');
    // CRLF line ends and a text objectGUID (converted to AD byte order).
    expect(crlf.attributes.title).toEqual(['first part and second']);
    expect(crlf.attributes.objectGUID![0]).toEqual(Buffer.from('33221100554477668899aabbccddeeff', 'hex'));
  });

  it('reports a broken entry with its line and goes on with the next', async () => {
    const items = await parse('dn: CN=a,DC=x\ncn: a\nno colon here\n\ndn: CN=b,DC=x\ncn: b\nobjectGUID:: !!notbase64\n\ndn: CN=c,DC=x\ncn: c\n');
    expect(items).toEqual([
      { error: "'no colon here' is not an LDIF 'attribute: value' line", dn: 'CN=a,DC=x', location: 'ldif:3' },
      { error: 'the base64 value of objectGUID is malformed', dn: 'CN=b,DC=x', location: 'ldif:7' },
      { dn: 'CN=c,DC=x', attributes: { cn: ['c'] } },
    ]);
  });

  it('skips comments (with their continuations) and changetype: add, refuses other change records', async () => {
    const items = await parse('# comment\n continued comment\ndn: CN=a,DC=x\nchangetype: add\ncn: a\n\ndn: CN=b,DC=x\nchangetype: modify\nreplace: cn\n');
    expect(items[0]).toEqual({ dn: 'CN=a,DC=x', attributes: { cn: ['a'] } });
    expect((items[1] as { error: string }).error).toContain('changetype: modify');
  });

  it('needs a dn first', async () => {
    const items = await parse('cn: a\ndn: CN=a,DC=x\n');
    expect((items[0] as { error: string }).error).toContain("must start with 'dn:'");
  });

  it('gives the same entries however the text is cut into chunks', () => {
    const text = readFileSync(FIXTURE, 'utf8');
    const read = (chunks: string[]) => {
      const reader = new LdifReader({ binaryAttributes: DEFAULT_BINARY_ATTRIBUTES });
      const out: ImportItem[] = [];
      for (const c of chunks) reader.write(c, out);
      reader.end(out);
      return out;
    };
    const whole = read([text]);
    expect(whole).toHaveLength(4);
    // Every cut point: inside a name, a value, a folded line, a CRLF pair, a blank line.
    for (let at = 0; at <= text.length; at++) expect(read([text.slice(0, at), text.slice(at)])).toEqual(whole);
    // One character at a time, and no line feed at the end of the input.
    expect(read([...text])).toEqual(whole);
    expect(read([text.trimEnd()])).toEqual(whole);
  });

  it('reads a file whose chunks split a UTF-8 character', async () => {
    // Put a two-byte 'ü' across the first boundary of the connector's chunks.
    const head = 'dn: CN=pad,DC=x\ncn: pad\ndescription: ';
    const pad = 'a'.repeat(LDIF_CHUNK_BYTES - Buffer.byteLength(head) - 1);
    const dir = mkdtempSync(join(tmpdir(), 'nimbus-ldif-'));
    try {
      const file = join(dir, 'x.ldif');
      writeFileSync(file, `${head}${pad}ü\n\ndn: CN=Jürgen,DC=x\ncn: Jürgen\n`);
      const items = (await collect(createLdifConnector({ path: file }).fullImport())) as SourceEntry[];
      expect(items.map((i) => i.dn)).toEqual(['CN=pad,DC=x', 'CN=Jürgen,DC=x']);
      expect((items[0]!.attributes.description![0] as string).endsWith('aü')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops at the next entry once the signal is aborted, the one the end of the file completes too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nimbus-ldif-'));
    try {
      // No blank line after the last entry: the reader completes it only at the end of the file.
      const file = join(dir, 'x.ldif');
      writeFileSync(file, 'dn: CN=a,DC=x\ncn: a\n\ndn: CN=b,DC=x\ncn: b\n');
      const stop = new AbortController();
      const seen: string[] = [];
      const read = async () => {
        for await (const item of createLdifConnector({ path: file }).fullImport(stop.signal)) {
          seen.push((item as SourceEntry).dn);
          stop.abort();
        }
      };
      await expect(read()).rejects.toMatchObject({ code: 'Aborted' });
      expect(seen).toEqual(['CN=a,DC=x']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails the import (not the entry) when the file cannot be read', async () => {
    await expect(collect(createLdifConnector({ path: '/nonexistent/x.ldif' }).fullImport())).rejects.toThrow(/cannot read the LDIF file/);
  });
});
