// Typing notifications and presence.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import { parse, param, type ApiServices, type ClientRoutes } from '../routing.js';
import { presenceContent } from '../../ephemeral/presence.js';

const typingSchema = z.object({ typing: z.boolean(), timeout: z.number().int().min(0).optional() }).passthrough();
const presenceSchema = z
  .object({ presence: z.enum(['online', 'offline', 'unavailable']), status_msg: z.string().max(1024).nullable().optional() })
  .passthrough();

type EphemeralRouteDeps = Pick<ApiServices, 'ephemeral' | 'presence' | 'now'>;

export function ephemeralRoutes(r: ClientRoutes, s: EphemeralRouteDeps): void {
  r.authed('put', '/rooms/:roomId/typing/:userId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set typing for another user');
    const req = parse(typingSchema, body(ctx));
    await s.ephemeral.setTyping(auth.userId, roomId, req.typing, req.timeout ?? 30_000);
    ctx.body = {};
  });

  r.authed('put', '/presence/:userId/status', async (ctx, auth) => {
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set the presence of another user');
    const req = parse(presenceSchema, body(ctx));
    s.presence.setStatus(auth.userId, req.presence, req.status_msg);
    ctx.body = {};
  });

  r.authed('get', '/presence/:userId/status', async (ctx, auth) => {
    const rec = await s.ephemeral.presenceOf(auth.userId, param(ctx, 'userId'));
    ctx.body = rec ? presenceContent(rec, s.now()) : { presence: 'offline', currently_active: false };
  });
}
