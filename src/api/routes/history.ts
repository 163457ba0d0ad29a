// History: /messages, /context and single-event fetches, all filtered by history visibility.

import { MatrixError } from '../../errors.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { StoredEvent } from '../../store/types.js';
import { compileFilter, eventMatches, parseFilterParam } from '../../sync/filter.js';
import { parsePaginationToken, serializeToken, serializeTopoToken } from '../../sync/token.js';

export function historyRoutes(r: ClientRoutes, s: ApiServices): void {
  r.authed('get', '/rooms/:roomId/messages', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const dir = queryString(ctx, 'dir') ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw new MatrixError('M_INVALID_PARAM', 'dir must be b or f');
    const limit = queryInt(ctx, 'limit', 10, 0, 1000);
    const filterText = queryString(ctx, 'filter');
    const filter = filterText ? parseFilterParam(filterText) : undefined;
    const lazy = filter?.lazy_load_members === true;
    const roomFilter = compileFilter({ room: { timeline: filter } });

    const mine = await assertCanReadRoom(s, auth.userId, roomId);
    // A member who left or was banned sees the room as it was when they went: nothing after
    // their leave, whatever the history visibility (world_readable included), as for /sync.
    const gone = mine && (mine.membership === 'leave' || mine.membership === 'ban');
    const head = gone ? Math.min(mine.stream, s.store.currentPosition()) : s.store.currentPosition();
    // Paged in the room's topological (depth, stream) order, as the spec asks. Stream tokens
    // (from /sync) bound by stream position, the topological tokens we hand out here by
    // (depth, stream); nothing above the completed stream position is ever read.
    const fromRaw = queryString(ctx, 'from');
    const fromTok = fromRaw ? parsePaginationToken(fromRaw, 'from') : undefined;
    const from = fromTok && !fromTok.topo ? Math.min(fromTok.stream, head) : dir === 'b' ? head : 0;
    const toRaw = queryString(ctx, 'to');
    const toTok = toRaw ? parsePaginationToken(toRaw, 'to') : undefined;

    const query = () => s.store.rooms.getRoomEvents({
      roomId,
      dir,
      from,
      fromTopo: fromTok?.topo,
      to: toTok && !toTok.topo ? toTok.stream : undefined,
      toTopo: toTok?.topo,
      maxStream: head,
      order: 'topological',
      limit,
      types: roomFilter.timeline.types,
      notTypes: roomFilter.timeline.notTypes,
      senders: roomFilter.timeline.senders,
      notSenders: roomFilter.timeline.notSenders,
    });
    let page = await query();
    // Paged back past the oldest event here: a room joined over federation may have history
    // before it on other servers (fetched once, then paged like the rest).
    if (dir === 'b' && page.length < limit && !gone && (await s.rooms.backfill(roomId, limit)) > 0) page = await query();
    const visible = await s.visibility.filter(auth.userId, roomId, page);
    const res: JsonObject = {
      start: fromRaw ?? serializeToken({ stream: from, ephemeral: 0 }),
      chunk: await s.formatter.format(visible, auth, roomFilter.format),
    };
    // `end` is omitted at the end of history: clients treat its absence as "nothing more".
    const last = page[page.length - 1];
    if ((page.length === limit && limit > 0) || (dir === 'f' && last)) {
      // "b from P" includes P, so the next backward page starts just below the last event.
      res.end = serializeTopoToken({ depth: last.pdu.depth, stream: dir === 'b' ? last.stream - 1 : last.stream });
    }
    if (lazy) res.state = await memberStateFor(s, roomId, visible, auth);
    ctx.body = res;
  });

  r.authed('get', '/rooms/:roomId/context/:eventId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    // As for /messages: a user who may not read the room at all is refused for the room, before
    // any event is looked up (so this says nothing about the event); 404 is for an event that is
    // unknown or invisible to a user who may read the room.
    await assertCanReadRoom(s, auth.userId, roomId);
    const ev = await visibleEvent(s, auth.userId, roomId, param(ctx, 'eventId'));
    const limit = queryInt(ctx, 'limit', 10, 0, 100);
    const filterText = queryString(ctx, 'filter');
    const rawFilter = filterText ? parseFilterParam(filterText) : undefined;
    const f = compileFilter({ room: { timeline: rawFilter } });
    const before = Math.floor(limit / 2);
    const after = limit - before;
    const head = s.store.currentPosition();
    const at = { depth: ev.pdu.depth, stream: ev.stream };
    const [b, a] = await Promise.all([
      s.store.rooms.getRoomEvents({ roomId, dir: 'b', from: head, fromTopo: { ...at, stream: at.stream - 1 }, order: 'topological', limit: before }),
      s.store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, fromTopo: at, maxStream: head, order: 'topological', limit: after }),
    ]);
    const keep = (list: StoredEvent[]) => list.filter((e) => eventMatches(f.timeline, e.pdu.type, e.pdu.sender));
    const [vb, va] = await Promise.all([
      s.visibility.filter(auth.userId, roomId, keep(b)),
      s.visibility.filter(auth.userId, roomId, keep(a)),
    ]);
    const lastEv = a[a.length - 1] ?? ev;
    let state = (await s.store.rooms.getStateAtEvent(lastEv.eventId, 'after')) ?? (await s.store.rooms.getStateAt(roomId, lastEv.stream));
    if (rawFilter?.lazy_load_members === true) {
      // Lazy loading (spec): only the member events of the senders of the returned events.
      const senders = new Set([ev, ...vb, ...va].map((e) => e.pdu.sender));
      state = state.filter((e) => e.type !== 'm.room.member' || senders.has(e.stateKey));
    }
    const stateEvents = await s.store.rooms.getEvents(state.map((e) => e.eventId));
    const firstEv = b[b.length - 1] ?? ev;
    ctx.body = {
      event: (await s.formatter.format([ev], auth))[0],
      events_before: await s.formatter.format(vb, auth),
      events_after: await s.formatter.format(va, auth),
      start: serializeTopoToken({ depth: firstEv.pdu.depth, stream: firstEv.stream - 1 }),
      end: serializeTopoToken({ depth: lastEv.pdu.depth, stream: lastEv.stream }),
      state: await s.formatter.format([...stateEvents.values()].sort((x, y) => x.stream - y.stream), auth),
    };
  });

  r.authed('get', '/rooms/:roomId/event/:eventId', async (ctx, auth) => {
    const ev = await visibleEvent(s, auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'));
    ctx.body = (await s.formatter.format([ev], auth))[0];
  });
}

