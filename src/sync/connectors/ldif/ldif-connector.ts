// The LDIF connector: full import of an AD export file, streamed line by line (deletes are
// found by the engine as objects the connector space holds that a complete import did not see).
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { SyncError } from '../../errors.ts';
import type { ImportItem, SourceConnector } from '../connector.ts';
import { DEFAULT_BINARY_ATTRIBUTES, type LdifConnectorConfig } from './ldif-connector-config.ts';
import { parseLdif } from './ldif-parser.ts';

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
      const stream = createReadStream(config.path, { encoding: 'utf8', highWaterMark: 1 << 20 });
      const rl = createInterface({ input: stream, crlfDelay: Infinity });
      try {
        for await (const item of parseLdif(rl, { binaryAttributes: config.binaryAttributes ?? DEFAULT_BINARY_ATTRIBUTES, sourceName: basename(config.path) })) {
          if (signal?.aborted) throw new SyncError('Aborted', 'The import was stopped before it finished; nothing was deleted.');
          yield item;
        }
      } catch (err) {
        if (err instanceof SyncError) throw err;
        // A read error part-way must fail the import: a partial file would look like deletions.
        throw new SyncError('SourceUnreadable', `Reading ${config.path} failed part-way: ${(err as Error).message}. Nothing was deleted; fix the file and run again.`, { cause: err });
      } finally {
        rl.close();
        stream.destroy();
      }
    },
    async close() {},
  };
}
