// OpenID (spec "OpenID"): POST /user/{userId}/openid/request_token, and the lookup a third party
// makes with such a token, GET /_matrix/federation/v1/openid/userinfo. The latter belongs to the
// Server-Server API; it is answered here on the client listener (as Synapse's `openid` resource
// does) until a federation listener exists, which should serve it from the same
// AccountService.openIdUser.
//
// Invariants: OpenID tokens are stored only as hashes, expire after an hour, and reveal nothing
// but the user ID (`sub`) of whoever requested them.

import { MatrixError } from '../../errors.js';
import { param, type ApiServices, type ClientRoutes } from '../routing.js';

export function openIdRoutes(r: ClientRoutes, s: ApiServices): void {
  r.authed('post', '/user/:userId/openid/request_token', async (ctx, auth) => {
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot request OpenID tokens for another user');
    ctx.body = await s.accounts.issueOpenIdToken(auth.userId);
  });

  r.raw('get', '/_matrix/federation/v1/openid/userinfo', async (ctx) => {
    // The token arrives as ?access_token= (spec); a bearer header is accepted too.
    const token = ctx.accessToken;
    if (!token) throw new MatrixError('M_UNKNOWN_TOKEN', 'Missing OpenID access token', {}, 401);
    await s.limits.login_failures_per_address.check(ctx.ip);
    const userId = await s.accounts.openIdUser(token);
    if (!userId) {
      // Guessing tokens costs the guesser, as failed logins do.
      await s.limits.login_failures_per_address.penalise(ctx.ip);
      throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown or expired OpenID access token', {}, 401);
    }
    ctx.body = { sub: userId };
  });
}
