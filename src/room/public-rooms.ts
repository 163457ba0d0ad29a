// The public room directory's listing (rooms published with visibility "public"), shared by the
// client API's /publicRooms and federation's /publicRooms so both list the same rooms the same
// way: most joined members first, then by room ID; a search term matches name, topic, room ID
// or an advertised alias; `since` tokens are offsets ("o<n>").

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import type { RoomState } from './room-state.js';
import { advertisedAliases, roomSummary } from './room-summary.js';

export interface PublicRoomsQuery {
  limit: number;
  since?: string;
  server?: string;
  term?: string;
  /** Only rooms whose type is listed; null in the list matches rooms without a type. */
  roomTypes?: Array<string | null>;
  /** The rooms to list instead of the main directory (an application service's network list). */
  roomIds?: string[];
}

export async function listPublicRooms(store: Store, currentState: (roomId: string) => Promise<RoomState | null>, q: PublicRoomsQuery): Promise<JsonObject> {
  let offset = 0;
  if (q.since !== undefined) {
    const m = /^o(\d{1,9})$/.exec(q.since);
    if (!m) throw new MatrixError('M_INVALID_PARAM', 'Invalid since token');
    offset = Number(m[1]);
  }
  const ids = q.roomIds ?? (await store.rooms.listPublicRooms());
  const states = await Promise.all(ids.map(async (id) => ({ id, state: await currentState(id) })));
  const term = q.term?.toLowerCase().trim();
  const types = q.roomTypes && q.roomTypes.length > 0 ? new Set(q.roomTypes) : undefined;
  const rooms = states
    .flatMap(({ id, state }) => {
      if (!state) return [];
      const chunk = roomSummary(id, state);
      if (types && !types.has(typeof chunk.room_type === 'string' ? chunk.room_type : null)) return [];
      if (term) {
        const haystack = [chunk.name, chunk.topic, chunk.room_id, ...advertisedAliases(state)];
        if (!haystack.some((v) => typeof v === 'string' && v.toLowerCase().includes(term))) return [];
      }
      return [chunk];
    })
    .sort((a, b) => (b.num_joined_members as number) - (a.num_joined_members as number) || String(a.room_id).localeCompare(String(b.room_id)));
  const page = rooms.slice(offset, offset + q.limit);
  const out: JsonObject = { chunk: page, total_room_count_estimate: rooms.length };
  if (offset + q.limit < rooms.length) out.next_batch = `o${offset + q.limit}`;
  if (offset > 0) out.prev_batch = `o${Math.max(0, offset - q.limit)}`;
  return out;
}
