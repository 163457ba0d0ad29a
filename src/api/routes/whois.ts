// GET /_matrix/client/v3/admin/whois/{userId} (Client-Server API; Synapse's admin API is in
// admin.ts): for the user themselves or a server admin (spec admin.yaml leaves the choice).
//
// Invariant: one session per device (a device has one token here), with the last IP, time and
// user agent seen; devices never seen since login have no connection yet.

import { MatrixError } from '../../errors.js';
import { param, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { dict } from '../../protocol/canonical-json.js';

type WhoisRouteDeps = Pick<ApiServices, 'accounts'>;

export function whoisRoutes(r: ClientRoutes, s: WhoisRouteDeps): void {
  r.authed('get', '/admin/whois/:userId', async (ctx, auth) => {
    const userId = param(ctx, 'userId');
    if (userId !== auth.userId) {
      // Checked before looking the target up, so non-admins cannot probe which users exist.
      if (!(await s.accounts.isAdmin(auth.userId))) throw new MatrixError('M_FORBIDDEN', 'Only server admins may look up other users');
      if (!(await s.accounts.exists(userId))) throw new MatrixError('M_NOT_FOUND', 'Unknown user');
    }
    const devices: JsonObject = dict();
    for (const d of await s.accounts.listDevices(userId)) {
      const connections: JsonObject[] = [];
      if (d.lastSeenTs !== null) {
        const c: JsonObject = { last_seen: d.lastSeenTs };
        if (d.lastSeenIp !== null) c.ip = d.lastSeenIp;
        // Empty when the client never sent one: the field is always there, as clients expect.
        c.user_agent = d.lastSeenUserAgent ?? '';
        connections.push(c);
      }
      devices[d.deviceId] = { sessions: [{ connections }] };
    }
    ctx.body = { user_id: userId, devices };
  });
}
