// The HTTP server under the client listener: slow-client timeouts and a per-address connection
// cap (config limits.http).
//
// What each timeout covers (Node's http server, checked against its source for Node 20):
// - headersTimeout / requestTimeout run from the start of a request (or of the connection) until
//   the parser has the whole header block / the whole request. They are checked every
//   `connectionsCheckingInterval` against connections still receiving a request, so the response
//   side (a /sync long-poll parked for minutes) is never counted. Expiry answers 408.
// - keepAliveTimeout runs between a finished response and the next request (Node adds 1 s).
// - server.timeout is socket inactivity while a request is in flight: a client that stops reading
//   its response. A parked long-poll sends nothing, so it must outlast sync.max_timeout_ms.
// - An upgraded (WebSocket) socket leaves all of these: Node detaches its timeout handler at the
//   upgrade and ws clears the socket timeout; the ws heartbeat takes over.

import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ListenerLimits {
  headerTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  /** Concurrent connections one remote address may hold; 0 for no cap. */
  maxConnectionsPerAddress: number;
  /** Remote addresses the cap does not apply to. */
  exemptAddresses: readonly string[];
}

export interface ListenerHooks {
  /** A connection was closed on arrival. */
  onRefused?: (reason: 'per_address') => void;
}

export function createListener(handler: RequestListener, limits: ListenerLimits, hooks: ListenerHooks = {}): Server {
  const server = createServer(
    {
      headersTimeout: limits.headerTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node's default (30 s) would let a 10 s header timeout fire at up to 40 s.
      connectionsCheckingInterval: checkingInterval(limits),
    },
    handler,
  );
  server.timeout = limits.idleTimeoutMs;
  if (limits.maxConnectionsPerAddress > 0) capPerAddress(server, limits, hooks);
  return server;
}

/** A quarter of the shorter timeout, between 25 ms and 1 s. */
export function checkingInterval(limits: Pick<ListenerLimits, 'headerTimeoutMs' | 'requestTimeoutMs'>): number {
  return Math.max(25, Math.min(1000, Math.floor(Math.min(limits.headerTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/** "::ffff:192.0.2.1" (an IPv4 client on a dual-stack socket) counts as "192.0.2.1". */
export function normaliseAddress(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr.toLowerCase();
}

function capPerAddress(server: Server, limits: ListenerLimits, hooks: ListenerHooks): void {
  const exempt = new Set(limits.exemptAddresses.map(normaliseAddress));
  const open = new Map<string, number>();
  // Runs after Node's own connection listener; destroying here just frees the parser it set up.
  server.on('connection', (socket: Socket) => {
    if (socket.remoteAddress === undefined) return; // already gone
    const addr = normaliseAddress(socket.remoteAddress);
    if (exempt.has(addr)) return;
    const n = open.get(addr) ?? 0;
    if (n >= limits.maxConnectionsPerAddress) {
      socket.destroy();
      hooks.onRefused?.('per_address');
      return;
    }
    open.set(addr, n + 1);
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1;
      if (left <= 0) open.delete(addr);
      else open.set(addr, left);
    });
  });
}
