// OpenID (spec "OpenID"): POST /user/{userId}/openid/request_token. The lookup a third party
// makes with such a token, GET /_matrix/federation/v1/openid/userinfo, belongs to the
// Server-Server API: the federation listener answers it from AccountService.openIdUser, and so
// does the client listener, outside this route table (src/api/openid-userinfo.ts: served from
// here it would also be reachable through socket request frames, where its 401 M_UNKNOWN_TOKEN
// reads as the socket's own token revoked).
//
// Invariants: OpenID tokens are stored only as hashes, expire after an hour, and reveal nothing
// but the user ID (`sub`) of whoever requested them.

import { MatrixError } from '../../errors.js';
import { param, type ApiServices, type ClientRoutes } from '../routing.js';

type OpenIdRouteDeps = Pick<ApiServices, 'accounts'>;

export function openIdRoutes(r: ClientRoutes, s: OpenIdRouteDeps): void {
  r.authed('post', '/user/:userId/openid/request_token', async (ctx, auth) => {
    if (param(ctx, 'userId') !== auth.userId) throw new MatrixError('M_FORBIDDEN', 'Cannot request OpenID tokens for another user');
    ctx.body = await s.accounts.issueOpenIdToken(auth.userId);
  });
}
