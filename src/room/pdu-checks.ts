// The checks every PDU passes before it may enter a room, in the spec's order ("Checks performed
// on receipt of a PDU"): 1 format and size, 2 signatures, 3 content hash (a mismatch redacts
// the event rather than rejecting it), 4 auth against its own auth_events. Steps 5 (auth against
// the state before it) and 6 (soft fail against current state) need the room's DAG and live in
// room-input.ts, which calls these functions for local sends and received events alike.
//
// Invariants: pure apart from the KeyRing lookup; never throw for bad input (they return a
// reason); the PDU handed back by checkFormat is a fresh copy the caller owns.

import { AuthError, authEventTypesFor, checkAuthEventsSelection, checkEventAuth, type AuthStateLookup } from '../protocol/auth-rules.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { KeyObject } from 'node:crypto';
import { publicKeyObject, signatureKeyIds, type VerifyKey } from '../protocol/crypto.js';
import { checkContentHash, computeEventId, pduLimitViolation, requiredSignatureServers, roomIdOf, verifyEventSignature } from '../protocol/events.js';
import { roomVersionRules } from '../protocol/room-versions.js';
import { isValidEventId, isValidUserId } from '../protocol/ids.js';
import { redactEvent } from '../protocol/redaction.js';
import { authStateFromEvents } from '../protocol/auth-rules.js';
import type { Pdu, RoomVersion } from '../protocol/types.js';
import type { KeyRing } from './key-ring.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

function isSafeInt(v: unknown, min = 0): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
}

/**
 * prev_events/auth_events: bare event IDs, or (v1/v2) `[event_id, hashes]` pairs. The hashes
 * object's content is not required: nothing checks a reference hash (the event is found by its
 * ID), Synapse accepts `{}` there, and SyTest's v1 events carry `{}`.
 */
function isReferenceList(v: unknown, version: RoomVersion): boolean {
  if (!Array.isArray(v)) return false;
  if (!roomVersionRules(version).eventReferencesWithHashes) return v.every((id) => isValidEventId(id, version));
  return v.every((r) => Array.isArray(r) && r.length === 2 && isValidEventId(r[0], version) && isJsonObject(r[1]));
}

/**
 * Step 1: shape, limits and the event ID. `unsigned` from outside is never trusted, so it is
 * dropped. `tooLarge` tells the size limit apart from other format errors (a client gets
 * M_TOO_LARGE for it). `copy: false` skips the defensive copy for a PDU the caller just built.
 */
export function checkFormat(
  raw: unknown,
  /** null: a v12 create event being built, whose room ID is its own hash. */
  roomId: string | null,
  version: RoomVersion,
  /** known: the event ID and canonical size signLocalEvent computed for this very PDU. */
  opts: { copy?: boolean; known?: { eventId: string; size: number } } = {},
): Checked<{ pdu: Pdu; eventId: string }> & { tooLarge?: boolean } {
  if (!isJsonObject(raw)) return fail('PDU is not a JSON object');
  const limit = pduLimitViolation(raw, opts.known?.size);
  if (limit) return { ...fail(limit), tooLarge: limit.startsWith('PDU is ') };
  // Only a v12 create event has no room_id; checked against its event ID below.
  if (raw.room_id !== undefined && roomId !== null && raw.room_id !== roomId) return fail('room_id does not match the room');
  if (typeof raw.type !== 'string' || raw.type.length === 0) return fail('type must be a non-empty string');
  if (!isValidUserId(raw.sender)) return fail('sender is not a user ID');
  if (raw.state_key !== undefined && typeof raw.state_key !== 'string') return fail('state_key must be a string');
  if (!isJsonObject(raw.content)) return fail('content must be an object');
  if (!isSafeInt(raw.origin_server_ts)) return fail('origin_server_ts must be a non-negative integer');
  if (!isSafeInt(raw.depth)) return fail('depth must be a non-negative integer');
  if (!isReferenceList(raw.prev_events, version)) return fail('prev_events must be a list of event IDs');
  if (!isReferenceList(raw.auth_events, version)) return fail('auth_events must be a list of event IDs');
  if (!isJsonObject(raw.hashes) || typeof raw.hashes.sha256 !== 'string') return fail('hashes.sha256 missing');
  if (!isJsonObject(raw.signatures)) return fail('signatures missing');
  const { unsigned: _dropped, ...rest } = raw;
  const pdu = (opts.copy === false ? rest : structuredClone(rest)) as unknown as Pdu;
  let eventId: string;
  try {
    eventId = opts.known?.eventId ?? computeEventId(pdu, version);
  } catch (err) {
    return fail(`cannot compute the event ID: ${(err as Error).message}`);
  }
  if (roomId !== null && roomIdOf(pdu, eventId) !== roomId) return fail('room_id does not match the room');
  return { ok: true, value: { pdu, eventId } };
}

