// Room creation, membership, sending, state and member lists.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type AuthInfo } from '../middleware.js';
import { parse, param, queryString, type ApiServices, type AuthedHandler, type ClientRoutes, type RouteOptions, valid } from '../routing.js';
import { isValidRoomAlias, isValidServerName } from '../../protocol/ids.js';
import type { JsonObject } from '../../protocol/types.js';
import type { CreateRoomRequest } from '../../room/room-service.js';
import { parseToken } from '../../sync/token.js';
import { dict } from '../../protocol/canonical-json.js';

const jsonObject = z.record(z.string(), z.unknown());
const eventType = z.string().min(1).max(255);

const createRoomSchema = z
  .object({
    visibility: z.enum(['public', 'private']).optional(),
    room_alias_name: z.string().min(1).max(200).optional(),
    name: z.string().max(255).optional(),
    topic: z.string().max(4096).optional(),
    invite: z.array(z.string().max(255)).max(100).optional(),
    room_version: z.string().max(32).optional(),
    creation_content: jsonObject.optional(),
    initial_state: z.array(z.object({ type: eventType, state_key: z.string().max(255).optional(), content: jsonObject })).max(100).optional(),
    preset: z.enum(['private_chat', 'public_chat', 'trusted_private_chat']).optional(),
    is_direct: z.boolean().optional(),
    power_level_content_override: jsonObject.optional(),
    // Checked whole before the room is made: a bad entry must not leave a room behind its 400.
    invite_3pid: z
      .array(
        z.object({
          id_server: z.string().max(255).refine(isValidServerName, { message: 'must be a server name (host[:port])' }),
          id_access_token: z.string().max(1024),
          medium: z.enum(['email', 'msisdn']),
          address: z.string().max(512),
        }),
      )
      .max(100)
      .optional(),
  })
  .passthrough();
const invite3pidSchema = z.object({ id_server: z.string().max(255), id_access_token: z.string().max(1024), medium: z.string().max(32), address: z.string().max(512) }).passthrough();

const upgradeSchema = z
  .object({ new_version: z.string().min(1).max(32), additional_creators: z.array(z.string().max(255)).max(100).optional() })
  .passthrough();
const reasonSchema = z.object({ reason: z.string().max(1024).optional() }).passthrough();
const targetSchema = reasonSchema.extend({ user_id: z.string().max(255) });

type RoomRouteDeps = Pick<ApiServices, 'rooms' | 'upgrades' | 'presence' | 'directory' | 'roomState' | 'formatter' | 'appServices' | 'serverName' | 'identity' | 'limits'>;

