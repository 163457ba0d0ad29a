// Receipts, read markers, notifications, tags, content reports and the user directory search.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { parseToken, serializeToken } from '../../sync/token.js';

const receiptSchema = z.object({ thread_id: z.string().min(1).max(255).optional() }).passthrough();
const markersSchema = z
  .object({
    'm.fully_read': z.string().max(255).optional(),
    'm.read': z.string().max(255).optional(),
    'm.read.private': z.string().max(255).optional(),
  })
  .passthrough();

const userSearchSchema = z.object({ search_term: z.string().max(512), limit: z.number().int().min(1).max(50).optional() }).passthrough();

type ChatRouteDeps = Pick<ApiServices, 'receipts' | 'userData' | 'formatter'>;

export function chatRoutes(r: ClientRoutes, s: ChatRouteDeps): void {
  r.authed('post', '/rooms/:roomId/receipt/:receiptType/:eventId', async (ctx, auth) => {
    const type = param(ctx, 'receiptType');
    const roomId = param(ctx, 'roomId');
    const eventId = param(ctx, 'eventId');
    const req = parse(receiptSchema, body(ctx));
    if (type === 'm.fully_read') {
      await s.receipts.readMarkers(auth.userId, roomId, { fullyRead: eventId });
    } else if (type === 'm.read' || type === 'm.read.private') {
      await s.receipts.send(auth.userId, roomId, type, eventId, req.thread_id ?? null);
    } else {
      throw new MatrixError('M_INVALID_PARAM', `Unsupported receipt type ${type}`);
    }
    ctx.body = {};
  });

  r.authed('post', '/rooms/:roomId/read_markers', async (ctx, auth) => {
    const req = valid(ctx, markersSchema);
    await s.receipts.readMarkers(auth.userId, param(ctx, 'roomId'), {
      fullyRead: req['m.fully_read'],
      read: req['m.read'],
      readPrivate: req['m.read.private'],
    });
    ctx.body = {};
  }, { schema: markersSchema });

  r.authed('get', '/notifications', async (ctx, auth) => {
    const limit = queryInt(ctx, 'limit', 20, 1, 100);
    const from = queryString(ctx, 'from');
    const { page, full, last } = await s.userData.notifications(auth.userId, {
      before: from ? parseToken(from, 'from').stream : undefined,
      limit,
      onlyHighlight: queryString(ctx, 'only') === 'highlight',
    });
    const formatted = await s.formatter.format(page.map((n) => n.event), auth);
    const notifications: JsonObject[] = page.map(({ record: n }, i) => ({
      actions: n.actions as JsonObject[],
      event: formatted[i],
      // Rules carry no profile tag since device-scoped rules left the spec: null, not absent,
      // so clients that read the field find it.
      profile_tag: null,
      read: n.read,
      room_id: n.roomId,
      ts: n.ts,
    }));
    const out: JsonObject = { notifications };
    if (full && last !== undefined) out.next_token = serializeToken({ stream: last, ephemeral: 0 });
    ctx.body = out;
  });

  r.authed('get', '/user/:userId/rooms/:roomId/tags', async (ctx, auth) => {
    ctx.body = { tags: await s.userData.tags(param(ctx, 'userId'), auth.userId, param(ctx, 'roomId')) };
  });
  r.authed('put', '/user/:userId/rooms/:roomId/tags/:tag', async (ctx, auth) => {
    const req = parse(z.object({ order: z.number().min(0).max(1).optional() }).passthrough(), body(ctx));
    await s.userData.updateTag(param(ctx, 'userId'), auth.userId, param(ctx, 'roomId'), param(ctx, 'tag'), { order: req.order });
    ctx.body = {};
  });
  r.authed('delete', '/user/:userId/rooms/:roomId/tags/:tag', async (ctx, auth) => {
    await s.userData.updateTag(param(ctx, 'userId'), auth.userId, param(ctx, 'roomId'), param(ctx, 'tag'), null);
    ctx.body = {};
  });

  const reportSchema = z.object({ reason: z.string().max(2048).optional(), score: z.number().int().min(-100).max(0).optional() }).passthrough();
  r.authed('post', '/rooms/:roomId/report/:eventId', async (ctx, auth) => {
    const req = parse(reportSchema, body(ctx));
    await s.userData.reportEvent(auth.userId, param(ctx, 'roomId'), param(ctx, 'eventId'), req.reason ?? null, req.score ?? null);
    ctx.body = {};
  });
  r.authed('post', '/rooms/:roomId/report', async (ctx, auth) => {
    const req = parse(reportSchema, body(ctx));
    await s.userData.reportRoom(auth.userId, param(ctx, 'roomId'), req.reason ?? null);
    ctx.body = {};
  });

  r.authed('post', '/user_directory/search', async (ctx, auth) => {
    const req = valid(ctx, userSearchSchema);
    const limit = req.limit ?? 10;
    const found = await s.userData.searchUsers(auth.userId, req.search_term, limit);
    ctx.body = {
      limited: found.length > limit,
      results: found.slice(0, limit).map((u) => {
        const o: JsonObject = { user_id: u.userId };
        if (u.displayname !== null) o.display_name = u.displayname;
        if (u.avatarUrl !== null) o.avatar_url = u.avatarUrl;
        return o;
      }),
    };
  }, { schema: userSearchSchema });
}
