// Access tokens: RS256 JWTs signed with a key kept in the store, published as JWKS, so
// @azure/identity and MSAL can use Nimbus as their authority and Graph routes can verify.
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose';
import { unauthenticated } from '../../shared/errors.ts';
import type { AppTable, TenantTable } from '../store/schema.ts';
import type { AppRole, Deps } from '../services/context.ts';

/** Audience of Graph tokens (scope `https://graph.microsoft.com/.default`). */
export const GRAPH_AUDIENCE = 'https://graph.microsoft.com';
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';

/** Graph application permissions each Nimbus app role carries. */
export const ROLE_PERMISSIONS: Record<AppRole, string[]> = {
  read: ['Directory.Read.All'],
  readwrite: ['Directory.ReadWrite.All', 'Domain.ReadWrite.All', 'Organization.ReadWrite.All'],
  sync: ['Directory.ReadWrite.All', 'Nimbus.DirectorySync'],
};

export interface TokenClaims {
  tid: string;
  appid: string;
  app_displayname: string;
  roles: string[];
  nimbus_role: AppRole;
}

interface Key {
  kid: string;
  privateKey: CryptoKey | Uint8Array;
  /** Imported once: verifying against a raw JWK would re-import it on every request. */
  publicKey: CryptoKey | Uint8Array;
  publicJwk: JWK;
}

export function createTokenService(deps: Deps) {
  const { db, clock, config } = deps;
  let keyPromise: Promise<Key> | undefined;

  async function loadKey(): Promise<Key | undefined> {
    // Oldest first: if two processes sharing the store create a key at once, both settle
    // on the same one.
    const row = await db.selectFrom('signing_keys').selectAll().orderBy('created_at').orderBy('kid').executeTakeFirst();
    if (!row) return undefined;
    const publicJwk = JSON.parse(row.public_jwk) as JWK;
    return { kid: row.kid, privateKey: await importJWK(JSON.parse(row.private_jwk) as JWK, 'RS256'), publicKey: await importJWK(publicJwk, 'RS256'), publicJwk };
  }

  async function loadOrCreateKey(): Promise<Key> {
    const existing = await loadKey();
    if (existing) return existing;
    const { privateKey, publicKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' };
    await db
      .insertInto('signing_keys')
      .values({ kid, private_jwk: JSON.stringify(await exportJWK(privateKey)), public_jwk: JSON.stringify(publicJwk), created_at: clock.now().toISOString() })
      .execute();
    return (await loadKey())!;
  }
  const key = () => (keyPromise ??= loadOrCreateKey());

  return {
    async jwks() {
      return { keys: [(await key()).publicJwk] };
    },

    /** Issues an app-only token for Graph. `issuerBase` is the URL clients reach us at. */
    async issue(tenant: TenantTable, app: AppTable, audience: string, issuerBase: string): Promise<{ token: string; expiresIn: number }> {
      const k = await key();
      const now = Math.floor(clock.now().getTime() / 1000);
      const role = app.role as AppRole;
      const token = await new SignJWT({
        tid: tenant.id,
        appid: app.client_id,
        azp: app.client_id,
        app_displayname: app.name,
        roles: ROLE_PERMISSIONS[role],
        nimbus_role: role,
        idtyp: 'app',
        ver: '2.0',
      })
        .setProtectedHeader({ alg: 'RS256', kid: k.kid, typ: 'JWT' })
        .setIssuer(`${issuerBase}/${tenant.id}/v2.0`)
        .setSubject(app.client_id)
        .setAudience(audience)
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + config.tokenLifetimeSeconds)
        .setJti(randomUUID())
        .sign(k.privateKey);
      return { token, expiresIn: config.tokenLifetimeSeconds };
    },

    /** Verifies a bearer token for the Graph API; throws 401 in Graph's shape. */
    async verify(token: string): Promise<TokenClaims> {
      const k = await key();
      try {
        const { payload } = await jwtVerify(token, k.publicKey, {
          algorithms: ['RS256'],
          audience: [GRAPH_AUDIENCE, `${GRAPH_AUDIENCE}/`, GRAPH_APP_ID],
          currentDate: clock.now(),
        });
        if (typeof payload.tid !== 'string' || typeof payload.appid !== 'string' || typeof payload.nimbus_role !== 'string')
          throw new Error('missing claims');
        return payload as unknown as TokenClaims;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ERR_JWT_EXPIRED') throw unauthenticated('Lifetime validation failed, the token is expired. Request a new token from the token endpoint.');
        if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') throw unauthenticated(`Access token validation failed: ${(err as Error).message}. Request a token with scope https://graph.microsoft.com/.default.`);
        throw unauthenticated('Access token validation failure: the token is malformed or not signed by this Nimbus directory. Request a new token from /{tenant}/oauth2/v2.0/token.');
      }
    },
  };
}

export type TokenService = ReturnType<typeof createTokenService>;
