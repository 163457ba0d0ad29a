// Deprecated endpoints that real clients and bots still call (docs/api.md marks them so):
// GET /events, GET /initialSync and GET /rooms/{roomId}/initialSync (src/sync/legacy-events.ts
// builds their responses), and POST /rooms/{roomId}/send/{eventType} without a transaction ID.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import { parse, param, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { MAX_TIMELINE_LIMIT } from '../../sync/filter.js';
import { parseToken } from '../../sync/token.js';

// As /sync: without a timeout the call does not wait. (Synapse waits 30 s; old clients always
// send one, and a bare request answering at once keeps probes and route checks cheap.)
const DEFAULT_EVENTS_TIMEOUT_MS = 0;

type LegacyRouteDeps = Pick<ApiServices, 'legacy' | 'rooms' | 'presence' | 'maxSyncTimeoutMs'>;

export function legacyRoutes(r: ClientRoutes, s: LegacyRouteDeps): void {
  r.authed('get', '/events', async (ctx, auth) => {
    const fromRaw = queryString(ctx, 'from');
    // The old stream's pagination `limit` (Synapse's PaginationConfig): a count, so anything but
    // a non-negative integer is a 400. The stream is not cut by it: a cut stream would need
    // tokens inside a /sync position, and skipping events there would lose them.
    const limit = queryString(ctx, 'limit');
    if (limit !== undefined && !/^\d{1,15}$/.test(limit)) throw new MatrixError('M_INVALID_PARAM', 'limit must be a non-negative integer');
    ctx.body = await s.legacy.events(auth, {
      roomId: queryString(ctx, 'room_id'),
      from: fromRaw ? parseToken(fromRaw, 'from') : undefined,
      timeoutMs: queryInt(ctx, 'timeout', DEFAULT_EVENTS_TIMEOUT_MS, 0, s.maxSyncTimeoutMs),
      signal: ctx.signal,
    });
  });

  r.authed('get', '/initialSync', async (ctx, auth) => {
    ctx.body = await s.legacy.initialSync(auth, queryInt(ctx, 'limit', 10, 0, MAX_TIMELINE_LIMIT), queryString(ctx, 'archived') === 'true');
  });

  r.authed('get', '/rooms/:roomId/initialSync', async (ctx, auth) => {
    ctx.body = await s.legacy.roomInitialSync(auth, param(ctx, 'roomId'), queryInt(ctx, 'limit', 10, 0, MAX_TIMELINE_LIMIT));
  });

  // The pre-r0 form of PUT .../send/{eventType}/{txnId}: no transaction ID, so a retry sends the
  // event again, as it always did.
  r.authed(
    'post',
    '/rooms/:roomId/send/:eventType',
    async (ctx, auth) => {
      const roomId = param(ctx, 'roomId');
      const type = parse(z.string().min(1).max(255), param(ctx, 'eventType'));
      const res = await s.rooms.send(auth, roomId, { type, content: body(ctx) as JsonObject });
      s.presence.active(auth.userId);
      ctx.body = { event_id: res.eventId };
    },
    undefined,
    'message',
  );

  // The pre-r0 form of PUT .../redact/{eventId}/{txnId}, likewise without a transaction ID.
  r.authed(
    'post',
    '/rooms/:roomId/redact/:eventId',
    async (ctx, auth) => {
      const req = parse(z.object({ reason: z.string().max(1024).optional() }).passthrough(), body(ctx));
      const res = await s.rooms.send(auth, param(ctx, 'roomId'), { type: 'm.room.redaction', content: req.reason ? { reason: req.reason } : {}, redacts: param(ctx, 'eventId') });
      ctx.body = { event_id: res.eventId };
    },
    undefined,
    'message',
  );
}
