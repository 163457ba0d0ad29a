// Relations (/relations) and threads (/threads): src/room/relations.ts decides what a user sees;
// bundled aggregations are added by EventFormatter.

import { MatrixError } from '../../errors.js';
import type { Ctx } from '../middleware.js';
import { param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { RelationPage } from '../../room/relations.js';
import { parseToken, serializeToken } from '../../sync/token.js';

type RelationRouteDeps = Pick<ApiServices, 'relations' | 'formatter'>;

export function relationRoutes(r: ClientRoutes, s: RelationRouteDeps): void {
  const render = async (page: RelationPage, auth: { userId: string; deviceId: string }): Promise<JsonObject> => {
    const out: JsonObject = { chunk: await s.formatter.format(page.events, auth) };
    if (page.next !== undefined) out.next_batch = serializeToken({ stream: page.next, ephemeral: 0 });
    return out;
  };
  const relations = async (ctx: Ctx, auth: { userId: string; deviceId: string }) => {
    const dir = queryString(ctx, 'dir') ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw new MatrixError('M_INVALID_PARAM', 'dir must be b or f');
    const from = queryString(ctx, 'from');
    const to = queryString(ctx, 'to');
    const page = await s.relations.relations(auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'), {
      relType: ctx.params.relType,
      eventType: ctx.params.eventType,
      dir,
      from: from ? parseToken(from, 'from').stream : undefined,
      to: to ? parseToken(to, 'to').stream : undefined,
      limit: queryInt(ctx, 'limit', 50, 1, 1000),
    });
    const out = await render(page, auth);
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
      const include = queryString(ctx, 'include') ?? 'all';
      if (include !== 'all' && include !== 'participated') throw new MatrixError('M_INVALID_PARAM', 'include must be all or participated');
      const from = queryString(ctx, 'from');
      const page = await s.relations.threads(auth.userId, param(ctx, 'roomId'), {
        participatedOnly: include === 'participated',
        before: from ? parseToken(from, 'from').stream : undefined,
        limit: queryInt(ctx, 'limit', 50, 1, 100),
      });
      ctx.body = await render(page, auth);
    },
    v1,
  );
}
