// The cloud store checkpoints its WAL once it has gone a quiet period without a write, so that
// the automatic checkpoint (every ~200 MB of WAL) does not land inside a later commit. Timers
// are faked: the test moves the clock, it does not wait.
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/cloud/store/store.ts';
import { hasTable, readFileAlone } from '../helpers/db-file.ts';
import { tempDir } from '../helpers/temp-dirs.ts';

let store: Store | undefined;
afterEach(async () => {
  await store?.destroy();
  store = undefined;
  vi.useRealTimers();
});

const T = '11111111-1111-4111-8111-111111111111';

/** The tenants' names as the database file alone holds them (a copy of it, without the WAL). */
function namesInFile(dir: string): string[] {
  return readFileAlone(join(dir, 'nimbus.db'), (db) => (hasTable(db, 'tenants') ? (db.prepare('SELECT name FROM tenants ORDER BY name').all() as { name: string }[]).map((r) => r.name) : []));
}

async function addTenant(name: string, n: number): Promise<void> {
  await store!
    .insertInto('tenants')
    .values({ id: T.replace(/^1/, String(n)), name, display_name: name, initial_domain: `${name}.onnimbus.com`, created_at: '2026-12-07T00:00:00Z', sync_features: '{}', sync_enabled: 0, change_seq: 0 })
    .execute();
}

describe('the cloud store checkpoints its WAL when idle', () => {
  it('copies the last writes into the database file only after a quiet period, which each write restarts', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const dir = tempDir('nimbus-store-');
    store = await openStore({ dataDir: dir, idleCheckpointMs: 1000 });
    // The migrations' writes reach the file once the store is quiet.
    await vi.advanceTimersByTimeAsync(1000);
    expect(namesInFile(dir)).toEqual([]);

    await addTenant('alpha', 2);
    await vi.advanceTimersByTimeAsync(600);
    await addTenant('beta', 3);
    await vi.advanceTimersByTimeAsync(600);
    // 1200 ms after the first write but 600 ms after the second: both are in the WAL only.
    expect(namesInFile(dir)).toEqual([]);
    await vi.advanceTimersByTimeAsync(400);
    expect(namesInFile(dir)).toEqual(['alpha', 'beta']);

    // Reads do not restart the quiet period; a later write arms it again.
    await addTenant('gamma', 4);
    await vi.advanceTimersByTimeAsync(500);
    await store.selectFrom('tenants').select('name').execute();
    await vi.advanceTimersByTimeAsync(500);
    expect(namesInFile(dir)).toEqual(['alpha', 'beta', 'gamma']);
  });

  it('leaves a transaction open across timers alone: it commits as usual, and its writes reach the file a quiet period after', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const dir = tempDir('nimbus-store-');
    store = await openStore({ dataDir: dir, idleCheckpointMs: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const trx = store.transaction().execute(async (t) => {
      await t.insertInto('tenants').values({ id: T, name: 'delta', display_name: 'delta', initial_domain: 'delta.onnimbus.com', created_at: '2026-12-07T00:00:00Z', sync_features: '{}', sync_enabled: 0, change_seq: 0 }).execute();
      await held;
    });
    await vi.advanceTimersByTimeAsync(3000);
    // Uncommitted: neither the file nor a checkpoint has it, and nothing failed.
    expect(namesInFile(dir)).toEqual([]);
    release();
    await trx;
    await vi.advanceTimersByTimeAsync(1000);
    expect(namesInFile(dir)).toEqual(['delta']);
  });

  it('stops its timer when the store is closed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const dir = tempDir('nimbus-store-');
    store = await openStore({ dataDir: dir, idleCheckpointMs: 1000 });
    await addTenant('epsilon', 5);
    expect(vi.getTimerCount()).toBe(1);
    await store.destroy();
    store = undefined;
    expect(vi.getTimerCount()).toBe(0);
  });
});
