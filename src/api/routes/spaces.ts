// GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spaces). The walk is src/room/hierarchy.ts.

import { MatrixError } from '../../errors.js';
import { param, queryString, type ApiServices, type ClientRoutes } from '../routing.js';
import { DEFAULT_MAX_DEPTH } from '../../room/hierarchy.js';

/** An optional integer parameter at least `min`; anything else is M_INVALID_PARAM (the spec's 400). */
function optionalInt(raw: string | undefined, name: string, min: number): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^-?\d{1,15}$/.test(raw) || Number(raw) < min) throw new MatrixError('M_INVALID_PARAM', `${name} must be an integer >= ${min}`);
  return Number(raw);
}

type SpaceRouteDeps = Pick<ApiServices, 'hierarchy'>;

export function spaceRoutes(r: ClientRoutes, s: SpaceRouteDeps): void {
  r.authed('get', '/rooms/:roomId/hierarchy', async (ctx, auth) => {
    const suggested = queryString(ctx, 'suggested_only');
    if (suggested !== undefined && suggested !== 'true' && suggested !== 'false') {
      throw new MatrixError('M_INVALID_PARAM', 'suggested_only must be true or false');
    }
    const maxDepth = optionalInt(queryString(ctx, 'max_depth'), 'max_depth', 0);
    ctx.body = await s.hierarchy.hierarchy({
      roomId: param(ctx, 'roomId'),
      userId: auth.userId,
      limit: optionalInt(queryString(ctx, 'limit'), 'limit', 1),
      maxDepth: maxDepth === undefined ? undefined : Math.min(maxDepth, DEFAULT_MAX_DEPTH),
      suggestedOnly: suggested === undefined ? undefined : suggested === 'true',
      from: queryString(ctx, 'from'),
    });
  }, ['v1']);
}
