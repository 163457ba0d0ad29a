// MSC2753 peeking (experimental.msc2753_peeking; src/sync/peeks.ts). Declared only when the
// feature is on: with it off these paths answer 404 M_UNRECOGNIZED like any unknown endpoint.

import { z } from 'zod';
import { body } from '../middleware.js';
import { param, parse, type ApiServices, type ClientRoutes } from '../routing.js';

const VERSIONS = ['v3', 'r0', 'unstable/org.matrix.msc2753'];
// `servers` (where to peek through) is accepted and unused: only local rooms can be peeked.
const peekSchema = z.object({ servers: z.array(z.string().max(255)).max(50).optional() }).passthrough();
const unpeekSchema = z.object({}).passthrough();

export function peekRoutes(r: ClientRoutes, s: Pick<ApiServices, 'peeks'>): void {
  const peeks = s.peeks;
  if (!peeks) return;
  r.authed('post', '/peek/:roomIdOrAlias', async (ctx, auth) => {
    parse(peekSchema, body(ctx));
    ctx.body = { room_id: await peeks.peek(auth.userId, auth.deviceId, param(ctx, 'roomIdOrAlias')) };
  }, { versions: VERSIONS });
  r.authed('post', '/rooms/:roomId/unpeek', async (ctx, auth) => {
    parse(unpeekSchema, body(ctx));
    await peeks.unpeek(auth.userId, auth.deviceId, param(ctx, 'roomId'));
    ctx.body = {};
  }, { versions: VERSIONS });
}
