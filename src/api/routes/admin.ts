// The Synapse admin API subset that synadm and Synapse Admin use, under /_synapse/admin. Every
// route needs the access token of a server admin; anyone else gets 403 M_FORBIDDEN. The work is
// in src/admin/admin-service.ts. Shared-secret registration (/_synapse/admin/v1/register) lives
// in account.ts, media deletion in media.ts.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { ROOM_ORDERS, type RoomOrder } from '../../admin/admin-service.js';
import { body, type AuthInfo, type Ctx } from '../middleware.js';
import { param, parse, queryInt, queryString, type ApiServices, type ClientRoutes } from '../routing.js';

const BASE = '/_synapse/admin';

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
const SERVER_VERSION = `Hearth ${version()}`;

function queryBool(ctx: Ctx, name: string, def: boolean): boolean {
  const v = queryString(ctx, name);
  if (v === undefined || v === '') return def;
  if (v !== 'true' && v !== 'false') throw new MatrixError('M_INVALID_PARAM', `${name} must be true or false`);
  return v === 'true';
}

const putUserSchema = z
  .object({
    password: z.string().min(1).max(512).optional(),
    logout_devices: z.boolean().optional(),
    displayname: z.string().max(256).nullable().optional(),
    avatar_url: z.string().max(1024).nullable().optional(),
    admin: z.boolean().optional(),
    deactivated: z.boolean().optional(),
  })
  .passthrough();
const deactivateSchema = z.object({ erase: z.boolean().optional() }).passthrough();
const resetPasswordSchema = z.object({ new_password: z.string().min(1).max(512), logout_devices: z.boolean().optional() }).passthrough();
const deleteRoomSchema = z
  .object({
    block: z.boolean().optional(),
    purge: z.boolean().optional(),
    force_purge: z.boolean().optional(),
    new_room_user_id: z.string().max(255).optional(),
    room_name: z.string().max(255).optional(),
    message: z.string().max(1024).optional(),
  })
  .passthrough();
const purgeSchema = z
  .object({
    delete_local_events: z.boolean().optional(),
    purge_up_to_event_id: z.string().max(255).optional(),
    purge_up_to_ts: z.number().int().min(0).optional(),
  })
  .passthrough();

type AdminRouteDeps = Pick<ApiServices, 'admin'>;

