// Discovery and capability endpoints clients call at start-up.

import { roomVersionRules, SUPPORTED_ROOM_VERSIONS } from '../../protocol/room-versions.js';
import type { ApiServices, ClientRoutes } from '../routing.js';
import { UNSTABLE_FEATURE } from '../../sync/socket/protocol.js';
import { turnCredentials } from '../../voip/turn.js';

/** Every spec version we implement: clients match these as exact strings. */
export const SPEC_VERSIONS = ['r0.0.1', 'r0.1.0', 'r0.2.0', 'r0.3.0', 'r0.4.0', 'r0.5.0', 'r0.6.0', 'r0.6.1',
  'v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11', 'v1.12'];

type MiscRouteDeps = Pick<ApiServices, 'features' | 'now' | 'publicBaseUrl' | 'turn' | 'threepids'> & { rooms: Pick<ApiServices['rooms'], 'defaultRoomVersion'> };

export function miscRoutes(r: ClientRoutes, s: MiscRouteDeps): void {
  r.raw('get', '/_matrix/client/versions', (ctx) => {
    // Experimental MSCs are listed only while they are switched on.
    const unstable: Record<string, boolean> = { [UNSTABLE_FEATURE]: s.features.websocket };
    if (s.features.peeking) unstable['org.matrix.msc2753'] = true;
    ctx.body = { versions: SPEC_VERSIONS, unstable_features: unstable };
  });
  r.raw('get', '/.well-known/matrix/client', (ctx) => {
    ctx.body = { 'm.homeserver': { base_url: s.publicBaseUrl } };
  });
  r.raw('get', '/health', (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = 'OK';
  });

  r.authed('get', '/capabilities', (ctx) => {
    const available: Record<string, string> = {};
    // From the version table, the same list createRoom and /upgrade accept.
    for (const v of SUPPORTED_ROOM_VERSIONS) available[v] = roomVersionRules(v).stability;
    ctx.body = {
      capabilities: {
        'm.room_versions': { default: s.rooms.defaultRoomVersion, available },
        'm.change_password': { enabled: true },
        'm.set_displayname': { enabled: true },
        'm.set_avatar_url': { enabled: true },
        // Addresses can be added only when this server can validate them (email on).
        'm.3pid_changes': { enabled: s.threepids.validation !== null },
      },
    };
  });
  // Credentials for the configured TURN servers (src/voip/turn.ts). Without any (turn.uris
  // empty) the answer is {} as Synapse's: clients then call without TURN, and matrix-js-sdk keeps
  // quiet (an error status would be logged as a failure on every check). Hearth has no guest
  // accounts, so turn.allow_guests has nothing to refuse yet.
  r.authed('get', '/voip/turnServer', (ctx, auth) => {
    ctx.body = turnCredentials(s.turn, auth.userId, s.now()) ?? {};
  });
}
