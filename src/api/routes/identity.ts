// Identity-server endpoints of the client listener: the identity server's 3pid/onbind callback
// (a federation path, served here too because identity servers are often pointed at the client
// base URL, as SyTest's is).

import { body } from '../middleware.js';
import type { ClientRoutes } from '../routing.js';
import type { ApiServices } from '../routing.js';

type IdentityRouteDeps = Pick<ApiServices, 'identity'>;

export function identityRoutes(r: ClientRoutes, s: IdentityRouteDeps): void {
  // Unauthenticated (spec S-S "Third-party invites"): what it carries is checked against the
  // identity server's keys in each room before any invite is issued.
  for (const method of ['put', 'post'] as const) {
    r.raw(method, '/_matrix/federation/v1/3pid/onbind', async (ctx) => {
      await s.identity.invites.onBind(body(ctx));
      ctx.body = {};
    });
  }
}
