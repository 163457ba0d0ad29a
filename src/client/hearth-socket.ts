// A small typed client for the WebSocket sync stream (docs/websocket.md), for Node. Used by the
// tests and the benchmark; also a reference for client authors.
//
// It tracks the last sync frame it handed to the application (`lastToken`) and acknowledges
// it, so a reconnect resumes exactly after what was processed.

import WebSocket from 'ws';
import type { JsonObject } from '../protocol/types.js';
import {
  SOCKET_PATH,
  type ClientFrame,
  type CloseReason,
  type ResponseFrame,
  type ServerFrame,
  type SyncFrame,
} from '../sync/socket/protocol.js';

export interface HearthSocketOptions {
  /** Homeserver base URL, e.g. http://127.0.0.1:8008 */
  baseUrl: string;
  accessToken: string;
  since?: string;
  filter?: string;
  delivered?: boolean;
  /** Send the token in an auth frame instead of the header (what browsers must do). */
  authFrame?: boolean;
  /** Acknowledge each sync frame after onSync returns, unless it says it needs none (default true). */
  autoAck?: boolean;
  onSync?: (body: SyncFrame['body']) => void | Promise<void>;
  onError?: (frame: ServerFrame & { type: 'error' }) => void;
}

export interface SocketClose {
  code: number;
  reason: CloseReason;
}

export class HearthSocket {
  private ws?: WebSocket;
  private nextId = 0;
  private readonly pending = new Map<string, (f: ResponseFrame) => void>();
  private chain: Promise<void> = Promise.resolve();
  /** next_batch of the last sync frame processed. */
  lastToken?: string;
  readonly closed: Promise<SocketClose>;
  private resolveClosed!: (c: SocketClose) => void;

  constructor(private readonly opts: HearthSocketOptions) {
    this.lastToken = opts.since;
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  /** Opens the socket; rejects with the HTTP status and body if the server refuses (e.g. 503 shed). */
  connect(): Promise<void> {
    const url = new URL(SOCKET_PATH, this.opts.baseUrl.replace(/^http/, 'ws'));
    if (this.lastToken) url.searchParams.set('since', this.lastToken);
    if (this.opts.filter) url.searchParams.set('filter', this.opts.filter);
    if (this.opts.delivered) url.searchParams.set('delivered', 'true');
    const headers: Record<string, string> = this.opts.authFrame ? {} : { authorization: `Bearer ${this.opts.accessToken}` };
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    this.ws = ws;
    // Frames are handled strictly in order, even when onSync is slow.
    ws.on('message', (data) => {
      this.chain = this.chain.then(() => this.onMessage(data.toString())).catch(() => undefined);
    });
    ws.on('close', (code, reason) => {
      let parsed: CloseReason = {};
      try {
        parsed = reason.length ? (JSON.parse(reason.toString()) as CloseReason) : {};
      } catch {
        /* not ours */
      }
      for (const [id, resolve] of this.pending) resolve(notSent(id));
      this.pending.clear();
      this.resolveClosed({ code, reason: parsed });
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => {
        if (this.opts.authFrame) this.frame({ type: 'auth', access_token: this.opts.accessToken, since: this.lastToken, filter: this.opts.filter, delivered: this.opts.delivered });
        resolve();
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => reject(Object.assign(new Error(`socket refused: ${res.statusCode}`), { status: res.statusCode, body: safeJson(body) })));
      });
      ws.once('error', reject);
    });
  }

  /** Any Client-Server API call over the socket. */
  request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: JsonObject): Promise<ResponseFrame> {
    const id = `r${++this.nextId}`;
    return this.call(id, { type: 'request', id, method, path, body });
  }

  /** Sends an event; resolves to the response frame (status 200 and body.event_id on success). */
  send(roomId: string, eventType: string, txnId: string, content: JsonObject): Promise<ResponseFrame> {
    const id = `s${++this.nextId}`;
    return this.call(id, { type: 'send', id, room_id: roomId, event_type: eventType, txn_id: txnId, content });
  }

  /**
   * A frame answered by the response with its id. On a socket that is not open it is not sent
   * and answers at once with status 0, as a close answers those in flight: a caller never waits
   * on a frame that went nowhere.
   */
  private call(id: string, f: ClientFrame): Promise<ResponseFrame> {
    if (this.ws?.readyState !== WebSocket.OPEN) return Promise.resolve(notSent(id));
    const p = new Promise<ResponseFrame>((resolve) => this.pending.set(id, resolve));
    this.frame(f);
    return p;
  }

  ack(token: string): void {
    this.frame({ type: 'ack', next_batch: token });
  }

  close(): Promise<SocketClose> {
    this.ws?.close(1000);
    return this.closed;
  }

  /** Drops the connection without a closing handshake (simulates a network failure). */
  kill(): void {
    this.ws?.terminate();
  }

  private frame(f: ClientFrame): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
  }

  private async onMessage(text: string): Promise<void> {
    const f = JSON.parse(text) as ServerFrame;
    if (f.type === 'sync') {
      await this.opts.onSync?.(f.body);
      this.lastToken = f.body.next_batch;
      // A frame marked ack: false needs none; the next ack (a position) covers it anyway.
      if (this.opts.autoAck !== false && f.ack !== false) this.ack(f.body.next_batch);
    } else if (f.type === 'response') {
      this.pending.get(f.id)?.(f);
      this.pending.delete(f.id);
    } else if (f.type === 'error') {
      this.opts.onError?.(f);
    }
  }
}

/** The answer to a frame the socket closed under (or never sent): status 0, as a transport error. */
function notSent(id: string): ResponseFrame {
  return { type: 'response', id, status: 0, body: { errcode: 'M_UNKNOWN', error: 'socket closed' } };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
