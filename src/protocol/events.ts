// Content hashes, event signatures, event IDs and event references (spec server-server API,
// "Signing events"; rooms v1 "Event IDs", v3/v4 "Event IDs", v12 room IDs). Everything that
// depends on the room version reads it from room-versions.ts.
import { encodeBase64, encodeBase64Url, tryDecodeBase64 } from './base64.js';
import { canonicalJson, canonicalMembers, cloneJson, isJsonObject, dict } from './canonical-json.js';
import { sha256, sha256Base64, signBytes, signJson, verifyJsonSignature, type VerifyKey } from './crypto.js';
import { isValidEventId, randomString } from './ids.js';
import { redactedContent, redactEvent, redactionTopLevel } from './redaction.js';
import { roomVersionRules, type EventIdFormat } from './room-versions.js';
import type { EventHashReference, JsonObject, JsonValue, LooseJsonObject, Pdu, SigningKey } from './types.js';

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

/**
 * The object a reference hash is taken of: the redacted event without signatures and unsigned.
 * From v3 `event_id` is dropped too: it is on the redaction keep-list but must never feed into
 * its own hash (Synapse rejects such PDUs outright). In v1/v2 the server-assigned `event_id` is
 * part of the event and so part of its reference hash.
 */
function referenceHashInput(pdu: LooseJsonObject, roomVersion: string): string {
  const dropped = roomVersionRules(roomVersion).eventIdFormat === 'server' ? ['signatures', 'unsigned'] : ['signatures', 'unsigned', 'event_id'];
  return canonicalJson(withoutKeys(redactEvent(pdu, roomVersion), dropped));
}

/** Raw reference hash (SHA-256) of the event. */
export function referenceHash(pdu: LooseJsonObject, roomVersion: string): Uint8Array {
  return sha256(referenceHashInput(pdu, roomVersion));
}

const HASH_ENCODINGS: Readonly<Record<Exclude<EventIdFormat, 'server'>, (b: Uint8Array) => string>> = {
  'hash-base64': encodeBase64,
  'hash-base64url': encodeBase64Url,
};

/**
 * The event's ID. From v3 it is `$` + the reference hash (standard base64 in v3, URL-safe from
 * v4). In v1/v2 it was chosen by the sending server and travels in the PDU as `event_id`: that
 * is returned, and a PDU without a well-formed one is an error.
 */
export function computeEventId(pdu: LooseJsonObject, roomVersion: string): string {
  const format = roomVersionRules(roomVersion).eventIdFormat;
  if (format === 'server') {
    if (!isValidEventId(pdu.event_id, roomVersion)) throw new Error(`room v${roomVersion} event lacks a valid event_id`);
    return pdu.event_id;
  }
  return '$' + HASH_ENCODINGS[format](referenceHash(pdu, roomVersion));
}

/** A fresh v1/v2 event ID for an event this server creates: `$<random>:<server>`. */
export function newServerEventId(serverName: string): string {
  return `$${randomString(24)}:${serverName}`;
}

/** Whether events of this version carry a server-assigned `event_id` that must be set before signing. */
export function eventIdAssignedByServer(roomVersion: string): boolean {
  return roomVersionRules(roomVersion).eventIdFormat === 'server';
}

/**
 * v12: the room ID of the room a create event starts, `!` + its reference hash (URL-safe);
 * undefined for versions whose room IDs are chosen freely.
 */
export function roomIdFromCreateEvent(create: LooseJsonObject, roomVersion: string): string | undefined {
  if (!roomVersionRules(roomVersion).roomIdFromCreateEvent) return undefined;
  return '!' + computeEventId(create, roomVersion).slice(1);
}

/**
 * The room an event belongs to. Only a v12 create event lacks `room_id`; its room ID is its own
 * event ID with the `!` sigil, so callers that hold the event ID need no version lookup.
 */
export function roomIdOf(pdu: { room_id?: string }, eventId: string): string {
  return pdu.room_id ?? '!' + eventId.slice(1);
}

/** The event IDs out of prev_events/auth_events in either format (bare IDs or v1/v2 pairs). */
export function referencedIds(refs: readonly (string | EventHashReference)[] | JsonValue | undefined): string[] {
  if (!Array.isArray(refs)) return [];
  const out: string[] = [];
  for (const r of refs) {
    if (typeof r === 'string') out.push(r);
    else if (Array.isArray(r) && typeof r[0] === 'string') out.push(r[0]);
  }
  return out;
}

export function prevEventIds(pdu: Pick<Pdu, 'prev_events'>): string[] {
  return referencedIds(pdu.prev_events);
}

export function authEventIds(pdu: Pick<Pdu, 'auth_events'>): string[] {
  return referencedIds(pdu.auth_events);
}

/**
 * How an event cites `target` in its prev_events/auth_events: the bare ID from v3, an
 * `[event_id, {sha256: reference hash}]` pair in v1/v2.
 */
export function eventReference(eventId: string, target: LooseJsonObject, roomVersion: string): string | EventHashReference {
  if (!roomVersionRules(roomVersion).eventReferencesWithHashes) return eventId;
  return [eventId, { sha256: encodeBase64(referenceHash(target, roomVersion)) }];
}

