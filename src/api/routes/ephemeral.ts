// Typing notifications and presence.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import { parse, param, type ApiServices, type ClientRoutes } from '../routing.js';
import { presenceContent } from '../../ephemeral/presence.js';
import { isValidUserId, serverNameOf } from '../../protocol/ids.js';

const typingSchema = z.object({ typing: z.boolean(), timeout: z.number().int().min(0).optional() }).passthrough();
const presenceSchema = z
  .object({ presence: z.enum(['online', 'offline', 'unavailable']), status_msg: z.string().max(1024).nullable().optional() })
  .passthrough();

export function ephemeralRoutes(r: ClientRoutes, s: ApiServices): void {
  r.authed('put', '/rooms/:roomId/typing/:userId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set typing for another user');
    const req = parse(typingSchema, body(ctx));
    const m = await s.store.rooms.getMembership(roomId, auth.userId);
    if (m?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    await s.typing.setTyping(roomId, auth.userId, req.typing, req.timeout ?? 30_000);
    ctx.body = {};
  });

  r.authed('put', '/presence/:userId/status', async (ctx, auth) => {
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set the presence of another user');
    const req = parse(presenceSchema, body(ctx));
    s.presence.setStatus(auth.userId, req.presence, req.status_msg);
    ctx.body = {};
  });

  r.authed('get', '/presence/:userId/status', async (ctx, auth) => {
    const userId = param(ctx, 'userId');
    if (!isValidUserId(userId)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user ID');
    // Users of other servers have no account here; what their server told us is served.
    const local = serverNameOf(userId) === s.serverName;
    if (local && !(await s.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'Unknown user');
    if (userId !== auth.userId) {
      const [mine, theirs] = await Promise.all([
        s.store.rooms.getRoomsForUser(auth.userId, ['join']),
        s.store.rooms.getRoomsForUser(userId, ['join']),
      ]);
      const shared = new Set(mine.map((m) => m.roomId));
      if (!theirs.some((m) => shared.has(m.roomId))) {
        throw new MatrixError('M_FORBIDDEN', 'You do not share a room with this user');
      }
    }
    const rec = s.presence.get(userId);
    ctx.body = rec ? presenceContent(rec, s.now()) : { presence: 'offline', currently_active: false };
  });
}
