// Knocking over federation, the resident side: make_knock hands a user of the asking server a
// knock template, send_knock takes the signed knock into the room (RoomInput, so the auth rules
// decide: the join rule must be knock or knock_restricted, in a room version with knocking) and
// answers with stripped state that lets the knocker recognise the room.
//
// Invariants: as for joins and leaves (FederationInbound.makeMembership/sendMembership), only a
// user of the asking server may knock, the room's server ACL holds, and a knock accepted here is
// passed on to the other servers in the room.

import type { JsonObject, JsonValue } from '../protocol/types.js';
import { strippedState } from '../room/client-event.js';
import type { RoomInput } from '../room/room-input.js';
import type { FederationInbound } from './inbound.js';

/** What the knocker is shown of the room (the spec's recommendation for knock_room_state). */
const KNOCK_STATE = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

export class FederationKnocks {
  constructor(private readonly d: { inbound: FederationInbound; roomInput: RoomInput }) {}

  makeKnock(origin: string, roomId: string, userId: string, versions: string[]): Promise<JsonObject> {
    return this.d.inbound.makeMembership(origin, roomId, userId, 'knock', versions);
  }

  async sendKnock(origin: string, roomId: string, eventId: string, raw: JsonValue | undefined): Promise<JsonObject> {
    await this.d.inbound.sendMembership(origin, roomId, eventId, raw, 'knock');
    const state = await this.d.roomInput.currentState(roomId);
    const stripped: JsonObject[] = [];
    for (const type of KNOCK_STATE) {
      const e = state?.get(type, '');
      if (e) stripped.push(strippedState(e.pdu));
    }
    return { knock_room_state: stripped };
  }
}
