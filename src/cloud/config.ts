// Settings of the cloud directory, each with its default. Read once at start-up
// (flags, then NIMBUS_* environment variables, then these defaults).
import { z } from 'zod';

export const directoryConfigSchema = z.object({
  /** Suffix of every tenant's initial domain: `<tenant>.<serviceSuffix>` (like onmicrosoft.com). */
  serviceSuffix: z.string().default('onnimbus.net'),
  /** DNS servers used to verify domains, `host[:port]`; empty means the system resolver. */
  dnsServers: z.array(z.string()).default([]),
  /** Hours after deactivating directory sync before it can be activated again (Entra: 72). */
  syncReactivationBlockHours: z.number().nonnegative().default(72),
  /** Days a soft-deleted object stays restorable in the recycle bin (Entra: 30). */
  recycleBinDays: z.number().positive().default(30),
  /** Lifetime of issued access tokens, in seconds. */
  tokenLifetimeSeconds: z.number().int().positive().default(3600),
  /** Days a delta token stays usable; older ones get 410 syncStateNotFound. */
  deltaTokenDays: z.number().positive().default(30),
  /** Public base URL used in @odata.nextLink and token issuers; default: taken from each request. */
  publicUrl: z.string().url().optional(),
  /** scrypt cost exponent for user passwords (2^N); 15 is OWASP's minimum for scrypt. */
  passwordScryptLogN: z.number().int().min(10).max(20).default(15),
});

export type DirectoryConfig = z.infer<typeof directoryConfigSchema>;

export function directoryConfigFromEnv(env: NodeJS.ProcessEnv = process.env): DirectoryConfig {
  const raw: Record<string, unknown> = {};
  if (env.NIMBUS_SERVICE_SUFFIX) raw.serviceSuffix = env.NIMBUS_SERVICE_SUFFIX;
  if (env.NIMBUS_DNS_SERVERS) raw.dnsServers = env.NIMBUS_DNS_SERVERS.split(',').map((s) => s.trim()).filter(Boolean);
  if (env.NIMBUS_PUBLIC_URL) raw.publicUrl = env.NIMBUS_PUBLIC_URL;
  if (env.NIMBUS_SYNC_REACTIVATION_BLOCK_HOURS) raw.syncReactivationBlockHours = Number(env.NIMBUS_SYNC_REACTIVATION_BLOCK_HOURS);
  return directoryConfigSchema.parse(raw);
}
