// The WebSocket sync protocol (our extension; docs/websocket.md is its specification). Shared by
// the server and the typed client in src/client/, so both sides agree on every frame and code.

import type { JsonObject } from '../../protocol/types.js';

export const SOCKET_PATH = '/_matrix/client/unstable/io.hearth.sync/ws';
export const UNSTABLE_FEATURE = 'io.hearth.sync.ws';

/** Close codes (4000-4999 are free for applications). */
export const CloseCode = {
  /** Server shutting down; resume from the token in the reason elsewhere. */
  GOING_AWAY: 1001,
  /** Missing or invalid access token. */
  UNAUTHORIZED: 4001,
  /** A frame that is not JSON or not a known frame type, or a bad parameter. */
  BAD_FRAME: 4002,
  /** The client did not read fast enough; the outbound buffer passed its bound. */
  SLOW_CONSUMER: 4008,
  /** Heartbeat missed: no pong within the interval. */
  TIMEOUT: 4010,
  /** Overloaded: reconnect after retry_after_ms (given in the reason), with jitter. */
  OVERLOADED: 4013,
} as const;

// ---- client -> server --------------------------------------------------------------------

/** First frame when the access token could not go in the Authorization header (browsers). */
export interface AuthFrame {
  type: 'auth';
  access_token: string;
  since?: string;
  /** A filter ID or inline filter JSON, as /sync's `filter`. */
  filter?: string;
  set_presence?: 'online' | 'offline' | 'unavailable';
  /** Opt in to io.hearth.delivered ephemeral events. */
  delivered?: boolean;
}

/** Any Client-Server API call, answered by a ResponseFrame with the same id. */
export interface RequestFrame {
  type: 'request';
  id: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, e.g. "/_matrix/client/v3/rooms/!r:hs/send/m.room.message/t1". */
  path: string;
  body?: JsonObject;
}

/** Shorthand for PUT /rooms/{room}/send/{type}/{txn}; same idempotency as REST. */
export interface SendFrame {
  type: 'send';
  id: string;
  room_id: string;
  event_type: string;
  txn_id: string;
  content: JsonObject;
}

/** The client has processed everything up to `next_batch` (delivery and to-device ack). */
export interface AckFrame {
  type: 'ack';
  next_batch: string;
}

export interface PingFrame {
  type: 'ping';
  id?: string;
}

export type ClientFrame = AuthFrame | RequestFrame | SendFrame | AckFrame | PingFrame;

// ---- server -> client --------------------------------------------------------------------

/** Exactly a /sync response body; `body.next_batch` works with /sync, /messages, /keys/changes. */
export interface SyncFrame {
  type: 'sync';
  body: JsonObject & { next_batch: string };
  /**
   * false: nothing waits for this frame's acknowledgement (it carries no to-device messages and
   * the server records no delivered receipts), so the client need not send an `ack` for it. A
   * later ack covers it; acking anyway is harmless. Absent: acknowledge as usual.
   */
  ack?: false;
}

export interface ResponseFrame {
  type: 'response';
  id: string;
  status: number;
  body: JsonObject;
}

export interface PongFrame {
  type: 'pong';
  id?: string;
}

/** Sent before the server closes for a reason the client should act on. */
export interface ErrorFrame {
  type: 'error';
  errcode: string;
  error: string;
  retry_after_ms?: number;
}

export type ServerFrame = SyncFrame | ResponseFrame | PongFrame | ErrorFrame;

/** The close reason: a short JSON object (close reasons are limited to 123 bytes). */
export interface CloseReason {
  /** Token to resume from with `since` (the last sync frame the server finished writing). */
  resume?: string;
  retry_after_ms?: number;
}