export function roomRoutes(r: ClientRoutes, s: RoomRouteDeps): void {
  // Routes that create room events spend from the `message` limit rather than `write`.
  const roomEvent = (method: 'post' | 'put', path: string, handler: AuthedHandler, opts: RouteOptions = {}) => r.authed(method, path, handler, { ...opts, limit: 'message' });

  roomEvent('post', '/createRoom', async (ctx, auth) => {
    const req = valid(ctx, createRoomSchema) as CreateRoomRequest;
    if (req.room_alias_name !== undefined) s.appServices.checkAliasClaim(`#${req.room_alias_name}:${s.serverName}`, auth.appServiceId);
    // Each invite costs what POST /invite would, on top of the table's point for the room, and
    // before anything is made: up to 200 invites must not slip through as one write, and a
    // refusal must not leave a half-invited room behind. Capped at the bucket like any fan-out.
    const invites = (req.invite?.length ?? 0) + ((req as { invite_3pid?: unknown[] }).invite_3pid?.length ?? 0);
    if (invites > 0 && !auth.rateLimitExempt) await s.limits.message.consumeRest(auth.userId, invites, 1);
    const { roomId, alias } = await s.rooms.createRoom(auth, req);
    // Third-party invites once the room exists (each needs the identity server), as Synapse does.
    for (const i of (req as { invite_3pid?: Array<z.infer<typeof invite3pidSchema>> }).invite_3pid ?? []) await s.identity.invites.invite(auth, roomId, i);
    ctx.body = alias ? { room_id: roomId, room_alias: alias } : { room_id: roomId };
  }, { schema: createRoomSchema });

  const join = async (auth: AuthInfo, idOrAlias: string, req: { reason?: string } & JsonObject, via: string[] = []) => {
    // An alias in an application service's namespace may be one it creates on demand.
    if (idOrAlias.startsWith('#')) await s.appServices.ensureAlias(idOrAlias);
    // A third-party invite's signed block: redeemed into an invite before the join.
    if (req.third_party_signed !== undefined) await s.identity.invites.redeemForJoin(auth.userId, await s.rooms.resolveRoom(idOrAlias), req.third_party_signed);
    const roomId = await s.rooms.join(auth, idOrAlias, req.reason, via, req);
    // Joining an upgraded room's successor brings the user's tags and push rules along.
    await s.upgrades.carryOverUserState(auth.userId, roomId);
    return { room_id: roomId };
  };
  roomEvent('post', '/join/:roomIdOrAlias', async (ctx, auth) => {
    // Servers to join through: `via` (v1.12) and the older `server_name`, both repeatable.
    const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const via = [...list(ctx.query.via), ...list(ctx.query.server_name)].slice(0, 20);
    ctx.body = await join(auth, param(ctx, 'roomIdOrAlias'), parse(reasonSchema, body(ctx)) as { reason?: string } & JsonObject, via);
  });
  roomEvent('post', '/knock/:roomIdOrAlias', async (ctx, auth) => {
    const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const via = [...list(ctx.query.via), ...list(ctx.query.server_name)].slice(0, 20);
    ctx.body = { room_id: await s.rooms.knock(auth, param(ctx, 'roomIdOrAlias'), parse(reasonSchema, body(ctx)).reason, via) };
  });
  roomEvent('post', '/rooms/:roomId/join', async (ctx, auth) => {
    ctx.body = await join(auth, param(ctx, 'roomId'), parse(reasonSchema, body(ctx)) as { reason?: string } & JsonObject);
  });
  roomEvent('post', '/rooms/:roomId/leave', async (ctx, auth) => {
    await s.rooms.leave(auth, param(ctx, 'roomId'), parse(reasonSchema, body(ctx)).reason);
    ctx.body = {};
  });
  // Creates a room and several events, but spends from `write` like any other request.
  r.authed('post', '/rooms/:roomId/upgrade', async (ctx, auth) => {
    const req = parse(upgradeSchema, body(ctx));
    ctx.body = { replacement_room: await s.upgrades.upgrade(auth, param(ctx, 'roomId'), req.new_version, req.additional_creators) };
  });
  r.authed('post', '/rooms/:roomId/forget', async (ctx, auth) => {
    await s.rooms.forget(auth, param(ctx, 'roomId'));
    ctx.body = {};
  });
  for (const action of ['invite', 'kick', 'ban', 'unban'] as const) {
    roomEvent('post', `/rooms/:roomId/${action}`, async (ctx, auth) => {
      // The third-party form (spec "Third-party invites"): an address, through an identity server.
      if (action === 'invite' && body(ctx).user_id === undefined && body(ctx).medium !== undefined) {
        await s.identity.invites.invite(auth, param(ctx, 'roomId'), parse(invite3pidSchema, body(ctx)));
        ctx.body = {};
        return;
      }
      const req = parse(targetSchema, body(ctx));
      // A user in an application service's namespace may be one it creates on demand.
      if (action === 'invite') await s.appServices.ensureUser(req.user_id);
      await s.rooms.changeMembership(auth, param(ctx, 'roomId'), req.user_id, action, req.reason);
      ctx.body = {};
    });
  }

  roomEvent('put', '/rooms/:roomId/send/:eventType/:txnId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    const type = parse(eventType, param(ctx, 'eventType'));
    const res = await s.rooms.send(auth, roomId, {
      type,
      content: body(ctx) as JsonObject,
      txn: { userId: auth.userId, deviceId: auth.deviceId, txnId: param(ctx, 'txnId'), scope: `send/${type}` },
    });
    // Sending counts as activity. It does not end a typing notification: the spec ties that to
    // PUT /typing and its timeout alone, and clients stop it explicitly.
    s.presence.active(auth.userId);
    ctx.body = { event_id: res.eventId };
  }, { shed: 'send' });

  const putState = async (auth: AuthInfo, roomId: string, type: string, stateKey: string, content: JsonObject) => {
    if (type === 'm.room.canonical_alias') await s.directory.checkCanonical(roomId, content);
    const res = await s.rooms.send(auth, roomId, { type, stateKey, content });
    return { event_id: res.eventId };
  };
  roomEvent('put', '/rooms/:roomId/state/:eventType{/:stateKey}', async (ctx, auth) => {
    const type = parse(eventType, param(ctx, 'eventType'));
    ctx.body = await putState(auth, param(ctx, 'roomId'), type, ctx.params.stateKey ?? '', body(ctx) as JsonObject);
  }, { shed: 'send' });

  roomEvent('put', '/rooms/:roomId/redact/:eventId/:txnId', async (ctx, auth) => {
    const req = parse(reasonSchema, body(ctx));
    const content: JsonObject = req.reason ? { reason: req.reason } : {};
    const res = await s.rooms.send(auth, param(ctx, 'roomId'), {
      type: 'm.room.redaction',
      content,
      redacts: param(ctx, 'eventId'),
      txn: { userId: auth.userId, deviceId: auth.deviceId, txnId: param(ctx, 'txnId'), scope: `redact/${param(ctx, 'eventId')}` },
    });
    ctx.body = { event_id: res.eventId };
  });

  r.authed('get', '/rooms/:roomId/state/:eventType{/:stateKey}', async (ctx, auth) => {
    const ev = await s.roomState.stateEvent(auth.userId, param(ctx, 'roomId'), param(ctx, 'eventType'), ctx.params.stateKey ?? '');
    ctx.body = ctx.query.format === 'event' ? (await s.formatter.format([ev], auth))[0] : ev.pdu.content;
  });

  r.authed('get', '/rooms/:roomId/state', async (ctx, auth) => {
    ctx.body = await s.formatter.format(await s.roomState.stateEvents(auth.userId, param(ctx, 'roomId')), auth);
  });

  r.authed('get', '/rooms/:roomId/members', async (ctx, auth) => {
    const at = queryString(ctx, 'at');
    const events = await s.roomState.memberEvents(auth.userId, param(ctx, 'roomId'), at !== undefined ? parseToken(at, 'at').stream : undefined);
    const wanted = queryString(ctx, 'membership');
    const notWanted = queryString(ctx, 'not_membership');
    const chunk = events.filter((e) => {
      const m = e.pdu.content.membership;
      return (!wanted || m === wanted) && (!notWanted || m !== notWanted);
    });
    ctx.body = { chunk: await s.formatter.format(chunk, auth) };
  });

  r.authed('get', '/rooms/:roomId/joined_members', async (ctx, auth) => {
    const joined: JsonObject = dict();
    for (const { member, event } of await s.roomState.joinedMembers(auth.userId, param(ctx, 'roomId'))) {
      const c = event?.pdu.content ?? {};
      // Both are optional strings in the spec's RoomMember schema: absent when unset, never null.
      // Synapse sends null (and SyTest's "fetches my membership" wants the key); the schema
      // fuzz spec checks every answer against the spec, so the spec's shape wins here.
      const m: JsonObject = {};
      if (typeof c.displayname === 'string') m.display_name = c.displayname;
      if (typeof c.avatar_url === 'string') m.avatar_url = c.avatar_url;
      joined[member.userId] = m;
    }
    ctx.body = { joined };
  });

  r.authed('get', '/joined_rooms', async (ctx, auth) => {
    ctx.body = { joined_rooms: await s.roomState.joinedRooms(auth.userId) };
  });

  directoryRoutes(r, s);
}