/** A whole prev_events/auth_events list in the version's format. */
export function eventReferences(
  events: ReadonlyArray<{ eventId: string; pdu: LooseJsonObject }>,
  roomVersion: string,
): string[] | EventHashReference[] {
  if (!roomVersionRules(roomVersion).eventReferencesWithHashes) return events.map((e) => e.eventId);
  return events.map((e) => eventReference(e.eventId, e.pdu, roomVersion) as EventHashReference);
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

/**
 * signEvent for an event this server builds, plus what its send checks next, from one canonical
 * encoding of each top-level member (a send otherwise took four canonical JSON passes: hash,
 * sign, size, event ID, the first two each over the whole event):
 * - the content-hash input is the members other than hashes, signatures and unsigned;
 * - the signing input is the redacted event without signatures and unsigned: every member that
 *   redaction keeps is kept whole (a deep copy encodes as the original), so its encoding is
 *   reused, and only the redacted content and the new hashes are encoded;
 * - eventId: the reference hash input is exactly the signing input, so its SHA-256 is the
 *   event ID (v3+, where a built PDU has no event_id; v1/v2 return the server-assigned event_id
 *   as computeEventId does);
 * - size: the PDU's canonical JSON is the content-hash input plus its `hashes`, `signatures`
 *   (and `unsigned`) members, so its byte length is summed, not serialized again.
 * Equal to signEvent, computeEventId and pduSize (spec/protocol/sign-local.spec.ts).
 */
export function signLocalEvent(pdu: Pdu, serverName: string, key: SigningKey, roomVersion: string): { pdu: Pdu; eventId: string; size: number } {
  const members = canonicalMembers(withoutKeys(pdu, ['unsigned', 'signatures', 'hashes']));
  const baseJson = joinMembers(members);
  const hashes = isJsonObject(pdu.hashes) ? pdu.hashes : {};
  const hashed = { ...pdu, hashes: { ...hashes, sha256: sha256Base64(baseJson) } } as Pdu;
  const hashesMember = '"hashes":' + canonicalJson(hashed.hashes);
  const kept = redactionTopLevel(roomVersion);
  const redacted: Array<{ key: string; json: string }> = [
    { key: 'content', json: '"content":' + canonicalJson(redactedContent(hashed, roomVersion)) },
    { key: 'hashes', json: hashesMember },
  ];
  for (const m of members) if (m.key !== 'content' && kept.includes(m.key)) redacted.push(m);
  // The keys are redaction's fixed ASCII names, so UTF-16 order is code point order.
  redacted.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const input = joinMembers(redacted);
  const existing = isJsonObject(pdu.signatures) ? cloneJson(pdu.signatures) : {};
  const mine = isJsonObject(existing[serverName]) ? (existing[serverName] as JsonObject) : {};
  const signatures = { ...existing, [serverName]: { ...mine, [key.keyId]: encodeBase64(signBytes(key, input)) } };
  const signed = { ...hashed, signatures } as Pdu;
  const format = roomVersionRules(roomVersion).eventIdFormat;
  const eventId = format === 'server' || pdu.event_id !== undefined ? computeEventId(signed, roomVersion) : '$' + HASH_ENCODINGS[format](sha256(input));
  // Each added member: a comma (the base always has members), "key": and its value.
  let size = Buffer.byteLength(baseJson, 'utf8') + 1 + Buffer.byteLength(hashesMember, 'utf8');
  size += 1 + Buffer.byteLength(`"signatures":${canonicalJson(signatures)}`, 'utf8');
  if (signed.unsigned !== undefined) size += 1 + Buffer.byteLength(`"unsigned":${canonicalJson(signed.unsigned)}`, 'utf8');
  return { pdu: signed, eventId, size };
}

function joinMembers(members: ReadonlyArray<{ json: string }>): string {
  let out = '{';
  for (let i = 0; i < members.length; i++) out += (i > 0 ? ',' : '') + members[i].json;
  return out + '}';
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
 * Servers whose signatures an event must carry: the sender's; in v1/v2 also the server of the
 * event ID; for restricted joins (v8+) the server of `join_authorised_via_users_server`.
 */
export function requiredSignatureServers(pdu: LooseJsonObject, roomVersion: string): string[] {
  const rules = roomVersionRules(roomVersion);
  const servers = new Set<string>();
  const senderServer = domainOf(pdu.sender);
  if (senderServer) servers.add(senderServer);
  if (rules.eventIdFormat === 'server') {
    const idServer = domainOf(pdu.event_id);
    if (idServer) servers.add(idServer);
  }
  const content = isJsonObject(pdu.content) ? pdu.content : {};
  if (rules.auth.restrictedJoins && pdu.type === 'm.room.member' && content.membership === 'join') {
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
 * `knownSize`: pduSize(pdu), when the caller already has it (signLocalEvent).
 */
export function pduLimitViolation(pdu: LooseJsonObject, knownSize?: number): string | undefined {
  let size: number;
  try {
    size = knownSize ?? pduSize(pdu);
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
