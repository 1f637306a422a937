// Password hashing with scrypt (a memory-hard KDF, built into Node) and Entra's
// complexity rule. Format: scrypt$<logN>$<r>$<p>$<salt b64>$<hash b64>.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { badRequest } from '../../shared/errors.ts';

function scryptAsync(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N, r, p, maxmem: 256 * N * r }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** A random password that always meets the complexity rule below (for generated admins and demo users). */
export function generatePassword(): string {
  // 18 random bytes in base64url, plus one of each class so the rule always passes.
  return `${randomBytes(18).toString('base64url')}aA1!`;
}

export async function hashPassword(password: string, logN = 15): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, logN, 8, 1);
  return `scrypt$${logN}$8$1$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (!stored) return false;
  const [scheme, logN, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !logN || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(logN), Number(r), Number(p));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Entra's rule: 8-256 characters and three of: lower case, upper case, digits, symbols. */
export function checkPasswordComplexity(password: string, property = 'passwordProfile.password'): void {
  if (password.length < 8 || password.length > 256)
    throw badRequest(`Invalid ${property}: it must be 8 to 256 characters long (it is ${password.length}).`, property);
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  if (classes < 3)
    throw badRequest(`Invalid ${property}: the password does not meet complexity requirements; use at least three of lower-case letters, upper-case letters, digits and symbols.`, property);
}
