// Numbered migrations, in order. Add a file `NNNN-name.ts` and list it here.
import type { Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001-initial.ts';
import * as m0002 from './0002-sync-state.ts';
import * as m0003 from './0003-order-indexes.ts';
import * as m0004 from './0004-sync-runs.ts';
import * as m0005 from './0005-manager-order-index.ts';
import * as m0006 from './0006-sync-references.ts';
import * as m0007 from './0007-sync-control.ts';
import * as m0008 from './0008-run-details.ts';
import * as m0009 from './0009-portal.ts';
import * as m0010 from './0010-anchor-covering-index.ts';
import * as m0011 from './0011-membership-clustering.ts';
import * as m0012 from './0012-first-sync-writes.ts';
import * as m0013 from './0013-errored-index.ts';
import * as m0014 from './0014-sync-member-lists.ts';

const migrations: Record<string, Migration> = {
  '0001-initial': m0001,
  '0002-sync-state': m0002,
  '0003-order-indexes': m0003,
  '0004-sync-runs': m0004,
  '0005-manager-order-index': m0005,
  '0006-sync-references': m0006,
  '0007-sync-control': m0007,
  '0008-run-details': m0008,
  '0009-portal': m0009,
  '0010-anchor-covering-index': m0010,
  '0011-membership-clustering': m0011,
  '0012-first-sync-writes': m0012,
  '0013-errored-index': m0013,
  '0014-sync-member-lists': m0014,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
