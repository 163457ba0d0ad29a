// The WebSocket sync stream: a second transport over the same SyncService that serves /sync.
// Each socket runs the sync loop server-side and pushes every non-empty response as a frame;
// request and send frames go to the route table that serves REST (see requests.ts), so both
// transports share auth, validation, rate limits, idempotency and errors.
//
// Concurrency: one async loop per socket; frames from the client are handled as they arrive.
// Backpressure: a sync frame is produced only after the previous one was handed to the socket,
// and a socket whose unsent buffer passes `maxBufferedBytes` is closed (SLOW_CONSUMER) with the
// last token it certainly finished writing, so memory per slow client is bounded.

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { MatrixError } from '../../errors.js';
import type { ParsedBodyInfo } from '../../api/middleware.js';
import type { AuthInfo } from '../../users/auth-info.js';
import type { PresenceService } from '../../ephemeral/presence.js';
import type { JsonObject } from '../../protocol/types.js';
import type { AccountService } from '../../users/account-service.js';
import type { ConnectionTracker } from '../connections.js';
import type { SyncFilter } from '../filter.js';
import type { SyncResponse, SyncService } from '../sync-service.js';
import { ParkedSync } from '../parked-sync.js';
import { parseToken } from '../token.js';
import { CloseCode, SOCKET_PATH, type AuthFrame, type CloseReason, type RequestFrame, type SendFrame, type ServerFrame } from './protocol.js';
import type { Admission } from '../../admission/admission.js';
import { answerRequest, clientIp, readFrame, type RequestApi } from './requests.js';

export interface SocketServerOptions {
  maxConnections: number;
  /** Concurrent catch-up (first) syncs before new sockets are shed with retry_after_ms. */
  maxCatchups: number;
  maxBufferedBytes: number;
  heartbeatMs: number;
  authTimeoutMs: number;
  /**
   * Longest a parked socket waits before its loop re-checks (no frame is sent for an empty
   * result). Sockets are woken by changes, so this is a safety net, not a poll.
   */
  pollMs: number;
  /** Base of the retry_after_ms handed to shed clients; jitter of up to the same again is added. */
  shedRetryMs: number;
  /** Take the client address from X-Forwarded-For, as the HTTP listener does. */
  trustProxy?: boolean;
  /** Sockets pinged per event-loop turn in a heartbeat (default HEARTBEAT_CHUNK). */
  heartbeatChunk?: number;
}

/**
 * A ping costs about what a sync frame's write does (~20 µs, the `writev`), so a heartbeat over
 * every socket in one turn held the loop ~20 ms per 1,000 sockets (200 ms at 10,000) while
 * deliveries waited; 128 per turn keeps a turn near a wake chunk's few milliseconds.
 */
export const HEARTBEAT_CHUNK = 128;

export interface SocketServerDeps {
  accounts: AccountService;
  sync: SyncService;
  presence: PresenceService;
  connections: ConnectionTracker;
  resolveFilter: (userId: string, value: string | undefined) => Promise<SyncFilter>;
  /** The route table REST is served by; request and send frames go to it. */
  api: RequestApi;
  /** Graceful shutdown: request frames count as requests in flight, as HTTP ones do. */
  lifecycle?: { stopping: boolean; enter(): void; leave(): void };
  logger: Logger;
  onCountChange?: (open: number) => void;
  /**
   * Shared with /sync: a socket's catch-up (first sync, fresh or resumed) takes one of its
   * slots, and a new socket is refused with 503 while none is free.
   */
  admission?: Admission;
}

