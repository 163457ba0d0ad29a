// Content hashes, event signatures and reference-hash event IDs (spec server-server API,
// "Signing events", and rooms v3/v4 "Event IDs").
import { encodeBase64, encodeBase64Url, tryDecodeBase64 } from './base64.js';
import { canonicalJson, isJsonObject, dict } from './canonical-json.js';
import { sha256, sha256Base64, signJson, verifyJsonSignature, type VerifyKey } from './crypto.js';
import { redactEvent } from './redaction.js';
import type { JsonObject, LooseJsonObject, Pdu, SigningKey } from './types.js';

/** Largest PDU (canonical JSON, bytes) servers accept. */
export const MAX_PDU_BYTES = 65536;
/** Limits from the PDU format; exceeding them makes Synapse drop the event. */
export const MAX_TYPE_BYTES = 255;
export const MAX_STATE_KEY_BYTES = 255;
export const MAX_AUTH_EVENTS = 10;
export const MAX_PREV_EVENTS = 20;

function withoutKeys(obj: LooseJsonObject, keys: readonly string[]): JsonObject {
  const out: JsonObject = dict();
  for (const [k, v] of Object.entries(obj)) if (!keys.includes(k) && v !== undefined) out[k] = v;
  return out;
}

/** Unpadded base64 SHA-256 of the event minus `unsigned`, `signatures` and `hashes`. */
export function contentHash(pdu: LooseJsonObject): string {
  return sha256Base64(canonicalJson(withoutKeys(pdu, ['unsigned', 'signatures', 'hashes'])));
}

/** Returns a copy with `hashes.sha256` set (other hash algorithms are preserved). */
export function addContentHash<T extends LooseJsonObject>(pdu: T): T {
  const hashes = isJsonObject(pdu.hashes) ? pdu.hashes : {};
  return { ...pdu, hashes: { ...hashes, sha256: contentHash(pdu) } } as T;
}

/**
 * True iff `hashes.sha256` matches the event. The claimed hash is compared as bytes so that a
 * peer's padded encoding does not count as a mismatch.
 */
export function checkContentHash(pdu: LooseJsonObject): boolean {
  const hashes = pdu.hashes;
  if (!isJsonObject(hashes)) return false;
  const claimed = tryDecodeBase64(hashes.sha256);
  if (!claimed || claimed.length !== 32) return false;
  let actual: Uint8Array;
  try {
    actual = sha256(canonicalJson(withoutKeys(pdu, ['unsigned', 'signatures', 'hashes'])));
  } catch {
    return false;
  }
  return Buffer.from(claimed).equals(Buffer.from(actual));
}

/** The object a reference hash is taken of: the redacted event without signatures/unsigned/event_id. */
function referenceHashInput(pdu: LooseJsonObject, roomVersion: string): string {
  // event_id is on the redaction keep-list, but it must never feed into its own hash;
  // Synapse rejects PDUs that carry it at all.
  return canonicalJson(withoutKeys(redactEvent(pdu, roomVersion), ['signatures', 'unsigned', 'event_id']));
}

/** Raw reference hash (SHA-256) of the event. */
export function referenceHash(pdu: LooseJsonObject, roomVersion: string): Uint8Array {
  return sha256(referenceHashInput(pdu, roomVersion));
}

/**
 * The event ID for room versions 3+: `$` + base64 of the reference hash, standard alphabet in
 * v3 and URL-safe from v4. Versions 1/2 used server-assigned IDs and cannot be computed.
 */
export function computeEventId(pdu: LooseJsonObject, roomVersion: string): string {
  if (roomVersion === '1' || roomVersion === '2') {
    throw new Error(`room version ${roomVersion} event IDs are assigned, not computed`);
  }
  const hash = referenceHash(pdu, roomVersion);
  return '$' + (roomVersion === '3' ? encodeBase64(hash) : encodeBase64Url(hash));
}

/**
 * Adds this server's signature to an event without touching `hashes`: for countersigning events
 * created elsewhere (invites, restricted joins). The redacted copy is what gets signed.
 */
export function addEventSignature<T extends LooseJsonObject>(pdu: T, serverName: string, key: SigningKey, roomVersion: string): T {
  const signedRedacted = signJson(redactEvent(pdu, roomVersion), serverName, key);
  return { ...pdu, signatures: signedRedacted.signatures } as T;
}

/** Hashes and signs a locally built event; returns a new object. */
export function signEvent(pdu: Pdu, serverName: string, key: SigningKey, roomVersion: string): Pdu;
export function signEvent(pdu: JsonObject, serverName: string, key: SigningKey, roomVersion: string): JsonObject;
export function signEvent(pdu: LooseJsonObject, serverName: string, key: SigningKey, roomVersion: string): LooseJsonObject {
  return addEventSignature(addContentHash(pdu), serverName, key, roomVersion);
}

/** Checks one server's signature on the redacted form of the event. */
export function verifyEventSignature(
  pdu: LooseJsonObject,
  serverName: string,
  keyId: string,
  publicKey: VerifyKey,
  roomVersion: string,
): boolean {
  let redacted: LooseJsonObject;
  try {
    redacted = redactEvent(pdu, roomVersion);
  } catch {
    return false;
  }
  return verifyJsonSignature(redacted, serverName, keyId, publicKey);
}

function domainOf(id: unknown): string | undefined {
  if (typeof id !== 'string') return undefined;
  const i = id.indexOf(':');
  return i < 0 ? undefined : id.slice(i + 1);
}

/**
 * Servers whose signatures an event must carry: the sender's, plus for restricted joins (v8+)
 * the server of `join_authorised_via_users_server`.
 */
export function requiredSignatureServers(pdu: LooseJsonObject, roomVersion: string): string[] {
  const servers = new Set<string>();
  const senderServer = domainOf(pdu.sender);
  if (senderServer) servers.add(senderServer);
  const content = isJsonObject(pdu.content) ? pdu.content : {};
  const restricted = !['1', '2', '3', '4', '5', '6', '7'].includes(roomVersion);
  if (restricted && pdu.type === 'm.room.member' && content.membership === 'join') {
    const authoriser = domainOf(content.join_authorised_via_users_server);
    if (authoriser) servers.add(authoriser);
  }
  return [...servers];
}

/** Size in bytes of the event's canonical JSON; compare with {@link MAX_PDU_BYTES}. */
export function pduSize(pdu: LooseJsonObject): number {
  return Buffer.byteLength(canonicalJson(pdu), 'utf8');
}

/**
 * Size and shape limits a PDU must meet before anything else looks at it. Returns a reason, or
 * undefined if the PDU is acceptable. Type checks of the fields themselves are the caller's job.
 */
export function pduLimitViolation(pdu: LooseJsonObject): string | undefined {
  let size: number;
  try {
    size = pduSize(pdu);
  } catch (e) {
    return `not canonical JSON: ${(e as Error).message}`;
  }
  if (size > MAX_PDU_BYTES) return `PDU is ${size} bytes, limit ${MAX_PDU_BYTES}`;
  if (typeof pdu.type === 'string' && Buffer.byteLength(pdu.type) > MAX_TYPE_BYTES) return 'type too long';
  if (typeof pdu.state_key === 'string' && Buffer.byteLength(pdu.state_key) > MAX_STATE_KEY_BYTES) return 'state_key too long';
  if (Array.isArray(pdu.auth_events) && pdu.auth_events.length > MAX_AUTH_EVENTS) return 'too many auth_events';
  if (Array.isArray(pdu.prev_events) && pdu.prev_events.length > MAX_PREV_EVENTS) return 'too many prev_events';
  return undefined;
}
