// The sync agent's configuration: one YAML file (./nimbus.yaml or NIMBUS_CONFIG), each
// setting overridable by a NIMBUS_* environment variable, validated once at start-up.
import { existsSync, readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { sourceSchema, targetSchema } from '../shared/config-sections.ts';
import { SyncError } from './errors.ts';

export { sourceSchema, targetSchema };

/** A secret read from a file or the environment; prints as *** so it never lands in a log. */
export class Secret {
  readonly #value: string;
  readonly source: string;
  constructor(value: string, source: string) {
    this.#value = value;
    this.source = source;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [inspect.custom](): string {
    return `Secret(*** from ${this.source})`;
  }
}

/** `60s`, `5m`, `1h`, `7d`, `500ms` or a number of seconds -> milliseconds. */
const duration = z.union([z.number().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v * 1000;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `'${v}' is not a duration; write e.g. 60s, 5m, 1h or 7d` });
    return z.NEVER;
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
});

/** Run history is kept 7 days by default, as AD Connect does. */
export const DEFAULT_RUN_RETENTION_MS = 7 * 86_400_000;

export type DeletionThreshold = number | `${number}%`;

/** `500` (objects) or `5%` (of the exported objects); numbers may come as text (environment). */
const deletionThreshold = z.union([z.number(), z.string()]).transform((v, ctx): DeletionThreshold => {
  const s = String(v).trim();
  if (/^\d+$/.test(s)) return Number(s);
  const m = /^(\d+(?:\.\d+)?)\s*%$/.exec(s);
  if (m && Number(m[1]) > 0 && Number(m[1]) <= 100) return `${Number(m[1])}%`;
  ctx.addIssue({ code: 'custom', message: `'${v}' is not a deletion threshold; write a number of objects (500) or a percentage of the exported objects (5%)` });
  return z.NEVER;
});

export const runSchema = z
  .object({
    /** Time between cycles of `nimbus agent` (issue 6). Default 60s. */
    interval: duration.default(60_000),
    /**
     * A run that would delete more objects than this exports nothing and stops (exit 3): a
     * number of objects, or a percentage of the exported objects (`5%`). Default 500.
     */
    deletionThreshold: deletionThreshold.default(500),
    /** Import and compute everything, export nothing; `nimbus sync pending` lists what would be exported. Default false. */
    staging: z.boolean().default(false),
    /** Folder of the agent's own data (connector space). Default `.nimbus-agent` beside the config file. */
    dataDir: z.string().min(1).default('.nimbus-agent'),
    /** How long run history stays in the connector space (the latest run is always kept). Default 7d. */
    runRetention: duration.default(DEFAULT_RUN_RETENTION_MS),
    /** How often `nimbus agent` asks the source whether anything changed (AD: highestCommittedUSN; LDIF: the file); 0s: only every interval. Default 1s. */
    changePoll: duration.default(1000),
    /** nimbus agent, AD: let the DC report changes (change notification) instead of polling its USN. Default true. */
    changeNotification: z.boolean().default(true),
    /** How often `nimbus agent` asks the cloud for "sync now" / "allow deletes" requests. Default 2s. */
    cloudPoll: duration.default(2000),
    /** Where `nimbus agent` serves Prometheus /metrics (`host:port`), or `off`. Default 127.0.0.1:9464. */
    metrics: z.string().regex(/^(off|.+:\d{1,5})$/, "write host:port (e.g. 127.0.0.1:9464) or 'off'").default('127.0.0.1:9464'),
  })
  .strict();

/** Cloud attribute -> JSONata expression over the source entry; null drops the default flow. */
const flowMap = z.record(z.string(), z.string().min(1).nullable()).default({});

export const mappingSchema = z
  .object({
    /** Overrides of the default user flows (see engine/mapping.ts). Default: none. */
    user: flowMap,
    /** Overrides of the default group flows. Default: none. */
    group: flowMap,
  })
  .strict();

