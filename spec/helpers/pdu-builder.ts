// Hand-built, really signed PDUs for room-input tests: one server's key, any prev/auth events,
// so tests can build forks of a room without federation.

import { computeEventId, signEvent } from '../../src/protocol/events.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../../src/protocol/types.js';

export interface PduSpec {
  roomId: string;
  sender: string;
  type: string;
  stateKey?: string;
  content: JsonObject;
  prevEvents: string[];
  authEvents: string[];
  depth: number;
  ts?: number;
}

export interface BuiltPdu {
  eventId: string;
  pdu: Pdu;
}

let clock = 1_750_000_000_000;

/** Hashes and signs the event as `serverName` with `key`; returns it with its event ID. */
export function buildPdu(spec: PduSpec, serverName: string, key: SigningKey, version: RoomVersion = '11'): BuiltPdu {
  const unsigned: Omit<Pdu, 'hashes'> & { hashes?: Pdu['hashes'] } = {
    room_id: spec.roomId,
    sender: spec.sender,
    type: spec.type,
    content: spec.content,
    origin_server_ts: spec.ts ?? ++clock,
    depth: spec.depth,
    prev_events: spec.prevEvents,
    auth_events: spec.authEvents,
    signatures: {},
  };
  if (spec.stateKey !== undefined) unsigned.state_key = spec.stateKey;
  const pdu = signEvent(unsigned as Pdu, serverName, key, version);
  return { eventId: computeEventId(pdu, version), pdu };
}
