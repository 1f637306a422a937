// Connection settings of the LDAP layer, and how the `nimbus ad` commands resolve them from
// flags, environment and the agent's config file (its `source:` and `target:` sections).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { sourceSchema, targetSchema } from '../config-sections.ts';
import { LdapError } from './ldap-errors.ts';

/** One typed object, read once; the password is a function so printing the config never shows it. */
export interface LdapConnectionConfig {
  /** `ldap://host[:389]` or `ldaps://host[:636]`. Required. */
  url: string;
  /** Account to bind as: a DN (`CN=svc,OU=...`) or a UPN (`svc@corp.example.com`). Required. */
  bindDn: string;
  /** The bind password, revealed only to the bind itself. */
  password: () => string;
  /** Upgrade a plain `ldap://` connection with StartTLS before binding. Default false. */
  starttls: boolean;
  /** PEM file of the CA that signed the DC's certificate. Default: Node's built-in CAs. */
  caFile?: string | undefined;
  /** Per-operation and connect timeout in milliseconds. Default 30000. */
  timeoutMs: number;
  /** Search base; default the RootDSE's defaultNamingContext. */
  baseDn?: string | undefined;
}

export const DEFAULT_LDAP_TIMEOUT_MS = 30_000;

/** The config file's `source` section: the same schema the sync agent reads. */
export const adSourceSchema = sourceSchema;
export const adTargetSchema = targetSchema;

export interface AdConfigFile {
  file: string;
  source?: z.infer<typeof adSourceSchema> | undefined;
  target?: z.infer<typeof adTargetSchema> | undefined;
}

/** Reads `--config F`: only the sections present are validated; relative paths are relative to F. */
export function readAdConfigFile(path: string): AdConfigFile {
  const file = resolve(path);
  if (!existsSync(file)) throw new LdapError('LdapConfig', `The config file ${file} does not exist. Pass the agent's YAML file (with source: and target: sections) to --config.`);
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LdapError('LdapConfig', `${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}. Fix the syntax.`);
  }
  const d = (doc ?? {}) as Record<string, unknown>;
  const base = dirname(file);
  const abs = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(base, p));
  const parse = <T extends z.ZodTypeAny>(schema: T, section: string): z.infer<T> | undefined => {
    if (d[section] === undefined) return undefined;
    const r = schema.safeParse(d[section]);
    if (!r.success) {
      const lines = r.error.issues.slice(0, 5).map((i) => `${section}.${i.path.join('.')}: ${i.message}`);
      throw new LdapError('LdapConfig', `${file}: invalid settings:\n  ${lines.join('\n  ')}`);
    }
    return r.data;
  };
  const source = parse(adSourceSchema, 'source');
  const target = parse(adTargetSchema, 'target');
  return {
    file,
    source: source && { ...source, passwordFile: abs(source.passwordFile), caFile: abs(source.caFile) },
    target: target && { ...target, clientSecretFile: abs(target.clientSecretFile), caFile: abs(target.caFile) },
  };
}

/** What the command line gave; undefined means "not given". */
export interface LdapFlags {
  url?: string | undefined;
  bindDn?: string | undefined;
  passwordFile?: string | undefined;
  starttls?: boolean | undefined;
  caFile?: string | undefined;
  timeout?: string | undefined;
  base?: string | undefined;
}

export interface ResolveDeps {
  env: NodeJS.ProcessEnv;
  config?: AdConfigFile | undefined;
  readSecret: (path: string, what: string) => string;
  /** Asks for the password on a terminal (hidden); throws when there is none. */
  prompt: (question: string) => Promise<string>;
}

/** Flags win over the environment, which wins over the config file. */
export async function resolveLdapConfig(flags: LdapFlags, deps: ResolveDeps): Promise<LdapConnectionConfig> {
  const src = deps.config?.source;
  const from = deps.config ? ` or source.url in ${deps.config.file}` : '';
  const url = flags.url ?? deps.env.NIMBUS_AD_URL ?? src?.url;
  if (!url) throw new LdapError('LdapConfig', `No domain controller given: pass --url ldap://dc.example.com (or ldaps://...:636), set NIMBUS_AD_URL${from}, or use --config FILE.`);
  if (!/^ldaps?:\/\/[^/]+\/?$/i.test(url)) throw new LdapError('LdapConfig', `'${url}' is not an LDAP URL; write ldap://host[:389] or ldaps://host[:636] (no path).`);
  const bindDn = flags.bindDn ?? deps.env.NIMBUS_AD_BIND_DN ?? src?.bindDn;
  if (!bindDn) throw new LdapError('LdapConfig', 'No account to bind as: pass --bind-dn (a DN or a UPN such as svc-nimbus@corp.example.com), set NIMBUS_AD_BIND_DN, or use --config FILE.');
  let password: string;
  const passwordFile = flags.passwordFile ?? src?.passwordFile;
  if (flags.passwordFile) password = deps.readSecret(flags.passwordFile, 'password');
  else if (deps.env.NIMBUS_AD_PASSWORD) password = deps.env.NIMBUS_AD_PASSWORD;
  else if (passwordFile) password = deps.readSecret(passwordFile, 'password');
  else password = await deps.prompt(`Password for ${bindDn}: `);
  if (!password) throw new LdapError('LdapConfig', `The password for ${bindDn} is empty. An empty password would be an anonymous bind; give the real one.`);
  const starttls = flags.starttls ?? src?.starttls ?? false;
  if (starttls && /^ldaps:/i.test(url)) throw new LdapError('LdapConfig', `--starttls is for ldap:// URLs; ${url} is already TLS. Drop one of them.`);
  let timeoutMs = DEFAULT_LDAP_TIMEOUT_MS;
  if (flags.timeout !== undefined) {
    const n = Number(flags.timeout);
    if (!Number.isFinite(n) || n <= 0) throw new LdapError('LdapConfig', `--timeout '${flags.timeout}' must be a positive number of seconds.`);
    timeoutMs = n * 1000;
  }
  const caFile = flags.caFile ?? src?.caFile;
  if (caFile && !existsSync(caFile)) throw new LdapError('LdapConfig', `The CA file ${caFile} does not exist. Point --ca-file at the PEM certificate of the CA that signed the DC's certificate.`);
  return { url, bindDn, password: () => password, starttls, caFile, timeoutMs, baseDn: flags.base ?? src?.baseDn };
}
