// Part of the composition root (src/app.ts): the client listener's limits, the socket server and
// the helpers that open and close node:http servers. Invariants: nothing here is constructed
// anywhere but from createHearth; behind a proxy the per-address connection cap is off (every
// connection comes from the proxy); closing a server cuts its kept-alive connections too.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Admission } from '../admission/admission.js';
import type { HandlerTable } from '../api/handlers.js';
import type { Lifecycle } from '../api/http.js';
import type { ApiServices } from '../api/routing.js';
import type { HearthConfig } from '../config/load.js';
import type { PresenceService } from '../ephemeral/presence.js';
import type { ConnectionTracker } from '../sync/connections.js';
import type { SyncFilterResolver } from '../sync/filter.js';
import { SocketServer } from '../sync/socket/socket-server.js';

/** The client (and metrics) listener's limits from limits.http. */
export function listenerLimitsOf(config: HearthConfig) {
  const http = config.limits.http;
  return {
    headerTimeoutMs: http.header_timeout_ms,
    requestTimeoutMs: http.request_timeout_ms,
    keepAliveTimeoutMs: http.keep_alive_timeout_ms,
    idleTimeoutMs: http.idle_timeout_ms,
    // Behind a proxy every connection comes from the proxy: the cap would throttle everyone.
    maxConnectionsPerAddress: config.listeners.client.x_forwarded ? 0 : http.max_connections_per_address,
    exemptAddresses: http.exempt_addresses,
  };
}

/** The WebSocket server (websocket.enabled on a worker with the sync role), or undefined. */
export function createSockets(
  config: HearthConfig,
  sync: boolean,
  deps: {
    services: ApiServices;
    presence: PresenceService;
    connections: ConnectionTracker;
    syncFilters: SyncFilterResolver;
    table: HandlerTable;
    lifecycle: Lifecycle;
    logger: Logger;
    admission: Admission;
  },
): SocketServer | undefined {
  if (!config.websocket.enabled || !sync) return undefined;
  const { services, presence, connections, syncFilters, table, lifecycle, logger, admission } = deps;
  return new SocketServer(
    {
      accounts: services.accounts,
      sync: services.sync,
      presence,
      connections,
      resolveFilter: (userId, value) => syncFilters.resolve(userId, value),
      api: table,
      lifecycle,
      logger,
      admission,
    },
    {
      maxConnections: config.websocket.max_connections,
      maxCatchups: config.websocket.max_catchups,
      maxBufferedBytes: config.websocket.max_buffered_bytes,
      heartbeatMs: config.websocket.heartbeat_ms,
      authTimeoutMs: config.websocket.auth_timeout_ms,
      pollMs: config.websocket.poll_ms,
      shedRetryMs: config.websocket.shed_retry_ms,
      trustProxy: config.listeners.client.x_forwarded,
    },
  );
}

/** backlog: listen(2)'s queue of connections not yet accepted; Node's default (511) when omitted. */
export function listen(server: Server, port: number, host: string, backlog?: number): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export function baseUrl(server: Server): string {
  const addr = server.address() as AddressInfo;
  const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `http://${h}:${addr.port}`;
}

export async function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
