// Composition of the identity-server pieces (src/app.ts calls this): one guarded HTTP client for
// identity servers (its own, because identity.verify_tls may differ from other outbound
// requests), the IdentityClient, third-party invites and 3PID bindings.
//
// Invariant: the federation listener is built before the room service, so it reaches the
// third-party invites through `lateThirdPartyHooks`, bound once createIdentity has run; a call
// before that (none can come before the listeners start) is refused, not crashed on.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { createOutboundHttp, type OutboundGuard, type OutboundHttp } from '../net/outbound-guard.js';
import { fedPath, type FederationClient } from '../federation/client.js';
import type { JsonValue, SigningKey } from '../protocol/types.js';
import type { RoomService } from '../room/room-service.js';
import type { RoomState } from '../room/room-state.js';
import type { Store } from '../store/types.js';
import { IdentityClient } from './client.js';
import { ThirdPartyInvites } from './third-party-invites.js';
import { ThreepidBindings } from './bindings.js';

export interface IdentityServices {
  http: OutboundHttp;
  client: IdentityClient;
  invites: ThirdPartyInvites;
  bindings: ThreepidBindings;
}

export interface IdentityDeps {
  config: { server_name: string; identity: { verify_tls: boolean; request_timeout_ms: number } };
  signingKey: SigningKey;
  guard: OutboundGuard;
  store: Store;
  rooms: RoomService;
  currentState: (roomId: string) => Promise<RoomState | null>;
  /** Absent when federation is off: invites sent from other servers cannot be redeemed. */
  federationClient?: FederationClient;
  logger: Logger;
}

export function createIdentity(d: IdentityDeps): IdentityServices {
  const http = createOutboundHttp(d.guard, { rejectUnauthorized: d.config.identity.verify_tls });
  const client = new IdentityClient({ http, serverName: d.config.server_name, signingKey: d.signingKey, timeoutMs: d.config.identity.request_timeout_ms });
  const fed = d.federationClient;
  const invites = new ThirdPartyInvites({
    serverName: d.config.server_name,
    identity: client,
    rooms: d.rooms,
    currentState: d.currentState,
    store: d.store,
    ...(fed
      ? {
          exchangeRemote: async (destination, roomId, event) => {
            await fed.request(destination, { method: 'PUT', path: fedPath`/_matrix/federation/v1/exchange_third_party_invite/${roomId}`, body: event, timeoutMs: 30_000 });
          },
        }
      : {}),
    logger: d.logger,
  });
  const bindings = new ThreepidBindings({ identity: client, store: d.store, logger: d.logger });
  return { http, client, invites, bindings };
}

/** The federation listener's third-party endpoints, answered by `late.invites` once it is set. */
export function lateThirdPartyHooks(late: { invites?: ThirdPartyInvites }): {
  exchange(origin: string, roomId: string, body: JsonValue | undefined): Promise<void>;
  onBind(body: JsonValue | undefined): Promise<void>;
} {
  const get = () => {
    if (!late.invites) throw new MatrixError('M_UNKNOWN', 'Not ready', {}, 503);
    return late.invites;
  };
  return {
    exchange: (origin, roomId, body) => get().exchange(origin, roomId, body),
    onBind: async (body) => {
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new MatrixError('M_BAD_JSON', 'The body must be a JSON object');
      await get().onBind(body);
    },
  };
}
