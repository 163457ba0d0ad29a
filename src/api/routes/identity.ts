// Identity-server endpoints of the client listener: 3PID binding and unbinding through the
// homeserver (/account/3pid/bind, /unbind, /delete), and the identity server's 3pid/onbind
// callback (a federation path, served here too because identity servers are often pointed at
// the client base URL, as SyTest's is).
//
// Addresses on the account itself (validated by this server's mail) are src/threepid's, served
// by routes/threepid.ts; /delete removes one there as well as unbinding it.

import { z } from 'zod';
import { body } from '../middleware.js';
import { parse, type ApiServices, type ClientRoutes } from '../routing.js';

type IdentityRouteDeps = Pick<ApiServices, 'identity' | 'limits' | 'threepids'>;

// r0 and unstable: clients (and SyTest) still use the older prefixes for these.
const VERSIONS = ['v3', 'r0', 'unstable'];

const bindSchema = z
  .object({ id_server: z.string().min(1).max(255), id_access_token: z.string().min(1).max(1024), sid: z.string().min(1).max(255), client_secret: z.string().min(1).max(255) })
  .passthrough();
const unbindSchema = z.object({ medium: z.string().min(1).max(32), address: z.string().min(1).max(512), id_server: z.string().min(1).max(255).optional() }).passthrough();

export function identityRoutes(r: ClientRoutes, s: IdentityRouteDeps): void {
  r.authed('post', '/account/3pid/bind', async (ctx, auth) => {
    await s.identity.bindings.bind(auth.userId, parse(bindSchema, body(ctx)));
    ctx.body = {};
  }, VERSIONS);
  for (const path of ['/account/3pid/unbind', '/account/3pid/delete']) {
    r.authed('post', path, async (ctx, auth) => {
      const req = parse(unbindSchema, body(ctx));
      const result = await s.identity.bindings.unbind(auth.userId, req.medium, req.address, req.id_server);
      // /delete also takes the address off the account (src/threepid), after the unbind: an
      // identity server that could not be reached leaves both for a retry.
      if (path === '/account/3pid/delete') await s.threepids.accounts.remove(auth.userId, req.medium, req.address);
      ctx.body = { id_server_unbind_result: result };
    }, VERSIONS);
  }

  // Unauthenticated (spec S-S "Third-party invites"): what it carries is checked against the
  // identity server's keys in each room before any invite is issued.
  for (const method of ['put', 'post'] as const) {
    r.raw(method, '/_matrix/federation/v1/3pid/onbind', async (ctx) => {
      // Each call may make requests to identity servers and other homeservers: limited per
      // address, from the `write` budget.
      await s.limits.write.consume(`onbind:${ctx.ip}`);
      await s.identity.invites.onBind(body(ctx));
      ctx.body = {};
    });
  }
}
