// The public room directory (/publicRooms, /directory/list/room) and user directory search.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { requiredPowerLevel } from '../../protocol/power-levels.js';

const publicRoomsSchema = z
  .object({
    limit: z.number().int().min(0).optional(),
    since: z.string().max(64).optional(),
    server: z.string().max(255).optional(),
    filter: z.object({ generic_search_term: z.string().max(512).optional() }).passthrough().optional(),
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
      since: req.since,
      server: req.server,
      term: req.filter?.generic_search_term,
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
  const chunks = await Promise.all(ids.map((id) => summary(s, id)));
  const term = q.term?.toLowerCase().trim();
  const rooms = chunks
    .filter((c): c is JsonObject => c !== null)
    .filter((c) => !term || [c.name, c.topic, c.canonical_alias, c.room_id].some((v) => typeof v === 'string' && v.toLowerCase().includes(term)))
    .sort((a, b) => (b.num_joined_members as number) - (a.num_joined_members as number) || String(a.room_id).localeCompare(String(b.room_id)));
  const page = rooms.slice(offset, offset + q.limit);
  const out: JsonObject = { chunk: page, total_room_count_estimate: rooms.length };
  if (offset + q.limit < rooms.length) out.next_batch = `o${offset + q.limit}`;
  if (offset > 0) out.prev_batch = `o${Math.max(0, offset - q.limit)}`;
  return out;
}

async function summary(s: ApiServices, roomId: string): Promise<JsonObject | null> {
  const state = await s.roomInput.currentState(roomId);
  if (!state) return null;
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
