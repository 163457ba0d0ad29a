// Receipts, read markers, notifications, tags, ignored users' effect, and content reports.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { ReceiptService } from '../../receipts/receipt-service.js';
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

export function chatRoutes(r: ClientRoutes, s: ApiServices & { receipts: ReceiptService }): void {
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
    const only = queryString(ctx, 'only');
    const records = await s.store.notifications.getNotifications(auth.userId, {
      before: from ? parseToken(from, 'from').stream : undefined,
      limit,
      onlyHighlight: only === 'highlight',
    });
    const found = await s.store.rooms.getEvents(records.map((n) => n.eventId));
    const present = records.filter((n) => found.has(n.eventId));
    const formatted = await s.formatter.format(present.map((n) => found.get(n.eventId)!), auth);
    const notifications: JsonObject[] = [];
    for (const [i, n] of present.entries()) {
      notifications.push({
        actions: n.actions as JsonObject[],
        event: formatted[i],
        // Rules carry no profile tag since device-scoped rules left the spec: null, not absent,
        // so clients that read the field find it.
        profile_tag: null,
        read: n.read,
        room_id: n.roomId,
        ts: n.ts,
      });
    }
    const out: JsonObject = { notifications };
    if (records.length === limit) out.next_token = serializeToken({ stream: records[records.length - 1].stream, ephemeral: 0 });
    ctx.body = out;
  });

  // Tags are room account data of type m.tag, which /sync already carries.
  const tagsOf = async (userId: string, roomId: string): Promise<Record<string, JsonObject>> => {
    const data = await s.store.userData.getAccountData(userId, roomId, 'm.tag');
    const tags = data?.tags;
    return tags && typeof tags === 'object' && !Array.isArray(tags) ? (tags as Record<string, JsonObject>) : {};
  };
  const selfRoom = async (userIdParam: string, userId: string, roomId: string) => {
    if (userIdParam !== userId) throw new MatrixError('M_FORBIDDEN', 'Cannot access tags of other users');
    if (!(await s.store.rooms.getMembership(roomId, userId))) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
  };
  r.authed('get', '/user/:userId/rooms/:roomId/tags', async (ctx, auth) => {
    await selfRoom(param(ctx, 'userId'), auth.userId, param(ctx, 'roomId'));
    ctx.body = { tags: await tagsOf(auth.userId, param(ctx, 'roomId')) };
  });
  const writeTags = async (userId: string, roomId: string, tags: Record<string, JsonObject>) => {
    const stream = await s.store.userData.setAccountData(userId, roomId, 'm.tag', { tags });
    s.notifier.publish({ stream, userIds: [userId] });
  };
  r.authed('put', '/user/:userId/rooms/:roomId/tags/:tag', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const tag = param(ctx, 'tag');
    if (Buffer.byteLength(tag) > 255) throw new MatrixError('M_INVALID_PARAM', 'Tag too long');
    await selfRoom(param(ctx, 'userId'), auth.userId, roomId);
    const req = parse(z.object({ order: z.number().min(0).max(1).optional() }).passthrough(), body(ctx));
    const tags = await tagsOf(auth.userId, roomId);
    tags[tag] = req.order !== undefined ? { order: req.order } : {};
    await writeTags(auth.userId, roomId, tags);
    ctx.body = {};
  });
  r.authed('delete', '/user/:userId/rooms/:roomId/tags/:tag', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    await selfRoom(param(ctx, 'userId'), auth.userId, roomId);
    const tags = await tagsOf(auth.userId, roomId);
    delete tags[param(ctx, 'tag')];
    await writeTags(auth.userId, roomId, tags);
    ctx.body = {};
  });

  const reportSchema = z.object({ reason: z.string().max(2048).optional(), score: z.number().int().min(-100).max(0).optional() }).passthrough();
  r.authed('post', '/rooms/:roomId/report/:eventId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const eventId = param(ctx, 'eventId');
    const req = parse(reportSchema, body(ctx));
    const ev = await s.store.rooms.getEvent(eventId);
    const [visible] = ev && ev.roomId === roomId ? await s.visibility.filter(auth.userId, roomId, [ev]) : [];
    // Same answer for "no such event" and "not yours to see" (spec: avoid leaking existence).
    if (!visible) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    await s.store.directory.addReport({ roomId, eventId, reporter: auth.userId, reason: req.reason ?? null, score: req.score ?? null, ts: s.now() });
    ctx.body = {};
  });
  r.authed('post', '/rooms/:roomId/report', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const req = parse(reportSchema, body(ctx));
    if (!(await s.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    await s.store.directory.addReport({ roomId, eventId: null, reporter: auth.userId, reason: req.reason ?? null, score: null, ts: s.now() });
    ctx.body = {};
  });

  r.authed('post', '/user_directory/search', async (ctx, auth) => {
    const req = valid(ctx, userSearchSchema);
    const limit = req.limit ?? 10;
    const found = await s.store.directory.searchUsers(auth.userId, req.search_term, limit);
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
