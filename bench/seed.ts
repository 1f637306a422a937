// Seeds users straight into the store (one transaction, multi-row inserts) for benchmarks:
// the shape matches what the service writes (addresses, change sequence, JSON columns).
import { randomUUID } from 'node:crypto';
import type { Store } from '../src/cloud/store/store.ts';
import type { UserTable } from '../src/cloud/store/schema.ts';
import { nextSeq } from '../src/cloud/services/objects.ts';

const DEPARTMENTS = ['Sales', 'Engineering', 'Finance', 'Marketing', 'Support', 'Legal', 'Operations', 'HR'];

export async function seedUsers(db: Store, tenantId: string, domain: string, count: number, prefix = 'user'): Promise<void> {
  const BATCH = 400; // 400 rows x 31 columns stays under SQLite's 32766 bound-parameter limit
  await db.transaction().execute(async (trx) => {
    const last = await nextSeq(trx, tenantId, count);
    let seq = last - count;
    const now = new Date().toISOString();
    for (let start = 0; start < count; start += BATCH) {
      const rows: UserTable[] = [];
      const addrs: { tenant_id: string; address: string; object_id: string }[] = [];
      for (let i = start; i < Math.min(count, start + BATCH); i++) {
        const nick = `${prefix}${i}`;
        const upn = `${nick}@${domain}`;
        const id = randomUUID();
        rows.push({
          tenant_id: tenantId,
          id,
          seq: ++seq,
          created_at: now,
          deleted_at: null,
          display_name: `User ${i}`,
          mail: upn,
          mail_nickname: nick,
          proxy_addresses: JSON.stringify([`SMTP:${upn}`]),
          immutable_id: null,
          on_prem_sync_enabled: null,
          on_prem_sam_account_name: null,
          on_prem_security_identifier: null,
          on_prem_domain_name: null,
          on_prem_last_sync_at: null,
          on_prem_provisioning_errors: '[]',
          extra: JSON.stringify({ officeLocation: `Building ${i % 20}`, businessPhones: [`+1 555 ${String(i).padStart(7, '0')}`] }),
          upn,
          account_enabled: 1,
          given_name: 'User',
          surname: String(i),
          job_title: 'Engineer',
          department: DEPARTMENTS[i % DEPARTMENTS.length]!,
          company_name: 'Contoso',
          employee_id: String(i),
          user_type: 'Member',
          usage_location: 'US',
          on_prem_distinguished_name: null,
          on_prem_user_principal_name: null,
          manager_id: null,
          password_hash: null,
        });
        addrs.push({ tenant_id: tenantId, address: upn.toLowerCase(), object_id: id });
      }
      await trx.insertInto('users').values(rows).execute();
      await trx.insertInto('addresses').values(addrs).execute();
    }
  });
}
