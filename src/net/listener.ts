// The HTTP server under the client listener: slow-client timeouts, a per-address connection cap
// (config limits.http), and Matrix error bodies for what Node's HTTP parser answers itself.
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

import { createServer, STATUS_CODES, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

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
  /** The parser layer answered (400 malformed, 408 timeout, 413/431 too large). */
  onClientError?: (status: number, code: string | undefined) => void;
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
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, hooks));
  return server;
}

/** errcode and message for each error Node's parser layer reports. */
function describe(err: NodeJS.ErrnoException): { status: number; errcode: string; error: string } {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, errcode: 'M_UNKNOWN', error: 'Request timeout' };
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, errcode: 'M_TOO_LARGE', error: 'Request header fields too large' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, errcode: 'M_TOO_LARGE', error: 'Chunk extensions too large' };
    default: {
      // llhttp's reason is a fixed phrase ("Invalid method encountered"), safe to hand back.
      const reason = (err as { reason?: unknown }).reason;
      return { status: 400, errcode: 'M_UNKNOWN', error: typeof reason === 'string' && reason.length <= 100 ? `Bad request: ${reason}` : 'Bad request' };
    }
  }
}

/**
 * Replaces Node's bare 400/408/431 (no body) with a Matrix error, as Node would: only on a
 * writable socket on which no response has started, then closes the connection.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, hooks: ListenerHooks): void {
  const res = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable || res?.headersSent || answered.has(socket)) {
    socket.destroy();
    return;
  }
  answered.add(socket);
  const { status, errcode, error } = describe(err);
  hooks.onClientError?.(status, err.code);
  const body = JSON.stringify({ errcode, error });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Access-Control-Allow-Origin: *',
    'Connection: close',
  ];
  // Closed once written; a client that does not read even this much is cut a second later.
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Sockets already answered: a trickler's further bytes can raise a second parse error. */
const answered = new WeakSet<Duplex>();

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
