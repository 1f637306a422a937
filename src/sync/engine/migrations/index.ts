// Numbered migrations of the connector space, in order. Add `NNNN-name.ts` and list it here.
import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001-connector-space.ts';
import * as m0002 from './0002-pending-indexes.ts';
import * as m0003 from './0003-run-errors.ts';
import * as m0004 from './0004-export-order.ts';
import * as m0005 from './0005-dn-covering-index.ts';
import * as m0006 from './0006-narrow-objects.ts';
import * as m0007 from './0007-manager-ref.ts';
import * as m0008 from './0008-drop-pending-index.ts';

const migrations: Record<string, Migration> = {
  '0001-connector-space': m0001,
  '0002-pending-indexes': m0002,
  '0003-run-errors': m0003,
  '0004-export-order': m0004,
  '0005-dn-covering-index': m0005,
  '0006-narrow-objects': m0006,
  '0007-manager-ref': m0007,
  '0008-drop-pending-index': m0008,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
