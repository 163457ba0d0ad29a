// The wire form of a received event's gap states (RoomInput.receive: the states another server
// reported after the prev events we do not have) when the call is forwarded to the room's owner on
// another worker (src/cluster/room-forwarding.ts carries arguments as JSON, and a Map is not JSON).
//
// Invariants:
// - A state map travels as an array of [key, eventId] pairs, never as an object keyed by state
//   key: a key may be any string ("__proto__", "constructor"), and pairs keep no prototype in play.
// - decode(encode(x)) has the same entries as x, in the same order; decode refuses anything that
//   is not exactly that shape (an Error: the sender is a worker of this cluster, so a bad shape is
//   a bug or a version mismatch, never a client's input) rather than resolve a partial state.

import type { StateMap } from '../room/state-resolver.js';

export type WireGapStates = Array<Array<[string, string]>>;

export function encodeGapStates(states: readonly StateMap[]): WireGapStates {
  return states.map((m) => [...m.entries()]);
}

/** The forwarded argument back as maps; `undefined` when none were sent (null or absent). */
export function decodeGapStates(wire: unknown): StateMap[] | undefined {
  if (wire === undefined || wire === null) return undefined;
  if (!Array.isArray(wire)) throw new Error('forwarded gap states: not an array');
  return wire.map((pairs, i) => {
    if (!Array.isArray(pairs)) throw new Error(`forwarded gap states: state ${i} is not an array`);
    const map: StateMap = new Map();
    for (const pair of pairs) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw new Error(`forwarded gap states: state ${i} has an entry that is not a [key, eventId] pair`);
      }
      map.set(pair[0], pair[1]);
    }
    return map;
  });
}