interface Session {
  ws: WebSocket;
  auth?: AuthInfo;
  token?: string;
  /** The client address of the upgrade request (request frames run as from there). */
  ip: string;
  since?: string;
  filter?: SyncFilter;
  setPresence?: 'online' | 'offline' | 'unavailable';
  delivered: boolean;
  /**
   * next_batch of the last sync frame queued on the socket. A close frame goes out after queued
   * frames, so a client that reads to the close has seen it; clients still prefer their own last
   * processed token.
   */
  confirmed?: string;
  alive: boolean;
  /** Streaming has stopped (closing, closed, device deleted): the loop ends, a parked sync answers. */
  aborted: boolean;
  /**
   * Aborted with the session; made only when a request frame asks for it (an AbortSignal is an
   * EventTarget with its own maps, ~0.6 KiB, on every idle socket otherwise).
   */
  abort?: AbortController;
  /** The loop's sync while it waits for changes (cancelled when the socket closes). */
  parked?: ParkedSync;
  catchingUp: boolean;
  /** Set while an auth frame is being checked: frames right behind it wait for it. */
  authenticating?: Promise<void>;
  /** Request frames being answered; a revoked session closes when this reaches 0. */
  inflight: number;
  closeWhenIdle: boolean;
}

export class SocketServer {
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
  private readonly sessions = new Set<Session>();
  private catchups = 0;
  private heartbeat?: NodeJS.Timeout;
  /** The heartbeat going round the sockets, a chunk per turn (see HEARTBEAT_CHUNK). */
  private beating?: Iterator<Session>;
  private beatTurn?: NodeJS.Immediate;
  private closing = false;

