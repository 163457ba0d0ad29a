// Wire-level Matrix types shared by every layer. Pure data: no behaviour here.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Room versions Hearth can create and join. */
export type RoomVersion = '10' | '11';
export const SUPPORTED_ROOM_VERSIONS: readonly RoomVersion[] = ['10', '11'];
export const DEFAULT_ROOM_VERSION: RoomVersion = '11';

/**
 * A persistent data unit in room version 10/11 format, exactly as it is signed and sent over
 * federation. It never carries `event_id` (that is the reference hash, computed from the PDU).
 */
export interface Pdu {
  room_id: string;
  sender: string;
  type: string;
  state_key?: string;
  content: JsonObject;
  origin_server_ts: number;
  depth: number;
  prev_events: string[];
  auth_events: string[];
  hashes: { sha256: string };
  signatures: Record<string, Record<string, string>>;
  /** Room v10 redactions carry the target at top level; v11 moves it into content. */
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
