// Notices when the agent's config file changes on disk and reloads it. A file that does not
// load (half-written by an editor, a typo) is reported once and the last good configuration
// stays in force; the agent never dies of it.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { SyncConfig } from '../config.ts';

export type ConfigCheck = { kind: 'unchanged' } | { kind: 'changed'; config: SyncConfig; change: ConfigChange } | { kind: 'invalid'; message: string };

export interface ConfigChange {
  /** source or mapping changed: what is in scope or how it maps; the next cycle is a full one. */
  scope: boolean;
  /** Anything that needs the agent reopened (target, sync settings, secrets, or scope). */
  any: boolean;
  /** Setting paths that changed, for the log (never values). */
  fields: string[];
}

const json = (v: unknown) => JSON.stringify(v);

/** What differs between two loaded configurations. */
export function diffConfig(a: SyncConfig, b: SyncConfig): ConfigChange {
  const fields: string[] = [];
  for (const section of ['source', 'target', 'sync', 'mapping'] as const) {
    const x = a[section] as Record<string, unknown>;
    const y = b[section] as Record<string, unknown>;
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) if (json(x[k]) !== json(y[k])) fields.push(`${section}.${k}`);
  }
  const secret = (c: SyncConfig) => `${c.secrets.sourcePassword?.reveal() ?? ''}\u0000${c.secrets.clientSecret?.reveal() ?? ''}`;
  if (secret(a) !== secret(b)) fields.push('secrets');
  const scope = fields.some((f) => f.startsWith('source.') || f.startsWith('mapping.'));
  return { scope, any: fields.length > 0, fields };
}

export interface ConfigWatcher {
  /** Stats the file (cheap); reads and loads it only when its size, time or inode moved. */
  check(): ConfigCheck;
}

export function watchConfig(file: string | undefined, load: () => SyncConfig, current: SyncConfig): ConfigWatcher {
  if (!file || file === 'environment') return { check: () => ({ kind: 'unchanged' }) };
  const stamp = () => {
    try {
      const st = statSync(file);
      return `${st.size}:${st.mtimeMs}:${st.ino}`;
    } catch {
      return 'missing';
    }
  };
  const digest = () => {
    try {
      return createHash('sha256').update(readFileSync(file)).digest('hex');
    } catch {
      return 'missing';
    }
  };
  let lastStamp = stamp();
  let lastDigest = digest();
  let good = current;
  return {
    check() {
      const s = stamp();
      if (s === lastStamp) return { kind: 'unchanged' };
      lastStamp = s;
      const d = digest();
      if (d === lastDigest) return { kind: 'unchanged' };
      lastDigest = d;
      let next: SyncConfig;
      try {
        next = load();
      } catch (err) {
        return { kind: 'invalid', message: (err as Error).message };
      }
      const change = diffConfig(good, next);
      if (!change.any) return { kind: 'unchanged' };
      good = next;
      return { kind: 'changed', config: next, change };
    },
  };
}
