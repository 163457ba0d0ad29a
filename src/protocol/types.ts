// Wire-level Matrix types shared by every layer. Pure data: no behaviour here.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

// The version table lives in room-versions.ts; re-exported here where callers always found it.
export { DEFAULT_ROOM_VERSION, SUPPORTED_ROOM_VERSIONS, type RoomVersion } from './room-versions.js';

/**
 * A v1/v2 event reference: the event ID and the referenced event's reference hash. We always
 * write `sha256`; a received reference may lack it (nothing checks it, Synapse neither).
 */
export type EventHashReference = [eventId: string, hashes: { sha256?: string }];

/**
 * A persistent data unit, exactly as it is signed and sent over federation. Its shape depends on
 * the room version (see room-versions.ts):
 *  - v1/v2 carry `event_id` and cite events as `[event_id, {sha256}]` pairs; from v3 the event
 *    ID is the reference hash (never in the PDU) and references are bare IDs. Read references
 *    with prevEventIds()/authEventIds() from events.ts.
 *  - v12's m.room.create has no `room_id` (the room ID is derived from its hash); every other
 *    event has one. Read it with roomIdOf() from events.ts.
 */
export interface Pdu {
  room_id?: string;
  sender: string;
  type: string;
  state_key?: string;
  content: JsonObject;
  origin_server_ts: number;
  depth: number;
  prev_events: string[] | EventHashReference[];
  auth_events: string[] | EventHashReference[];
  hashes: { sha256: string };
  signatures: Record<string, Record<string, string>>;
  /** v1/v2 only: the server-assigned event ID. */
  event_id?: string;
  /** Redactions before v11 carry the target at top level; v11 moves it into content. */
  redacts?: string;
  unsigned?: JsonObject;
  [extra: string]: JsonValue | undefined;
}

/** A PDU together with its event ID, as held in memory. */
export interface EventWithId {
  eventId: string;
  pdu: Pdu;
}

/** The key of a state entry: `${type}\u0000${stateKey}`. */
export type StateKeyTuple = string;
export function stateTuple(type: string, stateKey: string): StateKeyTuple {
  return `${type}\u0000${stateKey}`;
}
export function splitStateTuple(tuple: StateKeyTuple): [type: string, stateKey: string] {
  const i = tuple.indexOf('\u0000');
  return [tuple.slice(0, i), tuple.slice(i + 1)];
}

/** A server signing key (ed25519). `seed` is the 32-byte private seed. */
export interface SigningKey {
  keyId: string; // "ed25519:<version>"
  seed: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * Any JSON object as accepted by the protocol helpers. Unlike JsonObject it admits interfaces
 * such as Pdu whose optional fields may be `undefined` (those fields are treated as absent).
 */
export type LooseJsonObject = { [key: string]: JsonValue | undefined };
