// File helpers for fixtures: stream generated text to disk, hash sources for cache keys,
// copy a fixture folder fast, and find the repository's .test-data cache folder.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from './process.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where built fixtures are cached (gitignored). NIMBUS_TEST_DATA overrides it. */
export const TEST_DATA_DIR = process.env.NIMBUS_TEST_DATA ?? path.join(REPO_ROOT, '.test-data');

/** Writes chunks to a file, respecting back-pressure so 100k-entry LDIF never sits in memory. */
export async function writeChunks(file: string, chunks: Iterable<string>): Promise<number> {
  const out = createWriteStream(file, { encoding: 'utf8' });
  let bytes = 0;
  let buf = '';
  const flush = async () => {
    if (buf.length === 0) return;
    bytes += Buffer.byteLength(buf);
    if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
    buf = '';
  };
  for (const c of chunks) {
    buf += c;
    if (buf.length > 1 << 20) await flush();
  }
  await flush();
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return bytes;
}

/** Short content hash of source files, so a cache keyed by it rebuilds when they change. */
export async function hashFiles(files: string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) h.update(await readFile(f));
  return h.digest('hex').slice(0, 10);
}

/** Recursive copy preserving modes; cp(1) with reflinks where the filesystem has them. */
export async function copyDir(from: string, to: string): Promise<void> {
  await runOk('cp', ['-a', '--reflink=auto', `${from}/.`, to]);
}
