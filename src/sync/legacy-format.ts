// The event shape of the deprecated v1 API (GET /events, GET /initialSync,
// GET /rooms/{roomId}/initialSync). Clients of that API predate `sender` and `unsigned`: they read
// the sender from `user_id` and `age`, `prev_content`, `redacted_because`, `replaces_state` and
// `invite_room_state` from the top level. Synapse still serves this shape there (its "client v1"
// format), and the old clients and SyTest's initialSync tests key members by `user_id`.
//
// Invariant: purely additive. Every field of the r0 client format stays where it is, so a client
// that reads the new names works unchanged.

import type { JsonObject } from '../protocol/types.js';

const COPIED_FROM_UNSIGNED = ['age', 'redacted_because', 'replaces_state', 'prev_content', 'invite_room_state'] as const;

/** `e` in the v1 shape; `roomId` is set when given (the old API's events always name their room). */
export function v1Event(e: JsonObject, roomId?: string): JsonObject {
  const out: JsonObject = roomId === undefined ? { ...e } : { ...e, room_id: roomId };
  if (typeof e.sender === 'string') out.user_id = e.sender;
  const unsigned = e.unsigned;
  if (unsigned && typeof unsigned === 'object' && !Array.isArray(unsigned)) {
    for (const k of COPIED_FROM_UNSIGNED) {
      const v = (unsigned as JsonObject)[k];
      if (v !== undefined) out[k] = v;
    }
  }
  return out;
}