function directoryRoutes(r: ClientRoutes, s: RoomRouteDeps): void {
  r.route('get', '/directory/room/:alias', async (ctx) => {
    const alias = param(ctx, 'alias');
    if (!isValidRoomAlias(alias)) throw new MatrixError('M_INVALID_PARAM', 'Invalid room alias');
    await s.appServices.ensureAlias(alias);
    const found = await s.rooms.lookupAlias(alias);
    ctx.body = { room_id: found.roomId, servers: found.servers };
  });
  r.authed('put', '/directory/room/:alias', async (ctx, auth) => {
    const req = parse(z.object({ room_id: z.string().max(255) }).passthrough(), body(ctx));
    const alias = param(ctx, 'alias');
    s.appServices.checkAliasClaim(alias, auth.appServiceId);
    // An application service maps aliases in its namespace for rooms it bridges without joining them.
    const bridged = auth.appServiceId !== undefined && s.appServices.aliasInNamespace(auth.appServiceId, alias);
    await s.directory.create(auth.userId, alias, req.room_id, { withoutMembership: bridged });
    ctx.body = {};
  });
  r.authed('delete', '/directory/room/:alias', async (ctx, auth) => {
    await s.directory.delete(auth, param(ctx, 'alias'));
    ctx.body = {};
  });
  r.authed('get', '/rooms/:roomId/aliases', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    await s.roomState.visibleState(auth.userId, roomId);
    ctx.body = { aliases: await s.directory.list(roomId) };
  });
}
