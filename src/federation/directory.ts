// What other servers may ask about rooms without being in them: the public room directory
// (GET/POST /_matrix/federation/v1/publicRooms) and one level of a space's hierarchy
// (GET /_matrix/federation/v1/hierarchy/{roomId}).
//
// Invariants:
// - publicRooms lists exactly what the client API's /publicRooms lists (src/room/public-rooms.ts).
//   Third-party networks are not bridged: include_all_networks or a third_party_instance_id
//   lists the same rooms (there are no others).
// - The hierarchy describes a room only to a server that could peek or join it: its join rule
//   is public, knock, knock_restricted or restricted (then with allowed_room_ids, for the asking
//   server to check), its history is world_readable, or a user of that server is joined or
//   invited. Otherwise the room is 404 and a child is listed in inaccessible_children. A child
//   this server has no state for is left out (the spec: "cannot provide details").
// - The room's server ACL holds: a banned server gets 403.

import { MatrixError } from '../errors.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject } from '../protocol/types.js';
import { hierarchySummary, spaceChildren } from '../room/hierarchy.js';
import { listPublicRooms } from '../room/public-rooms.js';
import type { RoomState } from '../room/room-state.js';
import type { Store } from '../store/types.js';
import { serverAclAllows } from './acl.js';

export interface FederationDirectoryDeps {
  store: Store;
  currentState: (roomId: string) => Promise<RoomState | null>;
}

export interface FederationPublicRoomsQuery {
  limit?: number;
  since?: string;
  term?: string;
  roomTypes?: Array<string | null>;
}

export class FederationDirectory {
  constructor(private readonly d: FederationDirectoryDeps) {}

  publicRooms(q: FederationPublicRoomsQuery): Promise<JsonObject> {
    const limit = q.limit === undefined || !Number.isSafeInteger(q.limit) || q.limit <= 0 ? 100 : Math.min(q.limit, 500);
    return listPublicRooms(this.d.store, this.d.currentState, { limit, since: q.since, term: q.term, roomTypes: q.roomTypes });
  }

  async hierarchy(origin: string, roomId: string, suggestedOnly: boolean): Promise<JsonObject> {
    const state = await this.d.currentState(roomId);
    if (!state || !this.serverMayView(origin, state)) throw new MatrixError('M_NOT_FOUND', 'Unknown room, or your server may not view it');
    if (!serverAclAllows(state.content('m.room.server_acl'), origin)) throw new MatrixError('M_FORBIDDEN', 'Server is banned from this room by its server ACL');
    const children = spaceChildren(state).filter((c) => !suggestedOnly || c.suggested);
    const room = hierarchySummary(roomId, state);
    room.children_state = children.map((c) => c.stripped);
    const listed: JsonObject[] = [];
    const inaccessible: string[] = [];
    for (const c of children) {
      const childState = await this.d.currentState(c.roomId);
      if (!childState) continue;
      if (this.serverMayView(origin, childState) && serverAclAllows(childState.content('m.room.server_acl'), origin)) listed.push(hierarchySummary(c.roomId, childState));
      else inaccessible.push(c.roomId);
    }
    return { room, children: listed, inaccessible_children: inaccessible };
  }

  private serverMayView(origin: string, state: RoomState): boolean {
    const rule = state.joinRule();
    if (rule === 'public' || rule === 'knock' || rule === 'knock_restricted' || rule === 'restricted') return true;
    if (state.content('m.room.history_visibility')?.history_visibility === 'world_readable') return true;
    return state.all().some(
      (e) => e.pdu.type === 'm.room.member' && e.pdu.state_key !== undefined && serverNameOf(e.pdu.state_key) === origin && (e.pdu.content.membership === 'join' || e.pdu.content.membership === 'invite'),
    );
  }
}