/** The user's membership; 403 when they have none and the room is not world-readable to them. */
async function assertCanReadRoom(s: ApiServices, userId: string, roomId: string) {
  const mine = await s.store.rooms.getMembership(roomId, userId);
  if (!mine && !(await s.visibility.canPeek(userId, roomId))) {
    throw new MatrixError('M_FORBIDDEN', 'You are not allowed to view this room');
  }
  return mine;
}

async function visibleEvent(s: ApiServices, userId: string, roomId: string, eventId: string): Promise<StoredEvent> {
  const ev = await s.store.rooms.getEvent(eventId);
  // Unknown, elsewhere, or invisible all look the same, so existence does not leak.
  if (!ev || ev.roomId !== roomId || ev.stream > s.store.currentPosition()) throw new MatrixError('M_NOT_FOUND', 'Event not found');
  const [visible] = await s.visibility.filter(userId, roomId, [ev]);
  if (!visible) throw new MatrixError('M_NOT_FOUND', 'Event not found');
  return ev;
}

/** Member events of the senders in a page, for lazy-loading clients. */
async function memberStateFor(
  s: ApiServices,
  roomId: string,
  events: StoredEvent[],
  viewer: { userId: string; deviceId: string },
): Promise<JsonObject[]> {
  const senders = new Set(events.map((e) => e.pdu.sender));
  const state = await s.store.rooms.getCurrentState(roomId);
  const ids = state.filter((e) => e.type === 'm.room.member' && senders.has(e.stateKey)).map((e) => e.eventId);
  const found = await s.store.rooms.getEvents(ids);
  return s.formatter.format([...found.values()], viewer);
}
