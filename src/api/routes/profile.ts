// Profiles and account data (global and per room).

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, type Ctx } from '../middleware.js';
import { parse, param, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { dict } from '../../protocol/canonical-json.js';

type ProfileRouteDeps = Pick<ApiServices, 'profiles' | 'userData' | 'limits'>;

export function profileRoutes(r: ClientRoutes, s: ProfileRouteDeps): void {
  r.route('get', '/profile/:userId', async (ctx) => {
    const p = await s.profiles.get(param(ctx, 'userId'));
    const out: JsonObject = dict();
    if (p.displayname !== null) out.displayname = p.displayname;
    if (p.avatarUrl !== null) out.avatar_url = p.avatarUrl;
    ctx.body = out;
  });
  r.route('get', '/profile/:userId/displayname', async (ctx) => {
    const p = await s.profiles.get(param(ctx, 'userId'));
    if (p.displayname === null) throw new MatrixError('M_NOT_FOUND', 'No display name set');
    ctx.body = { displayname: p.displayname };
  });
  r.route('get', '/profile/:userId/avatar_url', async (ctx) => {
    const p = await s.profiles.get(param(ctx, 'userId'));
    // A known user without an avatar has an empty profile field, not a missing one; 404 is kept
    // for users that do not exist.
    ctx.body = p.avatarUrl === null ? {} : { avatar_url: p.avatarUrl };
  });
  const setField = (field: 'displayname' | 'avatar_url') =>
    r.authed('put', `/profile/:userId/${field}`, async (ctx, auth) => {
      if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot set the profile of another user');
      const schema = z.object({ [field]: z.string().max(field === 'displayname' ? 256 : 1024).nullable().optional() }).passthrough();
      const value = (parse(schema, body(ctx)) as Record<string, string | null | undefined>)[field] ?? null;
      // A profile change is a member event in every joined room: it costs what it fans out to.
      await s.limits.message.consume(auth.userId, await s.profiles.fanOut(auth.userId));
      await s.profiles.set(auth.userId, field, value);
      ctx.body = {};
    });
  setField('displayname');
  setField('avatar_url');

  accountDataRoutes(r, s);
}

function accountDataRoutes(r: ClientRoutes, s: ProfileRouteDeps): void {
  const put = async (ctx: Ctx, userId: string, roomId: string) => {
    await s.userData.setAccountData(param(ctx, 'userId'), userId, roomId, param(ctx, 'type'), body(ctx) as JsonObject);
    ctx.body = {};
  };
  const get = async (ctx: Ctx, userId: string, roomId: string) => {
    const content = await s.userData.accountData(param(ctx, 'userId'), userId, roomId, param(ctx, 'type'));
    if (content === null) throw new MatrixError('M_NOT_FOUND', 'Account data not found');
    ctx.body = content;
  };
  r.authed('put', '/user/:userId/account_data/:type', (ctx, a) => put(ctx, a.userId, ''));
  r.authed('get', '/user/:userId/account_data/:type', (ctx, a) => get(ctx, a.userId, ''));
  r.authed('put', '/user/:userId/rooms/:roomId/account_data/:type', (ctx, a) => put(ctx, a.userId, param(ctx, 'roomId')));
  r.authed('get', '/user/:userId/rooms/:roomId/account_data/:type', (ctx, a) => get(ctx, a.userId, param(ctx, 'roomId')));
}