export const configSchema = z
  .object({
    source: sourceSchema,
    target: targetSchema,
    sync: runSchema.default({ interval: 60_000, deletionThreshold: 500, staging: false, dataDir: '.nimbus-agent', runRetention: DEFAULT_RUN_RETENTION_MS, changePoll: 1000, changeNotification: true, cloudPoll: 2000, metrics: '127.0.0.1:9464' }),
    mapping: mappingSchema.default({ user: {}, group: {} }),
  })
  .strict()
  .superRefine((c, ctx) => {
    const need = (cond: boolean, path: string[], message: string) => {
      if (!cond) ctx.addIssue({ code: 'custom', path, message });
    };
    if (c.source.type === 'ad') {
      need(!!c.source.url, ['source', 'url'], 'is required for source.type ad (e.g. ldap://dc1.corp.example.com:389)');
      need(!!c.source.bindDn, ['source', 'bindDn'], 'is required for source.type ad (e.g. svc-nimbus@corp.example.com)');
      need(!!c.source.baseDn, ['source', 'baseDn'], 'is required for source.type ad (e.g. DC=corp,DC=example,DC=com)');
    }
    if (c.source.type === 'ldif') need(!!c.source.path, ['source', 'path'], 'is required for source.type ldif: the path of the export file');
  });

export type RawSyncConfig = z.infer<typeof configSchema>;

/** The validated configuration, with paths made absolute and secrets read. */
export interface SyncConfig extends RawSyncConfig {
  /** The file it was read from (or `environment`). */
  file: string;
  secrets: { sourcePassword?: Secret; clientSecret?: Secret };
}

/**
 * Every environment override, documented in one place (also printed by `nimbus sync --help`).
 * Lists take `;`-separated DNs because DNs contain commas.
 */