  constructor(private readonly deps: SocketServerDeps, private readonly opts: SocketServerOptions) {}

  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Closes every socket with GOING_AWAY and its resume token. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.beatTurn) clearImmediate(this.beatTurn);
    this.beating = undefined;
    for (const s of this.sessions) this.closeWith(s, CloseCode.GOING_AWAY, { resume: s.confirmed ?? s.since });
    this.wss.close();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== SOCKET_PATH) {
      refuse(socket, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      return;
    }
    const full = this.deps.admission !== undefined && !this.deps.admission.catchupAvailable();
    if (this.closing || this.sessions.size >= this.opts.maxConnections || this.catchups >= this.opts.maxCatchups || full) {
      const retry = this.retryAfter();
      refuse(socket, 503, { errcode: 'M_LIMIT_EXCEEDED', error: 'Server busy, retry later', retry_after_ms: retry }, retry);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.open(ws, req, url));
  }

  /** Jittered so a reconnect storm spreads out instead of returning in one wave. */
  private retryAfter(): number {
    return Math.round(this.opts.shedRetryMs * (1 + Math.random()));
  }

  private async open(ws: WebSocket, req: IncomingMessage, url: URL): Promise<void> {
    const s: Session = { ws, ip: clientIp(req, this.opts.trustProxy ?? false), delivered: url.searchParams.get('delivered') === 'true', alive: true, aborted: false, catchingUp: false, inflight: 0, closeWhenIdle: false };
    this.sessions.add(s);
    this.deps.onCountChange?.(this.sessions.size);
    ws.on('pong', () => (s.alive = true));
    ws.on('close', () => this.closed(s));
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => void this.onMessage(s, data, isBinary));
    try {
      s.since = url.searchParams.get('since') ?? undefined;
      const header = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (header) {
        s.authenticating = this.authenticate(s, header[1], {
          filter: url.searchParams.get('filter') ?? undefined,
          set_presence: (url.searchParams.get('set_presence') ?? undefined) as AuthFrame['set_presence'],
        });
        await s.authenticating;
      } else {
        const timer = setTimeout(() => {
          if (!s.auth) this.closeWith(s, CloseCode.UNAUTHORIZED, {});
        }, this.opts.authTimeoutMs);
        timer.unref();
      }
    } catch (err) {
      this.fail(s, err);
    }
  }

  private async authenticate(s: Session, token: string, params: Partial<AuthFrame>): Promise<void> {
    s.auth = await this.deps.accounts.authenticate(token);
    s.token = token;
    if (params.since !== undefined) s.since = params.since;
    if (s.since !== undefined) parseToken(s.since, 'since');
    if (params.delivered) s.delivered = true;
    if (params.set_presence && !['online', 'offline', 'unavailable'].includes(params.set_presence)) {
      throw new MatrixError('M_INVALID_PARAM', 'set_presence must be online, offline or unavailable');
    }
    s.setPresence = params.set_presence;
    const filter = await this.deps.resolveFilter(s.auth.userId, params.filter);
    // The socket may have closed while we were waiting: then it must not be counted as open.
    if (!this.sessions.has(s) || s.ws.readyState !== s.ws.OPEN) return;
    s.filter = filter;
    this.deps.connections.socketOpened(s.auth.userId);
    this.deps.presence.connectionOpened(s.auth.userId);
    // Resuming from a token means everything before it was received.
    if (s.since !== undefined) await this.deps.sync.acknowledge(s.auth.userId, s.auth.deviceId, parseToken(s.since).stream);
    void this.loop(s, filter);
  }

  /**
   * The socket's sync loop: one sync after another, each non-empty answer pushed as a frame.
   * When a sync parks, the loop returns and the parked sync resumes it (SessionSink), so an idle
   * socket holds no suspended frame of this loop, only its parked sync.
   */
  private async loop(s: Session, filter: SyncFilter, resumed = false, previous?: SyncResponse): Promise<void> {
    const auth = s.auth!;
    // The first sync is the socket's catch-up; a resumed loop is past it.
    let releaseAdmission: (() => void) | undefined;
    if (!resumed) {
      s.catchingUp = true;
      this.catchups++;
      releaseAdmission = this.deps.admission?.admitCatchup();
    }
    try {
      while (s.ws.readyState === s.ws.OPEN && !s.aborted) {
        this.deps.presence.syncing(auth.userId, s.setPresence);
        const out = await this.deps.sync.syncOrPark({
          userId: auth.userId,
          deviceId: auth.deviceId,
          since: s.since,
          filter,
          timeoutMs: s.catchingUp ? 0 : this.opts.pollMs,
          fullState: false,
          gone: s,
          acknowledgeSince: false,
          delivered: s.delivered,
          // The next sync starts from this one's answer: it parks on the rooms this build watched.
          recordWatched: true,
          previous,
        });
        previous = undefined;
        if (s.catchingUp) {
          s.catchingUp = false;
          this.catchups--;
          releaseAdmission?.();
        }
        if (out instanceof ParkedSync) {
          s.parked = out;
          // Closed while the sync was being built: stop it now rather than at its timeout.
          if (s.aborted) out.cancel();
          out.attach(new SessionSink(this, s, filter));
          return;
        }
        if (!this.delivered(s, out)) break;
        previous = out;
      }
    } catch (err) {
      this.fail(s, err);
    } finally {
      if (s.catchingUp) {
        s.catchingUp = false;
        this.catchups--;
      }
      releaseAdmission?.();
    }
  }

  /** A parked sync of `s` answered: push it, and run the loop again. */
  resumed(s: Session, filter: SyncFilter, body: SyncResponse | undefined, err: unknown): void {
    s.parked = undefined;
    if (body === undefined) return this.fail(s, err);
    if (!this.delivered(s, body)) return;
    if (s.ws.readyState === s.ws.OPEN && !s.aborted) void this.loop(s, filter, true, body);
  }

  /** Takes one answer of the loop; false when the loop must stop (the socket is closing). */
  private delivered(s: Session, body: SyncResponse): boolean {
    if (s.aborted) return false;
    const empty = s.since !== undefined && this.deps.sync.isEmpty(body);
    s.since = body.next_batch;
    if (empty) return true;
    const token = body.next_batch;
    s.confirmed = token;
    // Most frames need no ack back (no to-device messages, no delivered receipts recorded): saying
    // so spares a client frame per delivery, which costs the server about as much as a small build.
    this.send(s, this.deps.sync.ackWanted(body) ? { type: 'sync', body } : { type: 'sync', body, ack: false });
    return true;
  }

  private async onMessage(s: Session, data: RawData, isBinary: boolean): Promise<void> {
    try {
      const read = readFrame(data as Buffer, isBinary);
      if (!read) {
        this.closeWith(s, CloseCode.BAD_FRAME, {});
        return;
      }
      const frame = read.frame;
      if (frame.type === 'auth') {
        if (s.auth || s.authenticating) throw new MatrixError('M_BAD_JSON', 'Already authenticated');
        if (typeof frame.access_token !== 'string') throw new MatrixError('M_MISSING_TOKEN', 'access_token required');
        s.authenticating = this.authenticate(s, frame.access_token, frame);
        await s.authenticating;
        return;
      }
      // Frames sent right behind the auth frame wait for it; after that they run concurrently.
      if (!s.auth && s.authenticating) await s.authenticating.catch(() => undefined);
      if (!s.auth) {
        // What REST answers a request without a token, in a frame the client can match by id.
        if ((frame.type === 'request' || frame.type === 'send') && typeof frame.id === 'string') {
          const e = new MatrixError('M_MISSING_TOKEN', 'Missing access token');
          this.send(s, { type: 'response', id: frame.id, status: e.status, body: e.toJSON() as JsonObject });
        }
        throw new MatrixError('M_MISSING_TOKEN', 'Authenticate first');
      }
      switch (frame.type) {
        case 'ping':
          this.send(s, { type: 'pong', id: frame.id });
          return;
        case 'ack':
          await this.deps.sync.acknowledge(s.auth.userId, s.auth.deviceId, parseToken(frame.next_batch, 'next_batch').stream);
          return;
        case 'send':
        case 'request':
          await this.request(s, frame, read.intake);
          return;
        default:
          this.send(s, { type: 'error', errcode: 'M_UNRECOGNIZED', error: 'Unknown frame type' });
          this.closeWith(s, CloseCode.BAD_FRAME, {});
          return;
      }
    } catch (err) {
      this.fail(s, err);
    }
  }

  /** Runs a Client-Server request through the route table as the socket's user. */
  private async request(s: Session, frame: RequestFrame | SendFrame, intake: ParsedBodyInfo): Promise<void> {
    const lifecycle = this.deps.lifecycle;
    // Like HTTP while stopping: no answer; the client resends after reconnecting (idempotent).
    if (lifecycle?.stopping) return;
    lifecycle?.enter();
    s.inflight++;
    try {
      const res = await answerRequest(this.deps.api, { token: s.token!, ip: s.ip, signal: signalOf(s) }, frame, intake);
      this.send(s, res);
      // The token was revoked without this socket being told (another process): it ends here.
      if (res.status === 401 && res.body.errcode === 'M_UNKNOWN_TOKEN') s.closeWhenIdle = true;
    } finally {
      s.inflight--;
      lifecycle?.leave();
      if (s.closeWhenIdle && s.inflight === 0) this.revoke(s);
    }
  }

  /**
   * Every frame counts against the buffer bound, responses as well as sync frames. No write
   * callback: nothing waits on one, and a closure per frame is garbage at every delivery.
   */
  private send(s: Session, frame: ServerFrame): void {
    if (s.ws.readyState !== s.ws.OPEN) return;
    s.ws.send(JSON.stringify(frame));
    if (s.ws.bufferedAmount > this.opts.maxBufferedBytes) this.closeWith(s, CloseCode.SLOW_CONSUMER, { resume: s.confirmed });
  }

  /** The device's access tokens are gone (logout, deletion): its sockets must not outlive them. */
  deviceDeleted(userId: string, deviceId: string): void {
    for (const s of this.sessions) {
      if (s.auth?.userId === userId && s.auth.deviceId === deviceId) {
        // Stop streaming now; close once requests being answered (perhaps this very logout,
        // sent over the socket) have had their responses written.
        stop(s);
        if (s.inflight === 0) this.revoke(s);
        else s.closeWhenIdle = true;
      }
    }
  }

  /** Auth failures and bad frames close the socket; other Matrix errors are reported and it stays open. */
  private fail(s: Session, err: unknown): void {
    const e = err instanceof MatrixError ? err : null;
    if (!e) {
      this.deps.logger.error({ err }, 'socket error');
      this.closeWith(s, 1011, {});
      return;
    }
    this.send(s, { type: 'error', errcode: e.errcode, error: e.message });
    if (e.errcode === 'M_UNKNOWN_TOKEN' || e.errcode === 'M_MISSING_TOKEN') this.closeWith(s, CloseCode.UNAUTHORIZED, {});
    // Any other refusal before the stream started (a bad filter, since or set_presence, whatever
    // its errcode) leaves a socket that can never sync: close it, as the close-code table says.
    else if (!s.auth || !s.filter) this.closeWith(s, CloseCode.BAD_FRAME, {});
  }

  private revoke(s: Session): void {
    this.send(s, { type: 'error', errcode: 'M_UNKNOWN_TOKEN', error: 'Access token revoked' });
    this.closeWith(s, CloseCode.UNAUTHORIZED, {});
  }

  private closeWith(s: Session, code: number, reason: CloseReason): void {
    stop(s);
    if (s.ws.readyState === s.ws.OPEN || s.ws.readyState === s.ws.CONNECTING) {
      s.ws.close(code, JSON.stringify(reason));
      // A peer that does not complete the closing handshake is cut off.
      setTimeout(() => s.ws.terminate(), 2000).unref();
    }
  }

  private closed(s: Session): void {
    if (!this.sessions.delete(s)) return;
    stop(s);
    if (s.auth && s.filter) {
      this.deps.connections.socketClosed(s.auth.userId);
      this.deps.presence.connectionClosed(s.auth.userId);
    }
    this.deps.onCountChange?.(this.sessions.size);
  }

  /**
   * Pings every socket, a chunk per loop turn; one that has not answered the previous ping is
   * closed. A Set's iterator survives deletions and visits sockets added meanwhile, so every
   * socket open through a whole heartbeat is pinged in it. A heartbeat still going round when
   * the next is due (a starved loop) is let finish instead of starting over.
   */
  private beat(): void {
    if (this.beating) return;
    this.beating = this.sessions.values();
    this.beatChunk();
  }

  private beatChunk(): void {
    this.beatTurn = undefined;
    const it = this.beating;
    if (!it) return;
    const chunk = Math.max(1, this.opts.heartbeatChunk ?? HEARTBEAT_CHUNK);
    for (let n = 0; n < chunk; n++) {
      const next = it.next();
      if (next.done) {
        this.beating = undefined;
        return;
      }
      const s = next.value;
      if (!s.alive) {
        this.closeWith(s, CloseCode.TIMEOUT, { resume: s.confirmed });
        continue;
      }
      s.alive = false;
      s.ws.ping();
      if (s.auth) this.deps.presence.syncing(s.auth.userId, s.setPresence);
    }
    this.beatTurn = setImmediate(() => this.beatChunk());
  }
}

