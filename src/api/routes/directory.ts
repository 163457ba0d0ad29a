// The public room directory (/publicRooms, /directory/list/room) and user directory search.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { requiredPowerLevel } from '../../protocol/power-levels.js';
import { advertisedAliases, roomSummary } from '../../room/room-summary.js';

// Clients send null for "not given" (matrix-js-sdk sends since: null on the first page).
const publicRoomsSchema = z
  .object({
    limit: z.number().int().min(0).nullish(),
    since: z.string().max(64).nullish(),
    server: z.string().max(255).nullish(),
    include_all_networks: z.boolean().nullish(),
    third_party_instance_id: z.string().max(255).nullish(),
    filter: z
      .object({
        generic_search_term: z.string().max(512).nullish(),
        // null stands for rooms without a type (not spaces).
        room_types: z.array(z.string().max(255).nullable()).max(100).nullish(),
      })
      .passthrough()
      .nullish(),
  })
  .passthrough();

export function directoryRoutes(r: ClientRoutes, s: ApiServices): void {
  r.route('get', '/publicRooms', async (ctx) => {
    // Spec: GET may be called without auth; a server may require it. We serve both.
    ctx.body = await publicRooms(s, ctx, {
      limit: queryInt(ctx, 'limit', 100, 0, 500),
      since: queryString(ctx, 'since'),
      server: queryString(ctx, 'server'),
    });
  });
  r.authed('post', '/publicRooms', async (ctx) => {
    const req = valid(ctx, publicRoomsSchema);
    ctx.body = await publicRooms(s, ctx, {
      limit: Math.min(req.limit ?? 100, 500),
      since: req.since ?? undefined,
      server: req.server ?? undefined,
      term: req.filter?.generic_search_term ?? undefined,
      roomTypes: req.filter?.room_types ?? undefined,
    });
  }, { schema: publicRoomsSchema });

  r.route('get', '/directory/list/room/:roomId', async (ctx) => {
    const roomId = param(ctx, 'roomId');
    if (!(await s.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    ctx.body = { visibility: await s.store.rooms.getRoomVisibility(roomId) };
  });
  r.authed('put', '/directory/list/room/:roomId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const req = parse(z.object({ visibility: z.enum(['public', 'private']) }).passthrough(), body(ctx));
    const state = await s.roomInput.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    const user = await s.store.accounts.getUser(auth.userId);
    // Whoever may change the room's canonical alias may publish it; server admins always may.
    const needed = requiredPowerLevel('m.room.canonical_alias', '', state.content('m.room.power_levels'));
    if (!user?.admin && (state.membership(auth.userId) !== 'join' || state.powerLevel(auth.userId) < needed)) {
      throw new MatrixError('M_FORBIDDEN', 'You need to be a room moderator to publish it');
    }
    await s.store.rooms.setRoomVisibility(roomId, req.visibility);
    ctx.body = {};
  });
}

interface PublicRoomsQuery {
  limit: number;
  since?: string;
  server?: string;
  term?: string;
  /** Only rooms whose type is listed; null in the list matches rooms without a type. */
  roomTypes?: Array<string | null>;
}

async function publicRooms(s: ApiServices, _ctx: Ctx, q: PublicRoomsQuery): Promise<JsonObject> {
  if (q.server && q.server !== s.serverName) {
    throw new MatrixError('M_UNKNOWN', 'Querying other servers needs federation, which is not enabled yet');
  }
  let offset = 0;
  if (q.since !== undefined) {
    const m = /^o(\d{1,9})$/.exec(q.since);
    if (!m) throw new MatrixError('M_INVALID_PARAM', 'Invalid since token');
    offset = Number(m[1]);
  }
  const ids = await s.store.rooms.listPublicRooms();
  const states = await Promise.all(ids.map(async (id) => ({ id, state: await s.roomInput.currentState(id) })));
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