export function adminRoutes(r: ClientRoutes, s: AdminRouteDeps): void {
  type Method = 'get' | 'post' | 'put' | 'delete';
  // Bodies are validated inside the handler (parse), after the admin check: a non-admin learns
  // nothing about the body rules, only 403.
  const admin = (method: Method, path: string, handler: (ctx: Ctx, auth: AuthInfo) => Promise<void> | void) =>
    r.authedRaw(method, `${BASE}${path}`, async (ctx, auth) => {
      await s.admin.requireAdmin(auth.userId);
      await handler(ctx, auth);
    });

  admin('get', '/v1/server_version', (ctx) => {
    ctx.body = { server_version: SERVER_VERSION };
  });

  // Users
  admin('get', '/v2/users', async (ctx) => {
    queryBool(ctx, 'guests', true); // validated; there are no guest accounts to leave out yet
    const name = queryString(ctx, 'name') ?? queryString(ctx, 'user_id');
    ctx.body = await s.admin.listUsers({
      from: queryInt(ctx, 'from', 0, 0, Number.MAX_SAFE_INTEGER),
      limit: queryInt(ctx, 'limit', 100, 0, 1000),
      name: name || undefined,
      deactivated: queryBool(ctx, 'deactivated', false),
    });
  });
  admin('get', '/v2/users/:userId', async (ctx) => {
    ctx.body = await s.admin.getUser(param(ctx, 'userId'));
  });
  admin('put', '/v2/users/:userId', async (ctx) => {
    const { created, user } = await s.admin.putUser(param(ctx, 'userId'), parse(putUserSchema, body(ctx)));
    ctx.status = created ? 201 : 200;
    ctx.body = user;
  });
  admin('get', '/v1/users/:userId/admin', async (ctx) => {
    ctx.body = { admin: (await s.admin.getUser(param(ctx, 'userId'))).admin };
  });
  admin('put', '/v1/users/:userId/admin', async (ctx) => {
    const req = parse(z.object({ admin: z.boolean() }).passthrough(), body(ctx));
    await s.admin.setAdmin(param(ctx, 'userId'), req.admin);
    ctx.body = {};
  });
  admin('get', '/v1/users/:userId/joined_rooms', async (ctx) => {
    ctx.body = await s.admin.joinedRooms(param(ctx, 'userId'));
  });
  admin('post', '/v1/deactivate/:userId', async (ctx) => {
    await s.admin.deactivate(param(ctx, 'userId'), parse(deactivateSchema, body(ctx)).erase ?? false);
    ctx.body = { id_server_unbind_result: 'success' };
  });
  admin('post', '/v1/reset_password/:userId', async (ctx) => {
    const req = parse(resetPasswordSchema, body(ctx));
    await s.admin.resetPassword(param(ctx, 'userId'), req.new_password, req.logout_devices ?? true);
    ctx.body = {};
  });
  admin('get', '/v2/users/:userId/devices', async (ctx) => {
    ctx.body = await s.admin.devices(param(ctx, 'userId'));
  });
  admin('get', '/v1/whois/:userId', async (ctx) => {
    ctx.body = await s.admin.whois(param(ctx, 'userId'));
  });

  // Rooms
  admin('get', '/v1/rooms', async (ctx) => {
    const orderBy = queryString(ctx, 'order_by') ?? 'name';
    if (!(ROOM_ORDERS as readonly string[]).includes(orderBy)) throw new MatrixError('M_INVALID_PARAM', `Unknown order_by ${orderBy}`);
    const dir = queryString(ctx, 'dir') ?? 'f';
    if (dir !== 'f' && dir !== 'b') throw new MatrixError('M_INVALID_PARAM', 'dir must be f or b');
    ctx.body = await s.admin.listRooms({
      from: queryInt(ctx, 'from', 0, 0, Number.MAX_SAFE_INTEGER),
      limit: queryInt(ctx, 'limit', 100, 0, 1000),
      orderBy: orderBy as RoomOrder,
      dir,
      searchTerm: queryString(ctx, 'search_term') || undefined,
    });
  });
  admin('get', '/v1/rooms/:roomId', async (ctx) => {
    ctx.body = await s.admin.roomDetails(param(ctx, 'roomId'));
  });
  admin('get', '/v1/rooms/:roomId/state', async (ctx) => {
    ctx.body = await s.admin.roomState(param(ctx, 'roomId'));
  });
  admin('get', '/v1/rooms/:roomId/members', async (ctx) => {
    ctx.body = await s.admin.members(param(ctx, 'roomId'));
  });
  const deleteOptions = (ctx: Ctx) => {
    const req = parse(deleteRoomSchema, body(ctx));
    return { block: req.block ?? false, purge: req.purge ?? true, newRoomUserId: req.new_room_user_id };
  };
  admin('delete', '/v1/rooms/:roomId', async (ctx) => {
    ctx.body = await s.admin.deleteRoom(param(ctx, 'roomId'), deleteOptions(ctx));
  });
  admin('delete', '/v2/rooms/:roomId', async (ctx) => {
    ctx.body = { delete_id: await s.admin.deleteRoomV2(param(ctx, 'roomId'), deleteOptions(ctx)) };
  });
  admin('get', '/v2/rooms/:roomId/delete_status', (ctx) => {
    ctx.body = s.admin.deleteStatusesForRoom(param(ctx, 'roomId'));
  });
  admin('get', '/v2/rooms/delete_status/:deleteId', (ctx) => {
    ctx.body = s.admin.deleteStatus(param(ctx, 'deleteId'));
  });
  const purge = async (ctx: Ctx, eventId: string | undefined) => {
    const req = parse(purgeSchema, body(ctx));
    const purgeId = await s.admin.purgeHistory(param(ctx, 'roomId'), {
      eventId: eventId ?? req.purge_up_to_event_id,
      ts: req.purge_up_to_ts,
      deleteLocal: req.delete_local_events ?? false,
    });
    ctx.body = { purge_id: purgeId };
  };
  admin('post', '/v1/purge_history/:roomId', (ctx) => purge(ctx, undefined));
  admin('post', '/v1/purge_history/:roomId/:eventId', (ctx) => purge(ctx, param(ctx, 'eventId')));
  admin('get', '/v1/purge_history_status/:purgeId', (ctx) => {
    ctx.body = s.admin.purgeStatus(param(ctx, 'purgeId'));
  });
}