/** Ends the socket's streaming: its loop stops and its parked sync (if any) answers now. */
function stop(s: Session): void {
  s.aborted = true;
  s.abort?.abort();
  s.parked?.cancel();
}

/** The session's abort signal, for request frames (a /sync sent as one ends with the socket). */
function signalOf(s: Session): AbortSignal {
  if (!s.abort) {
    s.abort = new AbortController();
    if (s.aborted) s.abort.abort();
  }
  return s.abort.signal;
}

/** Where a socket's parked sync answers: back into its loop. */
class SessionSink {
  constructor(
    private readonly server: SocketServer,
    private readonly s: Session,
    private readonly filter: SyncFilter,
  ) {}

  resolve(body: SyncResponse): void {
    this.server.resumed(this.s, this.filter, body, undefined);
  }

  reject(err: unknown): void {
    this.server.resumed(this.s, this.filter, undefined, err);
  }
}

function refuse(socket: Duplex, status: number, body: JsonObject, retryAfterMs?: number): void {
  const payload = JSON.stringify(body);
  const headers = [
    `HTTP/1.1 ${status} ${status === 503 ? 'Service Unavailable' : 'Not Found'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(payload)}`,
    'Connection: close',
  ];
  if (retryAfterMs !== undefined) headers.push(`Retry-After: ${Math.ceil(retryAfterMs / 1000)}`);
  socket.end(`${headers.join('\r\n')}\r\n\r\n${payload}`);
}
