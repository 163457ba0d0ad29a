// The public room directory (/publicRooms, /directory/list/room) and user directory search.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { requiredPowerLevel } from '../../protocol/power-levels.js';
import { listPublicRooms, type PublicRoomsQuery } from '../../room/public-rooms.js';

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

async function publicRooms(s: ApiServices, _ctx: Ctx, q: PublicRoomsQuery): Promise<JsonObject> {
  if (q.server && q.server !== s.serverName) {
    throw new MatrixError('M_UNKNOWN', 'Querying other servers needs federation, which is not enabled yet');
  }
  return listPublicRooms(s.store, (id) => s.roomInput.currentState(id), q);
}