export const ENV_OVERRIDES: readonly { env: string; path: string; kind: 'string' | 'number' | 'boolean' | 'list' | 'json' | 'secret'; doc: string }[] = [
  { env: 'NIMBUS_SOURCE_TYPE', path: 'source.type', kind: 'string', doc: 'ad or ldif' },
  { env: 'NIMBUS_SOURCE_URL', path: 'source.url', kind: 'string', doc: 'LDAP URL of the domain controller' },
  { env: 'NIMBUS_SOURCE_BIND_DN', path: 'source.bindDn', kind: 'string', doc: 'account to bind as' },
  { env: 'NIMBUS_SOURCE_PASSWORD_FILE', path: 'source.passwordFile', kind: 'string', doc: 'file with the bind password' },
  { env: 'NIMBUS_SOURCE_PASSWORD', path: 'source.password', kind: 'secret', doc: 'the bind password itself (wins over the file)' },
  { env: 'NIMBUS_SOURCE_BASE_DN', path: 'source.baseDn', kind: 'string', doc: 'search base' },
  { env: 'NIMBUS_SOURCE_DOMAIN', path: 'source.domain', kind: 'string', doc: 'AD domain DNS name' },
  { env: 'NIMBUS_SOURCE_INCLUDE', path: 'source.include', kind: 'list', doc: 'DNs in scope, ;-separated' },
  { env: 'NIMBUS_SOURCE_EXCLUDE', path: 'source.exclude', kind: 'list', doc: 'DNs out of scope, ;-separated' },
  { env: 'NIMBUS_SOURCE_FILTER', path: 'source.filter', kind: 'string', doc: 'LDAP scope filter' },
  { env: 'NIMBUS_SOURCE_PATH', path: 'source.path', kind: 'string', doc: 'LDIF file' },
  { env: 'NIMBUS_SOURCE_READ_CONNECTIONS', path: 'source.readConnections', kind: 'number', doc: 'AD full import: connections read at once (1-8, default 2)' },
  { env: 'NIMBUS_TARGET_TYPE', path: 'target.type', kind: 'string', doc: 'nimbus' },
  { env: 'NIMBUS_TARGET_URL', path: 'target.url', kind: 'string', doc: 'cloud directory base URL' },
  { env: 'NIMBUS_TARGET_TENANT', path: 'target.tenant', kind: 'string', doc: 'tenant id, name or domain' },
  { env: 'NIMBUS_TARGET_CLIENT_ID', path: 'target.clientId', kind: 'string', doc: 'client id of the sync app' },
  { env: 'NIMBUS_TARGET_CLIENT_SECRET_FILE', path: 'target.clientSecretFile', kind: 'string', doc: 'file with the client secret' },
  { env: 'NIMBUS_TARGET_CLIENT_SECRET', path: 'target.clientSecret', kind: 'secret', doc: 'the client secret itself (wins over the file)' },
  { env: 'NIMBUS_TARGET_CA_FILE', path: 'target.caFile', kind: 'string', doc: 'PEM CA to trust for HTTPS' },
  { env: 'NIMBUS_TARGET_BATCH_SIZE', path: 'target.batchSize', kind: 'number', doc: 'objects per export batch (<= 5000)' },
  { env: 'NIMBUS_SYNC_INTERVAL', path: 'sync.interval', kind: 'string', doc: 'cycle interval, e.g. 60s' },
  { env: 'NIMBUS_SYNC_DELETION_THRESHOLD', path: 'sync.deletionThreshold', kind: 'string', doc: 'max deletes per run: a number (500) or a percentage of the exported objects (5%)' },
  { env: 'NIMBUS_SYNC_STAGING', path: 'sync.staging', kind: 'boolean', doc: 'true/false' },
  { env: 'NIMBUS_SYNC_DATA_DIR', path: 'sync.dataDir', kind: 'string', doc: 'agent data folder' },
  { env: 'NIMBUS_SYNC_RUN_RETENTION', path: 'sync.runRetention', kind: 'string', doc: 'how long run history is kept, e.g. 7d' },
  { env: 'NIMBUS_SYNC_CHANGE_POLL', path: 'sync.changePoll', kind: 'string', doc: 'nimbus agent: how often to check the source for changes, e.g. 1s (0s: off)' },
  { env: 'NIMBUS_SYNC_CHANGE_NOTIFICATION', path: 'sync.changeNotification', kind: 'boolean', doc: 'nimbus agent, AD: DC change notification (true) or USN polling only (false)' },
  { env: 'NIMBUS_SYNC_CLOUD_POLL', path: 'sync.cloudPoll', kind: 'string', doc: 'nimbus agent: how often to check the cloud for sync-now / allow-deletes requests, e.g. 2s' },
  { env: 'NIMBUS_SYNC_METRICS', path: 'sync.metrics', kind: 'string', doc: 'nimbus agent: Prometheus /metrics listen address host:port, or off' },
  { env: 'NIMBUS_MAPPING', path: 'mapping', kind: 'json', doc: 'attribute flow overrides as JSON, {"user":{...},"group":{...}}' },
];

export const DEFAULT_CONFIG_FILE = 'nimbus.yaml';

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    const next = o[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}

/** Reads a secret file (first line kept whole, trailing newline dropped); never echoes its content. */
function readSecretFile(path: string, field: string, file: string): Secret {
  let s: string;
  try {
    s = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new SyncError('SecretUnreadable', `${file}: ${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Create the file with the secret, readable by this user only (chmod 600).`);
  }
  if (!s) throw new SyncError('SecretUnreadable', `${file}: ${field}: the file ${path} is empty; put the secret in it.`);
  return new Secret(s, path);
}

