// Client-Server API routes for application services: AS room directories
// (/directory/list/appservice/{networkId}/{roomId}) and third-party lookups (/thirdparty/*),
// which src/appservice proxies to the ASes that provide each protocol.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { param, parse, type ApiServices, type ClientRoutes } from '../routing.js';

const visibilitySchema = z.object({ visibility: z.enum(['public', 'private']) }).passthrough();

/** The query parameters passed on to the AS (the client's fields), minus the token. */
function fields(ctx: Ctx): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.query)) {
    if (k === 'access_token' || v === undefined) continue;
    const value = Array.isArray(v) ? v[0] : v;
    if (value !== undefined) out[k] = value;
  }
  return out;
}

type AppServiceRouteDeps = Pick<ApiServices, 'appServices'>;

export function appServiceRoutes(r: ClientRoutes, s: AppServiceRouteDeps): void {
  const list = async (ctx: Ctx, appServiceId: string | undefined, listed: boolean) => {
    if (appServiceId === undefined) throw new MatrixError('M_FORBIDDEN', 'Only application services can publish rooms in their room lists', {}, 403);
    await s.appServices.setRoomListed(appServiceId, param(ctx, 'networkId'), param(ctx, 'roomId'), listed);
    ctx.body = {};
  };
  r.authed('put', '/directory/list/appservice/:networkId/:roomId', async (ctx, auth) => {
    const req = parse(visibilitySchema, body(ctx));
    await list(ctx, auth.appServiceId, req.visibility === 'public');
  });
  r.authed('delete', '/directory/list/appservice/:networkId/:roomId', async (ctx, auth) => {
    await list(ctx, auth.appServiceId, false);
  });

  r.authed('post', '/appservice/:appserviceId/ping', async (ctx, auth) => {
    const req = parse(z.object({ transaction_id: z.string().max(255).optional() }).passthrough(), body(ctx));
    ctx.body = await s.appServices.ping(auth.appServiceId, param(ctx, 'appserviceId'), req.transaction_id);
  }, ['v1']);

  r.authed('get', '/thirdparty/protocols', async (ctx) => {
    ctx.body = await s.appServices.protocols();
  });
  r.authed('get', '/thirdparty/protocol/:protocol', async (ctx) => {
    const p = await s.appServices.protocol(param(ctx, 'protocol'));
    if (!p) throw new MatrixError('M_NOT_FOUND', 'Unknown protocol', {}, 404);
    ctx.body = p;
  });
  r.authed('get', '/thirdparty/location/:protocol', async (ctx) => {
    ctx.body = await s.appServices.lookup('location', param(ctx, 'protocol'), fields(ctx));
  });
  r.authed('get', '/thirdparty/user/:protocol', async (ctx) => {
    ctx.body = await s.appServices.lookup('user', param(ctx, 'protocol'), fields(ctx));
  });
  r.authed('get', '/thirdparty/location', async (ctx) => {
    const alias = fields(ctx).alias;
    if (!alias) throw new MatrixError('M_MISSING_PARAM', 'alias is required', {}, 400);
    ctx.body = await s.appServices.reverseLookup('location', { alias });
  });
  r.authed('get', '/thirdparty/user', async (ctx) => {
    const userid = fields(ctx).userid;
    if (!userid) throw new MatrixError('M_MISSING_PARAM', 'userid is required', {}, 400);
    ctx.body = await s.appServices.reverseLookup('user', { userid });
  });
}
