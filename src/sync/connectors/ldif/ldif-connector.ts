// The LDIF connector: full import of an AD export file, streamed in 64 KB chunks (deletes are
// found by the engine as objects the connector space holds that a complete import did not see).
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { SyncError } from '../../errors.ts';
import type { ImportItem, SourceConnector } from '../connector.ts';
import { DEFAULT_BINARY_ATTRIBUTES, type LdifConnectorConfig } from './ldif-connector-config.ts';
import { LdifReader } from './ldif-parser.ts';

/**
 * Bytes read at a time. A chunk's entries are all parsed before the first is yielded, so they
 * live together: in chunks of 1 MB (~760 entries of an AD export) they outlived V8's young
 * generation and were copied and promoted, and reading and preparing the 100k LDIF (138 MB)
 * took 5.0-6.5 s; in chunks of 64 KB, 3.0-3.6 s.
 */
export const LDIF_CHUNK_BYTES = 64 * 1024;

export function createLdifConnector(config: LdifConnectorConfig): SourceConnector {
  return {
    kind: 'ldif',
    identity: `ldif:${config.path}`,
    async *fullImport(signal?: AbortSignal): AsyncGenerator<ImportItem> {
      try {
        if (!statSync(config.path).isFile()) throw new Error('not a file');
      } catch (err) {
        throw new SyncError('SourceUnreadable', `source.path: cannot read the LDIF file ${config.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Check the path in the config, or export again with ldifde -f / ldapsearch -LLL.`);
      }
      const stream = createReadStream(config.path, { highWaterMark: LDIF_CHUNK_BYTES });
      // Bytes to text here: a UTF-8 character split between two chunks is joined by the decoder.
      const decoder = new StringDecoder('utf8');
      const reader = new LdifReader({ binaryAttributes: config.binaryAttributes ?? DEFAULT_BINARY_ATTRIBUTES, sourceName: basename(config.path) });
      const items: ImportItem[] = [];
      // Each entry goes out only while the run is not stopped, the one the end of the file completes too.
      const emit = function* () {
        for (const item of items) {
          if (signal?.aborted) throw new SyncError('Aborted', 'The import was stopped before it finished; nothing was deleted.');
          yield item;
        }
        items.length = 0;
      };
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          reader.write(decoder.write(chunk), items);
          yield* emit();
        }
        reader.write(decoder.end(), items);
        reader.end(items);
        yield* emit();
      } catch (err) {
        if (err instanceof SyncError) throw err;
        // A read error part-way must fail the import: a partial file would look like deletions.
        throw new SyncError('SourceUnreadable', `Reading ${config.path} failed part-way: ${(err as Error).message}. Nothing was deleted; fix the file and run again.`, { cause: err });
      } finally {
        stream.destroy();
      }
    },
    async close() {},
  };
}
