// History: /messages, /context and single-event fetches, all filtered by history visibility.

import { MatrixError } from '../../errors.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { StoredEvent } from '../../store/types.js';
import { compileFilter, eventMatches, parseFilterParam } from '../../sync/filter.js';
import { parseToken, serializeToken } from '../../sync/token.js';

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

    const mine = await s.store.rooms.getMembership(roomId, auth.userId);
    if (!mine && !(await s.visibility.canPeek(auth.userId, roomId))) {
      throw new MatrixError('M_FORBIDDEN', 'You are not allowed to view this room');
    }
    const head = s.store.currentPosition();
    const fromRaw = queryString(ctx, 'from');
    const from = Math.min(fromRaw ? parseToken(fromRaw, 'from').stream : dir === 'b' ? head : 0, head);
    const toRaw = queryString(ctx, 'to');
    const toGiven = toRaw ? parseToken(toRaw, 'to').stream : undefined;
    // Forward paging never reads past the completed position: later events may still be in flight.
    const to = dir === 'f' ? Math.min(toGiven ?? head, head) : toGiven;

    const page = await s.store.rooms.getRoomEvents({
      roomId,
      dir,
      from,
      to,
      limit,
      types: roomFilter.timeline.types,
      notTypes: roomFilter.timeline.notTypes,
      senders: roomFilter.timeline.senders,
      notSenders: roomFilter.timeline.notSenders,
    });
    const visible = await s.visibility.filter(auth.userId, roomId, page);
    const res: JsonObject = {
      start: fromRaw ?? serializeToken({ stream: from, ephemeral: 0 }),
      chunk: await s.formatter.format(visible, auth, roomFilter.format),
    };
    // `end` is omitted at the end of history: clients treat its absence as "nothing more".
    if (page.length === limit && limit > 0) {
      const last = page[page.length - 1].stream;
      res.end = serializeToken({ stream: dir === 'b' ? last - 1 : last, ephemeral: 0 });
    } else if (dir === 'f' && page.length > 0) {
      res.end = serializeToken({ stream: page[page.length - 1].stream, ephemeral: 0 });
    }
    if (lazy) res.state = await memberStateFor(s, roomId, visible, auth);
    ctx.body = res;
  });

  r.authed('get', '/rooms/:roomId/context/:eventId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const ev = await visibleEvent(s, auth.userId, roomId, param(ctx, 'eventId'));
    const limit = queryInt(ctx, 'limit', 10, 0, 100);
    const filterText = queryString(ctx, 'filter');
    const f = compileFilter({ room: { timeline: filterText ? parseFilterParam(filterText) : undefined } });
    const before = Math.floor(limit / 2);
    const after = limit - before;
    const [b, a] = await Promise.all([
      s.store.rooms.getRoomEvents({ roomId, dir: 'b', from: ev.stream - 1, limit: before }),
      s.store.rooms.getRoomEvents({ roomId, dir: 'f', from: ev.stream, limit: after, to: s.store.currentPosition() }),
    ]);
    const keep = (list: StoredEvent[]) => list.filter((e) => eventMatches(f.timeline, e.pdu.type, e.pdu.sender));
    const [vb, va] = await Promise.all([
      s.visibility.filter(auth.userId, roomId, keep(b)),
      s.visibility.filter(auth.userId, roomId, keep(a)),
    ]);
    const state = await s.store.rooms.getStateAt(roomId, (a[a.length - 1] ?? ev).stream);
    const stateEvents = await s.store.rooms.getEvents(state.map((e) => e.eventId));
    ctx.body = {
      event: (await s.formatter.format([ev], auth))[0],
      events_before: await s.formatter.format(vb, auth),
      events_after: await s.formatter.format(va, auth),
      start: serializeToken({ stream: (b[b.length - 1]?.stream ?? ev.stream) - 1, ephemeral: 0 }),
      end: serializeToken({ stream: a[a.length - 1]?.stream ?? ev.stream, ephemeral: 0 }),
      state: await s.formatter.format([...stateEvents.values()].sort((x, y) => x.stream - y.stream), auth),
    };
  });

  r.authed('get', '/rooms/:roomId/event/:eventId', async (ctx, auth) => {
    const ev = await visibleEvent(s, auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'));
    ctx.body = (await s.formatter.format([ev], auth))[0];
  });
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
