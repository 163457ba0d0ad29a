// Profiles and account data (global and per room).

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { parse, param, type ApiServices, type ClientRoutes } from '../routing.js';
import { isValidUserId } from '../../protocol/ids.js';
import type { JsonObject } from '../../protocol/types.js';
import { INTERNAL_ACCOUNT_DATA_PREFIX } from '../../push/push-rules-service.js';
import { dict } from '../../protocol/canonical-json.js';

export function profileRoutes(r: ClientRoutes, s: ApiServices): void {
  const load = async (ctx: Ctx) => {
    const userId = param(ctx, 'userId');
    if (!isValidUserId(userId)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user ID');
    const u = await s.store.accounts.getUser(userId);
    if (!u || u.deactivated) throw new MatrixError('M_NOT_FOUND', 'Profile not found');
    return u;
  };
  r.route('get', '/profile/:userId', async (ctx) => {
    const u = await load(ctx);
    const out: JsonObject = dict();
    if (u.displayname !== null) out.displayname = u.displayname;
    if (u.avatarUrl !== null) out.avatar_url = u.avatarUrl;
    ctx.body = out;
  });
  r.route('get', '/profile/:userId/displayname', async (ctx) => {
    const u = await load(ctx);
    if (u.displayname === null) throw new MatrixError('M_NOT_FOUND', 'No display name set');
    ctx.body = { displayname: u.displayname };
  });
  r.route('get', '/profile/:userId/avatar_url', async (ctx) => {
    const u = await load(ctx);
    // A known user without an avatar has an empty profile field, not a missing one; 404 is kept
    // for users that do not exist (load above).
    ctx.body = u.avatarUrl === null ? {} : { avatar_url: u.avatarUrl };
  });
  const setField = (field: 'displayname' | 'avatar_url') =>
    r.authed('put', `/profile/:userId/${field}`, async (ctx, auth) => {
      if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set the profile of another user');
      const schema = z.object({ [field]: z.string().max(field === 'displayname' ? 256 : 1024).nullable().optional() }).passthrough();
      const value = (parse(schema, body(ctx)) as Record<string, string | null | undefined>)[field] ?? null;
      // avatar_url is stored as given: the spec types it as a string URI without requiring mxc://,
      // and clients only fetch mxc:// avatars through the media API.
      // A profile change is a member event in every joined room: it costs what it fans out to.
      await s.limits.message.consume(auth.userId, await s.rooms.joinedRoomCount(auth.userId));
      await s.store.accounts.setProfile(auth.userId, field === 'displayname' ? { displayname: value || null } : { avatarUrl: value || null });
      await s.rooms.propagateProfile(auth.userId);
      ctx.body = {};
    });
  setField('displayname');
  setField('avatar_url');

  accountDataRoutes(r, s);
}

/** Account-data types the server manages itself and clients may not set directly. */
const SERVER_MANAGED = new Set(['m.fully_read', 'm.push_rules']);

function accountDataRoutes(r: ClientRoutes, s: ApiServices): void {
  const self = (ctx: Ctx, userId: string) => {
    if (param(ctx, 'userId') !== userId) throw new MatrixError('M_FORBIDDEN', 'Cannot access account data of other users');
  };
  const put = async (ctx: Ctx, userId: string, roomId: string) => {
    const type = param(ctx, 'type');
    if (type.length > 255) throw new MatrixError('M_INVALID_PARAM', 'Type too long');
    if (SERVER_MANAGED.has(type) || type.startsWith(INTERNAL_ACCOUNT_DATA_PREFIX)) {
      throw new MatrixError('M_BAD_JSON', `Cannot set ${type} through account data; use its own API`, {}, 405);
    }
    const stream = await s.store.userData.setAccountData(userId, roomId, type, body(ctx) as JsonObject);
    if (roomId === '') s.pushRules.accountDataChanged(userId, type);
    s.notifier.publish({ stream, userIds: [userId] });
    ctx.body = {};
  };
  const get = async (ctx: Ctx, userId: string, roomId: string) => {
    const type = param(ctx, 'type');
    const content = type.startsWith(INTERNAL_ACCOUNT_DATA_PREFIX) ? null : await s.store.userData.getAccountData(userId, roomId, type);
    if (content === null) throw new MatrixError('M_NOT_FOUND', 'Account data not found');
    ctx.body = content;
  };
  const room = async (ctx: Ctx, userId: string): Promise<string> => {
    const roomId = param(ctx, 'roomId');
    if (!roomId.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Invalid room ID');
    const m = await s.store.rooms.getMembership(roomId, userId);
    if (!m) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
    return roomId;
  };
  r.authed('put', '/user/:userId/account_data/:type', async (ctx, a) => {
    self(ctx, a.userId);
    await put(ctx, a.userId, '');
  });
  r.authed('get', '/user/:userId/account_data/:type', async (ctx, a) => {
    self(ctx, a.userId);
    await get(ctx, a.userId, '');
  });
  r.authed('put', '/user/:userId/rooms/:roomId/account_data/:type', async (ctx, a) => {
    self(ctx, a.userId);
    await put(ctx, a.userId, await room(ctx, a.userId));
  });
  r.authed('get', '/user/:userId/rooms/:roomId/account_data/:type', async (ctx, a) => {
    self(ctx, a.userId);
    await get(ctx, a.userId, await room(ctx, a.userId));
  });
}
