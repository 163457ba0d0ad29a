// The public summary of a room (the spec's room_summary / PublishedRoomsChunk fields), computed
// from its current state. Shared by /publicRooms and the space hierarchy so both agree.

import type { JsonObject } from '../protocol/types.js';
import type { RoomState } from './room-state.js';

export function roomSummary(roomId: string, state: RoomState): JsonObject {
  const str = (type: string, key: string): string | undefined => {
    const v = state.content(type)?.[key];
    return typeof v === 'string' ? v : undefined;
  };
  const out: JsonObject = {
    room_id: roomId,
    num_joined_members: state.joinedMembers().length,
    world_readable: str('m.room.history_visibility', 'history_visibility') === 'world_readable',
    guest_can_join: str('m.room.guest_access', 'guest_access') === 'can_join',
    join_rule: state.joinRule(),
  };
  const name = str('m.room.name', 'name');
  const topic = str('m.room.topic', 'topic');
  const avatar = str('m.room.avatar', 'url');
  const alias = str('m.room.canonical_alias', 'alias');
  const roomType = str('m.room.create', 'type');
  if (name) out.name = name;
  if (topic) out.topic = topic;
  if (avatar) out.avatar_url = avatar;
  if (alias) out.canonical_alias = alias;
  if (roomType) out.room_type = roomType;
  return out;
}

/** The room IDs a restricted join rule accepts members of (`allow` entries of type m.room_membership). */
export function allowedRoomIds(state: RoomState): string[] {
  const allow = state.content('m.room.join_rules')?.allow;
  if (!Array.isArray(allow)) return [];
  const out: string[] = [];
  for (const a of allow) {
    if (a && typeof a === 'object' && !Array.isArray(a)) {
      const entry = a as JsonObject;
      if (entry.type === 'm.room_membership' && typeof entry.room_id === 'string') out.push(entry.room_id);
    }
  }
  return out;
}

/** Every alias the room advertises: the canonical alias and its alt_aliases. */
export function advertisedAliases(state: RoomState): string[] {
  const c = state.content('m.room.canonical_alias');
  const out: string[] = [];
  if (typeof c?.alias === 'string') out.push(c.alias);
  if (Array.isArray(c?.alt_aliases)) for (const a of c.alt_aliases) if (typeof a === 'string') out.push(a);
  return out;
}
