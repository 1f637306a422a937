// The sync path's statements compiled once per shape (src/cloud/store/compiled.ts): the same
// rows land as with Kysely's builder, for inserts (one row, many, ignoring conflicts) and updates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertRow, insertRows, updateObject } from '../../src/cloud/store/compiled.ts';
import { startCloud, type TestCloud, type TestTenant } from '../helpers/cloud.ts';

let cloud: TestCloud;
let t: TestTenant;
beforeAll(async () => {
  cloud = await startCloud();
  t = await cloud.createTenant('compiled');
});
afterAll(async () => cloud?.close());

const group = (id: string, name: string) => ({ tenant_id: t.tenant.id, id, seq: 1, created_at: '2026-11-25T00:00:00.000Z', deleted_at: null, display_name: name, description: null, mail: null, mail_nickname: name.toLowerCase(), proxy_addresses: '[]', mail_enabled: 0, security_enabled: 1, group_types: '[]', visibility: null, extra: '{}', on_prem_provisioning_errors: '[]' });

describe('compiled statements', () => {
  it('insert the same shape again with new values, and update by tenant and id', async () => {
    const db = cloud.svc.db;
    for (let i = 0; i < 3; i++) await insertRow(db, 'groups', group(`00000000-0000-7000-8000-00000000000${i}`, `Group ${i}`));
    await updateObject(db, 'groups', t.tenant.id, '00000000-0000-7000-8000-000000000001', { display_name: 'Renamed', seq: 2 });
    await updateObject(db, 'groups', t.tenant.id, '00000000-0000-7000-8000-000000000002', { display_name: 'Also renamed', seq: 3 });
    const rows = await db.selectFrom('groups').select(['id', 'display_name', 'seq']).where('tenant_id', '=', t.tenant.id).orderBy('id').execute();
    expect(rows).toEqual([
      { id: '00000000-0000-7000-8000-000000000000', display_name: 'Group 0', seq: 1 },
      { id: '00000000-0000-7000-8000-000000000001', display_name: 'Renamed', seq: 2 },
      { id: '00000000-0000-7000-8000-000000000002', display_name: 'Also renamed', seq: 3 },
    ]);
  });

  it('inserts many rows at once and, when asked, leaves conflicting ones as they were', async () => {
    const db = cloud.svc.db;
    const T = t.tenant.id;
    await insertRows(db, 'addresses', [{ tenant_id: T, address: 'a@x.test', object_id: 'one' }, { tenant_id: T, address: 'b@x.test', object_id: 'one' }], { ignoreConflicts: true });
    await insertRows(db, 'addresses', [{ tenant_id: T, address: 'b@x.test', object_id: 'two' }, { tenant_id: T, address: 'c@x.test', object_id: 'two' }], { ignoreConflicts: true });
    const rows = await db.selectFrom('addresses').select(['address', 'object_id']).where('tenant_id', '=', T).orderBy('address').execute();
    expect(rows).toEqual([
      { address: 'a@x.test', object_id: 'one' },
      { address: 'b@x.test', object_id: 'one' },
      { address: 'c@x.test', object_id: 'two' },
    ]);
    await expect(insertRows(db, 'addresses', [{ tenant_id: T, address: 'a@x.test', object_id: 'three' }])).rejects.toThrow(/UNIQUE|constraint/i);
  });
});
