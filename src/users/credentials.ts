// Password hashing, access tokens and device IDs.
//
// Passwords use scrypt because it is memory-hard (GPU/ASIC guessing is expensive) and ships with
// node:crypto. The stored string carries its own parameters, so they can be raised later while
// old hashes keep verifying. Access tokens are stored only as SHA-256 hashes: a leaked database
// then yields no usable tokens, and since tokens are 256-bit random values a slow hash adds
// nothing.

import { createHmac, hash, randomBytes, randomInt, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const SCRYPT_PREFIX = 'scrypt';
// 2^15 * 8 * 128 bytes = 32 MiB per hash, ~50-100 ms on a current core.
const DEFAULT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Bounds for parameters read back from a stored hash, so a corrupt row cannot make one login
// allocate gigabytes.
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

function scryptAsync(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function scryptOptions(N: number, r: number, p: number): ScryptOptions {
  // Node refuses to allocate more than maxmem (32 MiB by default), which N=2^15, r=8 just exceeds.
  return { N, r, p, maxmem: 128 * N * r * p + 16 * 1024 * 1024 };
}

// Synapse normalises passwords the same way, so a password typed on devices that compose
// accented characters differently still matches.
function normalise(password: string): string {
  return password.normalize('NFKC');
}

/** Returns `scrypt$N$r$p$salt$hash` (salt and hash base64url), with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const { N, r, p } = DEFAULT_PARAMS;
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(normalise(password), salt, KEY_BYTES, scryptOptions(N, r, p));
  return [SCRYPT_PREFIX, N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(stored: string): ParsedHash | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== SCRYPT_PREFIX) return null;
  const [N, r, p] = parts.slice(1, 4).map((s) => (/^\d{1,8}$/.test(s) ? Number(s) : NaN));
  const powerOfTwo = N > 1 && (N & (N - 1)) === 0;
  if (!powerOfTwo || N > MAX_N || !(r >= 1 && r <= MAX_R) || !(p >= 1 && p <= MAX_P)) return null;
  const salt = Buffer.from(parts[4], 'base64url');
  const key = Buffer.from(parts[5], 'base64url');
  if (salt.length < 8 || key.length < 16) return null;
  return { N, r, p, salt, key };
}

/**
 * Whether `password` matches `stored` (a hashPassword result). A malformed or unknown-format
 * hash never matches; the comparison of derived keys is constant-time.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (parsed === null) return false;
  const { N, r, p, salt, key } = parsed;
  const candidate = await scryptAsync(normalise(password), salt, key.length, scryptOptions(N, r, p));
  return timingSafeEqual(candidate, key);
}

/** Whether a stored hash uses weaker parameters than today's, so login can re-hash it. */
export function passwordHashNeedsUpgrade(stored: string): boolean {
  const parsed = parseHash(stored);
  if (parsed === null) return true;
  return parsed.N < DEFAULT_PARAMS.N || parsed.r < DEFAULT_PARAMS.r || parsed.key.length < KEY_BYTES;
}

/** A new access token: `hth_` + 256 random bits. The prefix makes leaked tokens greppable. */
export function generateAccessToken(): string {
  return `hth_${randomBytes(32).toString('base64url')}`;
}

/** The form in which access tokens are stored and looked up. */
export function hashAccessToken(token: string): string {
  return hash('sha256', token, 'hex');
}

const DEVICE_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Ten uppercase letters, like Synapse's device IDs. */
export function generateDeviceId(): string {
  let id = '';
  // randomInt is unbiased, unlike `byte % 26`.
  for (let i = 0; i < 10; i++) id += DEVICE_ID_ALPHABET[randomInt(DEVICE_ID_ALPHABET.length)];
  return id;
}

/**
 * The MAC of Synapse's shared-secret registration API (/_synapse/admin/v1/register):
 * hex HMAC-SHA1(secret, nonce \0 user \0 password \0 ("admin" | "notadmin")).
 * Used by `hearth register-user` and by the server to check requests.
 */
export function registrationMac(sharedSecret: string, nonce: string, user: string, password: string, admin: boolean): string {
  const mac = createHmac('sha1', Buffer.from(sharedSecret, 'utf8'));
  mac.update(nonce, 'utf8');
  mac.update('\x00');
  mac.update(user, 'utf8');
  mac.update('\x00');
  mac.update(password, 'utf8');
  mac.update('\x00');
  mac.update(admin ? 'admin' : 'notadmin');
  return mac.digest('hex');
}

/** Constant-time check of a client-supplied registration MAC. */
export function verifyRegistrationMac(
  sharedSecret: string,
  nonce: string,
  user: string,
  password: string,
  admin: boolean,
  mac: string,
): boolean {
  const expected = Buffer.from(registrationMac(sharedSecret, nonce, user, password, admin), 'utf8');
  const given = Buffer.from(mac.toLowerCase(), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
