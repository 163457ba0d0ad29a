// Identifier grammar (spec appendices, "Identifier Grammar") and random ID generation.
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { hasLoneSurrogate } from './canonical-json.js';
import { findRoomVersion } from './room-versions.js';

export class InvalidIdError extends Error {
  override name = 'InvalidIdError';
}

/** User IDs, room IDs, aliases and event IDs are capped at 255 bytes including sigil and domain. */
export const MAX_ID_BYTES = 255;

export interface UserIdParts {
  localpart: string;
  serverName: string;
}

const PORT = /^[0-9]{1,5}$/;
const IPV4 = /^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/;
const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const REGISTRATION_LOCALPART = /^[a-z0-9._=\-/+]+$/;

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function validHostname(host: string): boolean {
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return false;
    const addr = host.slice(1, -1);
    return IPV6_CHARS.test(addr) && isIPv6(addr);
  }
  if (IPV4.test(host)) return host.split('.').every((octet) => Number(octet) <= 255);
  // Anything else made of digits, letters, '-' and '.' is a DNS name per the spec grammar.
  return DNS_NAME.test(host);
}

/** `hostname [":" port]` where hostname is a DNS name, dotted-quad IPv4 or `[IPv6]`. */
export function isValidServerName(name: string): boolean {
  if (typeof name !== 'string' || name.length === 0) return false;
  let host = name;
  const close = name.lastIndexOf(']');
  const colon = name.lastIndexOf(':');
  // A colon after the IPv6 literal (or anywhere, when there is no literal) starts the port.
  if (colon > close) {
    const port = name.slice(colon + 1);
    if (!PORT.test(port) || Number(port) > 65535) return false;
    host = name.slice(0, colon);
  }
  return validHostname(host);
}

/** Splits `<sigil>opaque:server`. The opaque part ends at the first colon (it may not contain one). */
function splitSigilId(id: string, sigil: string): { local: string; serverName: string } | undefined {
  if (typeof id !== 'string' || !id.startsWith(sigil) || byteLength(id) > MAX_ID_BYTES) return undefined;
  const colon = id.indexOf(':');
  if (colon < 0) return undefined;
  const local = id.slice(1, colon);
  const serverName = id.slice(colon + 1);
  if (local.includes('\u0000') || hasLoneSurrogate(local)) return undefined;
  if (!isValidServerName(serverName)) return undefined;
  return { local, serverName };
}

/**
 * Parses a user ID. Historical localparts (any code points except `:` and NUL, even empty) are
 * accepted because existing rooms contain them; use {@link isValidLocalpartForRegistration}
 * for new accounts.
 */
export function parseUserId(id: string): UserIdParts {
  const parts = splitSigilId(id, '@');
  if (!parts) throw new InvalidIdError(`invalid user ID ${JSON.stringify(id)}`);
  return { localpart: parts.local, serverName: parts.serverName };
}

export function tryParseUserId(id: unknown): UserIdParts | undefined {
  if (typeof id !== 'string') return undefined;
  const parts = splitSigilId(id, '@');
  return parts && { localpart: parts.local, serverName: parts.serverName };
}

export interface UserIdOptions {
  /** Require the current localpart grammar (`[a-z0-9._=\-/+]+`) instead of the historical one. */
  strict?: boolean;
}

export function isValidUserId(id: unknown, options: UserIdOptions = {}): id is string {
  const parts = tryParseUserId(id);
  if (!parts) return false;
  return options.strict ? REGISTRATION_LOCALPART.test(parts.localpart) : true;
}

/**
 * Whether a new account may use this localpart. With `serverName` the full user ID must also fit
 * in 255 bytes.
 */
export function isValidLocalpartForRegistration(localpart: string, serverName?: string): boolean {
  if (!REGISTRATION_LOCALPART.test(localpart)) return false;
  return serverName === undefined || byteLength(`@${localpart}:${serverName}`) <= MAX_ID_BYTES;
}

/** v12+ room IDs: `!` + the create event's reference hash (URL-safe base64), no server part. */
const HASH_ROOM_ID = /^![A-Za-z0-9_-]{43}$/;

/** `!opaque:server` (room versions 1-11) or `!<hash>` (v12). */
export function isValidRoomId(id: unknown): id is string {
  return typeof id === 'string' && (splitSigilId(id, '!') !== undefined || HASH_ROOM_ID.test(id));
}

export function isValidRoomAlias(id: unknown): id is string {
  return typeof id === 'string' && splitSigilId(id, '#') !== undefined;
}

const HASH_EVENT_ID_V3 = /^\$[A-Za-z0-9+/]{43}$/;
const HASH_EVENT_ID_V4 = /^\$[A-Za-z0-9_-]{43}$/;

/**
 * Event IDs. Without a room version any `$`-prefixed ID up to 255 bytes is accepted; with one,
 * the exact format for that version is required (v1/v2 `$opaque:server`, v3 standard base64
 * hash, v4+ URL-safe hash).
 */
export function isValidEventId(id: unknown, roomVersion?: string): id is string {
  if (typeof id !== 'string' || !id.startsWith('$') || id.length < 2) return false;
  if (byteLength(id) > MAX_ID_BYTES || id.includes('\u0000') || hasLoneSurrogate(id)) return false;
  if (roomVersion === undefined) return true;
  const format = findRoomVersion(roomVersion)?.eventIdFormat;
  if (format === 'server') return splitSigilId(id, '$') !== undefined;
  if (format === 'hash-base64') return HASH_EVENT_ID_V3.test(id);
  return HASH_EVENT_ID_V4.test(id);
}

/**
 * The server name of a user ID, room ID, alias or (v1/v2) event ID, or undefined when the ID has
 * no valid domain part. Returning undefined rather than throwing keeps a malformed ID from a URL
 * from turning into a server error.
 */
export function serverNameOf(id: string): string | undefined {
  if (typeof id !== 'string' || id.length === 0 || !'@!#$'.includes(id[0])) return undefined;
  return splitSigilId(id, id[0])?.serverName;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Uniformly random string over `alphabet` (rejection sampling avoids modulo bias). */
export function randomString(length: number, alphabet: string = ALNUM): string {
  if (alphabet.length < 2 || alphabet.length > 256) throw new RangeError('alphabet must have 2..256 characters');
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length - out.length + 8)) {
      if (b < limit) out += alphabet[b % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

/** A new room ID in the v1-v11 format, 18 random letters like Synapse uses. */
export function generateRoomId(serverName: string): string {
  return `!${randomString(18, UPPER + UPPER.toLowerCase())}:${serverName}`;
}

/** A new device ID: 10 upper-case letters, as Synapse generates them. */
export function generateDeviceId(): string {
  return randomString(10, UPPER);
}

/** An opaque token (access tokens, transaction IDs, media IDs). */
export function generateToken(length = 32): string {
  return randomString(length);
}
