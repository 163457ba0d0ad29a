// Hand-built, really signed PDUs for room-input tests: one server's key, any prev/auth events,
// so tests can build forks of a room without federation.

import { computeEventId, eventIdAssignedByServer, eventReference, newServerEventId, signEvent } from '../../src/protocol/events.js';
import { roomVersionRules } from '../../src/protocol/room-versions.js';
import type { EventHashReference, JsonObject, Pdu, RoomVersion, SigningKey } from '../../src/protocol/types.js';

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
  /** Top-level `redacts` (redactions before room v11). */
  redacts?: string;
  /** v1/v2: cite events as `[id, {}]`, without a hash (as SyTest does). */
  emptyReferenceHashes?: boolean;
}

export interface BuiltPdu {
  eventId: string;
  pdu: Pdu;
}

let clock = 1_750_000_000_000;

/**
 * Hashes and signs the event as `serverName` with `key`; returns it with its event ID. In rooms
 * v1/v2 the event gets a server-assigned ID and cites events as `[id, {sha256}]`, hashing the
 * PDUs `known` returns (an unknown event gets a made-up hash).
 */
export function buildPdu(
  spec: PduSpec,
  serverName: string,
  key: SigningKey,
  version: RoomVersion = '11',
  known: (eventId: string) => Pdu | undefined = () => undefined,
): BuiltPdu {
  const refs = (ids: string[]): string[] | EventHashReference[] =>
    roomVersionRules(version).eventReferencesWithHashes
      ? ids.map((id) => {
          if (spec.emptyReferenceHashes) return [id, {}] as EventHashReference;
          const target = known(id);
          return target ? (eventReference(id, target, version) as EventHashReference) : ([id, { sha256: 'A'.repeat(43) }] as EventHashReference);
        })
      : ids;
  const unsigned: Omit<Pdu, 'hashes'> & { hashes?: Pdu['hashes'] } = {
    room_id: spec.roomId,
    sender: spec.sender,
    type: spec.type,
    content: spec.content,
    origin_server_ts: spec.ts ?? ++clock,
    depth: spec.depth,
    prev_events: refs(spec.prevEvents),
    auth_events: refs(spec.authEvents),
    signatures: {},
  };
  if (spec.stateKey !== undefined) unsigned.state_key = spec.stateKey;
  if (spec.redacts !== undefined) unsigned.redacts = spec.redacts;
  if (eventIdAssignedByServer(version)) unsigned.event_id = newServerEventId(serverName);
  const pdu = signEvent(unsigned as Pdu, serverName, key, version);
  return { eventId: computeEventId(pdu, version), pdu };
}
