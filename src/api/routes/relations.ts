// Relations (/relations), threads (/threads). Bundled aggregations are added by EventFormatter.

import { MatrixError } from '../../errors.js';
import type { Ctx } from '../middleware.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { StoredEvent } from '../../store/types.js';
import { parseToken, serializeToken } from '../../sync/token.js';

export function relationRoutes(r: ClientRoutes, s: ApiServices): void {
  const relations = async (ctx: Ctx, auth: { userId: string; deviceId: string }) => {
    const roomId = param(ctx, 'roomId');
    const eventId = param(ctx, 'eventId');
    const parent = await s.store.rooms.getEvent(eventId);
    const [visibleParent] = parent && parent.roomId === roomId ? await s.visibility.filter(auth.userId, roomId, [parent]) : [];
    if (!visibleParent) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    const dir = queryString(ctx, 'dir') ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw new MatrixError('M_INVALID_PARAM', 'dir must be b or f');
    const limit = queryInt(ctx, 'limit', 50, 1, 1000);
    const from = queryString(ctx, 'from');
    const to = queryString(ctx, 'to');
    const toStream = to ? parseToken(to, 'to').stream : undefined;
    let page = await s.store.relations.getRelations({
      roomId,
      eventId,
      relType: ctx.params.relType,
      eventType: ctx.params.eventType,
      dir,
      from: from ? parseToken(from, 'from').stream : undefined,
      limit,
    });
    if (toStream !== undefined) page = page.filter((p) => (dir === 'b' ? p.stream > toStream : p.stream <= toStream));
    const events = await s.store.rooms.getEvents(page.map((p) => p.eventId));
    const ordered = page.map((p) => events.get(p.eventId)).filter((e): e is StoredEvent => !!e);
    const visible = await s.visibility.filter(auth.userId, roomId, ordered);
    const out: JsonObject = { chunk: await s.formatter.format(visible, auth) };
    // The store's `from` is exclusive in both directions, so the last stream continues the page.
    if (page.length === limit) out.next_batch = serializeToken({ stream: page[page.length - 1].stream, ephemeral: 0 });
    if (from) out.prev_batch = from;
    return out;
  };
  const v1 = ['v1'];
  r.authed('get', '/rooms/:roomId/relations/:eventId', async (ctx, auth) => void (ctx.body = await relations(ctx, auth)), v1);
  r.authed('get', '/rooms/:roomId/relations/:eventId/:relType', async (ctx, auth) => void (ctx.body = await relations(ctx, auth)), v1);
  r.authed('get', '/rooms/:roomId/relations/:eventId/:relType/:eventType', async (ctx, auth) => void (ctx.body = await relations(ctx, auth)), v1);

  r.authed(
    'get',
    '/rooms/:roomId/threads',
    async (ctx, auth) => {
      const roomId = param(ctx, 'roomId');
      const mine = await s.store.rooms.getMembership(roomId, auth.userId);
      if (!mine && !(await s.visibility.canPeek(auth.userId, roomId))) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
      const include = queryString(ctx, 'include') ?? 'all';
      if (include !== 'all' && include !== 'participated') throw new MatrixError('M_INVALID_PARAM', 'include must be all or participated');
      const limit = queryInt(ctx, 'limit', 50, 1, 100);
      const from = queryString(ctx, 'from');
      const threads = await s.store.relations.getThreads(roomId, {
        participant: include === 'participated' ? auth.userId : undefined,
        before: from ? parseToken(from, 'from').stream : undefined,
        limit,
      });
      const roots = await s.store.rooms.getEvents(threads.map((t) => t.rootEventId));
      const ordered = threads.map((t) => roots.get(t.rootEventId)).filter((e): e is StoredEvent => !!e);
      const visible = await s.visibility.filter(auth.userId, roomId, ordered);
      const out: JsonObject = { chunk: await s.formatter.format(visible, auth) };
      if (threads.length === limit) out.next_batch = serializeToken({ stream: threads[threads.length - 1].latestStream, ephemeral: 0 });
      ctx.body = out;
    },
    v1,
  );
}