/**
 * A signature this process produced moments ago over the very PDU being checked (a local send):
 * re-verifying it costs an Ed25519 verify (~75 µs, a third of a send's CPU) and can only fail
 * if the key ring does not vouch for the key that made it, which is checked without the verify.
 */
export interface OwnSignature {
  serverName: string;
  keyId: string;
  /** The base64 signature exactly as signEvent wrote it. */
  signature: string;
  publicKey: KeyObject;
}

/** Whether the key ring's key is the one that made `own` (cached per key object). */
const sameKeyCache = new WeakMap<KeyObject, WeakMap<KeyObject, boolean>>();
function isSameKey(ringKey: VerifyKey, own: KeyObject): boolean {
  if (!(ringKey instanceof KeyObject)) return verifyKeyObject(ringKey)?.equals(own) ?? false;
  let byOwn = sameKeyCache.get(ringKey);
  if (!byOwn) sameKeyCache.set(ringKey, (byOwn = new WeakMap()));
  let same = byOwn.get(own);
  if (same === undefined) byOwn.set(own, (same = ringKey.equals(own)));
  return same;
}

function verifyKeyObject(k: VerifyKey): KeyObject | undefined {
  if (k instanceof KeyObject) return k;
  const bytes = typeof k === 'string' ? Buffer.from(k, 'base64') : k;
  return bytes.length === 32 ? publicKeyObject(bytes) : undefined;
}

/**
 * Step 2: every server that must sign the event did, with a key the key ring vouches for.
 * `own` (local sends only) stands in for verifying the signature this server just made; every
 * other signature, and every received event's, is verified in full.
 */
export async function checkSignatures(pdu: Pdu, version: RoomVersion, keyRing: KeyRing, own?: OwnSignature): Promise<string | undefined> {
  for (const server of requiredSignatureServers(pdu, version)) {
    let verified = false;
    for (const keyId of signatureKeyIds(pdu, server)) {
      const key = await keyRing.verifyKey(server, keyId, pdu.origin_server_ts);
      if (!key) continue;
      if (own && server === own.serverName && keyId === own.keyId && pdu.signatures[server]?.[keyId] === own.signature) {
        if (isSameKey(key, own.publicKey)) {
          verified = true;
          break;
        }
        continue;
      }
      if (verifyEventSignature(pdu, server, keyId, key, version)) {
        verified = true;
        break;
      }
    }
    if (!verified) return `no valid signature from ${server}`;
  }
  return undefined;
}

/** Step 3: a content hash mismatch means the content cannot be trusted: keep only the redacted event. */
export function checkHashOrRedact(pdu: Pdu, version: RoomVersion): { pdu: Pdu; redacted: boolean } {
  if (checkContentHash(pdu)) return { pdu, redacted: false };
  return { pdu: redactEvent(pdu, version), redacted: true };
}

/**
 * Step 4: the event is allowed by the auth rules applied to its own auth_events. `roomCreate` is
 * the room's create event: v12 events never cite it (the room ID names it), so the rules find it
 * there; before v12 the selection check already refused auth_events without it.
 */
export function checkAgainstAuthEvents(pdu: Pdu, version: RoomVersion, authEvents: readonly Pdu[], roomCreate?: Pdu): string | undefined {
  try {
    checkAuthEventsSelection(pdu, authEvents, version);
    const own = authStateFromEvents(authEvents);
    checkEventAuth(pdu, version, (type, stateKey) => own(type, stateKey) ?? (type === 'm.room.create' && stateKey === '' ? roomCreate : undefined));
    return undefined;
  } catch (err) {
    if (err instanceof AuthError) return err.message;
    throw err;
  }
}

/** Steps 5 and 6: the event is allowed by the auth rules applied to a state. */
export function checkAgainstState(pdu: Pdu, version: RoomVersion, state: AuthStateLookup): string | undefined {
  try {
    checkEventAuth(pdu, version, state);
    return undefined;
  } catch (err) {
    if (err instanceof AuthError) return err.message;
    throw err;
  }
}

/** The (type, state_key) entries the auth rules consult for this event. */
export function authKeysOf(pdu: Pdu, version: RoomVersion): Array<[string, string]> {
  return authEventTypesFor({ type: pdu.type, state_key: pdu.state_key, sender: pdu.sender, content: pdu.content }, version);
}
