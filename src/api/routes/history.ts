// History: /messages, /context and single-event fetches. The rules (visibility, bounds, where a
// page ends) are src/room/history.ts's; this parses parameters and tokens and formats events.

import { MatrixError } from '../../errors.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import { compileFilter, parseFilterParam } from '../../sync/filter.js';
import { parsePaginationToken, serializeToken, serializeTopoToken } from '../../sync/token.js';

type HistoryDeps = Pick<ApiServices, 'history' | 'formatter'>;

export function historyRoutes(r: ClientRoutes, s: HistoryDeps): void {
  r.authed('get', '/rooms/:roomId/messages', async (ctx, auth) => {
    const dir = queryString(ctx, 'dir') ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw new MatrixError('M_INVALID_PARAM', 'dir must be b or f');
    const filterText = queryString(ctx, 'filter');
    const filter = filterText ? parseFilterParam(filterText) : undefined;
    const roomFilter = compileFilter({ room: { timeline: filter } });
    const fromRaw = queryString(ctx, 'from');
    const toRaw = queryString(ctx, 'to');
    const page = await s.history.messages(auth.userId, param(ctx, 'roomId'), {
      dir,
      limit: queryInt(ctx, 'limit', 10, 0, 1000),
      from: fromRaw ? parsePaginationToken(fromRaw, 'from') : undefined,
      to: toRaw ? parsePaginationToken(toRaw, 'to') : undefined,
      filter: roomFilter.timeline,
      lazyMembers: filter?.lazy_load_members === true,
    });
    ctx.body = {
      start: fromRaw ?? serializeToken({ stream: page.startStream, ephemeral: 0 }),
      chunk: await s.formatter.format(page.events, auth, roomFilter.format),
      ...(page.end ? { end: serializeTopoToken(page.end) } : {}),
      ...(page.memberState ? { state: await s.formatter.format(page.memberState, auth) } : {}),
    };
  });

  r.authed('get', '/rooms/:roomId/context/:eventId', async (ctx, auth) => {
    const filterText = queryString(ctx, 'filter');
    const rawFilter = filterText ? parseFilterParam(filterText) : undefined;
    const f = compileFilter({ room: { timeline: rawFilter } });
    const limit = queryInt(ctx, 'limit', 10, 0, 100);
    const w = await s.history.context(auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'), limit, f.timeline, rawFilter?.lazy_load_members === true);
    ctx.body = {
      event: (await s.formatter.format([w.event], auth))[0],
      events_before: await s.formatter.format(w.before, auth),
      events_after: await s.formatter.format(w.after, auth),
      start: serializeTopoToken(w.start),
      end: serializeTopoToken(w.end),
      state: await s.formatter.format(w.state, auth),
    };
  });

  r.authed('get', '/rooms/:roomId/event/:eventId', async (ctx, auth) => {
    const ev = await s.history.event(auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'));
    ctx.body = (await s.formatter.format([ev], auth))[0];
  });
}