export interface LoadOptions {
  /** --config; else NIMBUS_CONFIG; else ./nimbus.yaml. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Loads, overrides, validates and resolves the configuration; throws SyncError naming file and field. */
export function loadSyncConfig(opts: LoadOptions = {}): SyncConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.file ?? env.NIMBUS_CONFIG;
  const file = resolve(cwd, explicit ?? DEFAULT_CONFIG_FILE);
  let raw: Record<string, unknown> = {};
  let label = file;
  if (existsSync(file)) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
      throw new SyncError('ConfigInvalid', `${file}: not valid YAML${where}: ${(err as Error).message.split('\n')[0]}. Fix the syntax (indentation, quotes around values with ':' or '#').`);
    }
    if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc)))
      throw new SyncError('ConfigInvalid', `${file}: the file must be a mapping with source:, target: and sync: sections.`);
    raw = (doc ?? {}) as Record<string, unknown>;
  } else if (explicit || !env.NIMBUS_SOURCE_TYPE) {
    throw new SyncError(
      'ConfigNotFound',
      `No sync configuration at ${file}. Create it (see docs/sync.md for an example with source:, target: and sync:), or pass --config FILE / set NIMBUS_CONFIG.`,
    );
  } else {
    label = 'environment';
  }

  const secrets: SyncConfig['secrets'] = {};
  for (const o of ENV_OVERRIDES) {
    const v = env[o.env];
    if (v === undefined || v === '') continue;
    const bad = (what: string) => new SyncError('ConfigInvalid', `${o.env}: ${what} (it overrides ${o.path} from ${label}).`);
    if (o.kind === 'secret') {
      if (o.path === 'source.password') secrets.sourcePassword = new Secret(v, o.env);
      else secrets.clientSecret = new Secret(v, o.env);
    } else if (o.kind === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw bad(`'${v}' is not a number`);
      setPath(raw, o.path, n);
    } else if (o.kind === 'boolean') {
      if (!/^(true|false|1|0)$/i.test(v)) throw bad(`'${v}' must be true or false`);
      setPath(raw, o.path, /^(true|1)$/i.test(v));
    } else if (o.kind === 'list') {
      setPath(raw, o.path, v.split(';').map((s) => s.trim()).filter(Boolean));
    } else if (o.kind === 'json') {
      try {
        setPath(raw, o.path, JSON.parse(v));
      } catch {
        throw bad('is not valid JSON');
      }
    } else setPath(raw, o.path, v);
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => {
      const field = i.path.join('.') || '(top level)';
      const keys = i.code === 'unrecognized_keys' ? `unknown setting(s) ${i.keys.join(', ')}; check the spelling against docs/sync.md` : i.message;
      return `${field}: ${keys}`;
    });
    throw new SyncError('ConfigInvalid', `${label}: invalid sync configuration:\n  ${lines.join('\n  ')}`);
  }
  const c = parsed.data;

  // Relative paths are relative to the config file, so the agent runs the same from any folder.
  const base = label === 'environment' ? cwd : dirname(file);
  const abs = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(base, p));
  const source = { ...c.source, path: abs(c.source.path), passwordFile: abs(c.source.passwordFile) };
  const target = { ...c.target, clientSecretFile: abs(c.target.clientSecretFile), caFile: abs(c.target.caFile) };
  if (source.type === 'ad' && !secrets.sourcePassword) {
    if (!source.passwordFile) throw new SyncError('ConfigInvalid', `${label}: source.passwordFile: is required for source.type ad (or set NIMBUS_SOURCE_PASSWORD).`);
    secrets.sourcePassword = readSecretFile(source.passwordFile, 'source.passwordFile', label);
  }
  if (!secrets.clientSecret) {
    if (!target.clientSecretFile) throw new SyncError('ConfigInvalid', `${label}: target.clientSecretFile: is required (a file holding the sync app's client secret), or set NIMBUS_TARGET_CLIENT_SECRET.`);
    secrets.clientSecret = readSecretFile(target.clientSecretFile, 'target.clientSecretFile', label);
  }
  if (target.caFile && !existsSync(target.caFile))
    throw new SyncError('ConfigInvalid', `${label}: target.caFile: ${target.caFile} does not exist. Point it at the PEM certificate of the CA that signed the cloud directory's certificate.`);
  return { ...c, source, target, sync: { ...c.sync, dataDir: abs(c.sync.dataDir)! }, file: label, secrets };
}

/** The AD domain DNS name from a base DN's DC= parts: DC=corp,DC=example,DC=com -> corp.example.com. */
export function domainOfBaseDn(baseDn: string | undefined): string | undefined {
  if (!baseDn) return undefined;
  const parts = baseDn
    .split(',')
    .map((p) => /^\s*dc=(.+?)\s*$/i.exec(p)?.[1])
    .filter((p): p is string => !!p);
  return parts.length ? parts.join('.').toLowerCase() : undefined;
}
