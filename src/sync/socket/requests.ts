// Socket request frames (`request`, `send`), served by the route table (src/api/handlers.ts): a
// frame becomes the same transport-neutral ApiRequest an HTTP request becomes, with the socket's
// access token and client address, and the table's answer goes back as a response frame with the
// frame's id. Auth (checked per frame, so a revoked token fails here as over REST), rate limits,
// body intake, idempotency and error bodies are the table's; this module only translates. It is
// the socket's API adapter, a transport like the Koa one, so it may use src/api.
//
// Frame intake, for every frame type: the text is scanned once for numbers no route accepts, and
// each top-level field is hardened on its own, so a body may nest as deep over the socket as over
// HTTP. For request and send frames a failure goes into the body: it is answered in the response
// frame, after routing, as HTTP answers it. Whether fractions are allowed is the route's rule.

import type { IncomingMessage } from 'node:http';
import { BinaryBody, DeferredAnswer, parseQuery, type ApiRequest, type ApiResponse, type RequestBody } from '../../api/handlers.js';
import { intakeParsed, type ParsedBodyInfo } from '../../api/middleware.js';
import { MatrixError } from '../../errors.js';
import { hardenValue, hasLoneSurrogate, scanNumbers } from '../../protocol/canonical-json.js';
import type { JsonObject } from '../../protocol/types.js';
import type { ClientFrame, RequestFrame, ResponseFrame, SendFrame } from './protocol.js';

/** What the socket needs of the route table. */
export interface RequestApi {
  dispatch(req: ApiRequest): Promise<ApiResponse>;
}

/** Who a request frame runs as: the socket's credentials and address, and its lifetime. */
export interface FrameSender {
  token: string;
  ip: string;
  /** Aborted when the socket closes (a /sync sent as a request frame then returns). */
  signal: AbortSignal;
}

export interface ReadFrame {
  frame: ClientFrame;
  /** How the frame went through intake; the body of a request or send frame is judged by it. */
  intake: ParsedBodyInfo;
}

const FRAME_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses and hardens one client frame. Null for something that is not a frame at all (the socket
 * closes with BAD_FRAME); throws M_BAD_JSON for a value Matrix does not allow in a frame other
 * than request and send.
 */
export function readFrame(data: Buffer, isBinary: boolean): ReadFrame | null {
  let text: string;
  try {
    // ws has checked text frames; a binary one must not become U+FFFD on its way in.
    text = isBinary ? utf8.decode(data) : data.toString();
  } catch {
    return null;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const f = parsed as Record<string, unknown>;
  if (typeof f.type !== 'string') return null;
  const carriesBody = f.type === 'request' || f.type === 'send';
  const intake: ParsedBodyInfo = {
    fractions: false,
    frameBytes: data.length,
    measure: () => Buffer.byteLength(JSON.stringify(bodyOf(f as unknown as ClientFrame) ?? null)),
  };
  try {
    intake.fractions = scanNumbers(text).fractions;
    Object.setPrototypeOf(f, null);
    for (const k in f) {
      if (hasLoneSurrogate(k)) throw new Error('key contains a lone surrogate');
      hardenValue(f[k]);
    }
  } catch (err) {
    const e = new MatrixError('M_BAD_JSON', `Content contains a value Matrix does not allow: ${(err as Error).message}`);
    if (!carriesBody) throw e;
    intake.error = e;
  }
  if (intake.fractions && !carriesBody) {
    throw new MatrixError('M_BAD_JSON', 'Content contains a value Matrix does not allow: a number that is not an integer (no fractions or exponents)');
  }
  return { frame: f as unknown as ClientFrame, intake };
}

/** The body a request or send frame carries (undefined: none, as an empty HTTP body). */
function bodyOf(frame: ClientFrame): unknown {
  if (frame.type === 'send') return frame.content;
  if (frame.type === 'request') return frame.body;
  return undefined;
}

/** Runs a request or send frame through the route table as `who`; the answer carries its id. */
export async function answerRequest(api: RequestApi, who: FrameSender, frame: RequestFrame | SendFrame, intake: ParsedBodyInfo): Promise<ResponseFrame> {
  const id = frame.id;
  if (typeof id !== 'string') throw new MatrixError('M_BAD_JSON', 'request frames need a string id');
  const target = targetOf(frame);
  if (typeof target === 'string') return { type: 'response', id, status: 400, body: { errcode: 'M_BAD_JSON', error: target } };
  const hash = target.path.indexOf('#');
  const noHash = hash < 0 ? target.path : target.path.slice(0, hash);
  const q = noHash.indexOf('?');
  const body: RequestBody = { read: async (rule) => intakeParsed(bodyOf(frame), intake, rule) };
  let res = await api.dispatch({
    method: target.method,
    path: q < 0 ? noHash : noHash.slice(0, q),
    query: parseQuery(q < 0 ? '' : noHash.slice(q + 1)),
    body,
    accessToken: who.token,
    ip: who.ip,
    signal: who.signal,
  });
  if (res.body instanceof DeferredAnswer) res = await settled(res.body, who.signal);
  if (res.body instanceof BinaryBody) {
    // Media routes refuse frames before they run (the table's 'media' intake); this is the net.
    res.body.stream.destroy();
    return { type: 'response', id, status: 400, body: { errcode: 'M_UNRECOGNIZED', error: 'Media is served over HTTP only' } };
  }
  return { type: 'response', id, status: res.status, body: (res.body ?? {}) as JsonObject };
}

/** A deferred answer (a /sync sent as a request frame) once it settles; the socket's close cancels it. */
function settled(deferred: DeferredAnswer, signal: AbortSignal): Promise<ApiResponse> {
  return new Promise((resolve) => {
    const cancel = (): void => deferred.cancel();
    if (signal.aborted) deferred.cancel();
    else signal.addEventListener('abort', cancel, { once: true });
    deferred.attach({
      answered: (res) => {
        signal.removeEventListener('abort', cancel);
        resolve(res);
      },
    });
  });
}

/** Method and path of a frame, or why it has none. */
function targetOf(frame: RequestFrame | SendFrame): { method: string; path: string } | string {
  if (frame.type === 'send') {
    const { room_id: room, event_type: type, txn_id: txn } = frame;
    if (typeof room !== 'string' || typeof type !== 'string' || typeof txn !== 'string') return 'send frames need string room_id, event_type and txn_id';
    const e = encodeURIComponent;
    return { method: 'PUT', path: `/_matrix/client/v3/rooms/${e(room)}/send/${e(type)}/${e(txn)}` };
  }
  const { method, path } = frame;
  if (typeof path !== 'string' || !path.startsWith('/_matrix/') || typeof method !== 'string' || !FRAME_METHODS.has(method)) {
    return 'request frames need a method and a /_matrix/ path';
  }
  return { method, path };
}

/**
 * The client address of the upgrade request, by Koa's rule for HTTP requests (the first
 * X-Forwarded-For entry behind a trusted proxy, else the peer), so per-address limits and
 * last-seen addresses agree between transports.
 */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = req.headers['x-forwarded-for'];
  const first = trustProxy && typeof forwarded === 'string' && forwarded ? forwarded.split(',')[0].trim() : '';
  return first || req.socket.remoteAddress || '';
}
