// What every service call carries: who is acting (for permission checks and the audit
// log) and the shared dependencies built once in the composition root.
import type { Clock } from '../../shared/clock.ts';
import { forbidden } from '../../shared/errors.ts';
import type { DirectoryConfig } from '../config.ts';
import type { Store } from '../store/store.ts';

/** App roles, as granted at `nimbus app create --role`. */
export type AppRole = 'read' | 'readwrite' | 'sync';

export interface Actor {
  tenantId: string;
  /** app: OAuth client; user: a signed-in administrator; cli: an operator with local access. */
  kind: 'app' | 'user' | 'cli';
  id: string;
  name: string;
  role: AppRole | 'admin';
}

export interface Deps {
  db: Store;
  clock: Clock;
  config: DirectoryConfig;
}

export const cliActor = (tenantId: string): Actor => ({
  tenantId,
  kind: 'cli',
  id: 'local-operator',
  name: `local operator (${process.env.USER ?? 'unknown'})`,
  role: 'admin',
});

export function requireWrite(actor: Actor): void {
  if (actor.role === 'read')
    throw forbidden(`Insufficient privileges to complete the operation: the app '${actor.name}' has the read role. Create an app with --role readwrite.`);
}

export function requireAdmin(actor: Actor, what: string): void {
  if (actor.role !== 'admin' && actor.role !== 'readwrite')
    throw forbidden(`Insufficient privileges to ${what}: it needs an administrator or an app with the readwrite role.`);
}

export const isSync = (actor: Actor): boolean => actor.role === 'sync';
