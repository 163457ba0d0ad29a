// Builds the client listener's request handler from the services bundle: a thin adapter from
// node:http to the route table (handlers.ts), which the socket's request frames share.

import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { parse as parseUrl } from 'node:url';
import getRawBody from 'raw-body';
import { MatrixError } from '../errors.js';
import { internPath, type AnswerSink } from './deferred.js';
import { parseJsonBody } from './middleware.js';
import { BinaryBody, DeferredAnswer, parseQuery, type ApiRequest, type ApiResponse, type HandlerTable, type Query, type RequestBody, type UploadSource } from './handlers.js';
import { clientIp } from '../sync/socket/requests.js';
import { ClientRoutes, type ApiServices } from './routing.js';
import { accountRoutes } from './routes/account.js';
import { ssoRoutes } from './routes/sso.js';
import { historyRoutes } from './routes/history.js';
import { miscRoutes } from './routes/misc.js';
import { profileRoutes } from './routes/profile.js';
import { roomRoutes } from './routes/rooms.js';
import { identityRoutes } from './routes/identity.js';
import { threepidRoutes } from './routes/threepid.js';
import { syncRoutes } from './routes/sync.js';
import { ephemeralRoutes } from './routes/ephemeral.js';
import { pushRuleRoutes } from './routes/push-rules.js';
import { directoryRoutes } from './routes/directory.js';
import { appServiceRoutes } from './routes/appservice.js';
import { searchRoutes } from './routes/search.js';
import { spaceRoutes } from './routes/spaces.js';
import { adminRoutes } from './routes/admin.js';
import { chatRoutes } from './routes/chat.js';
import { relationRoutes } from './routes/relations.js';
import { pusherRoutes } from './routes/pushers.js';
import { legacyRoutes } from './routes/legacy.js';
import { openIdRoutes } from './routes/openid.js';
import { whoisRoutes } from './routes/whois.js';
import { e2eeRoutes } from './routes/keys.js';
import { mediaRoutes } from './routes/media.js';
import { peekRoutes } from './routes/peek.js';
import { OPENID_USERINFO_PATH, openIdUserInfo, type OpenIdUserInfo } from './openid-userinfo.js';

export interface HttpOptions {
  maxBodyBytes: number;
  maxEventBytes: number;
  /** Take the client IP from X-Forwarded-For (only behind a trusted reverse proxy). */
  trustProxy: boolean;
  observe: (method: string, route: string, status: number, seconds: number) => void;
  renderMetrics?: () => Promise<{ contentType: string; body: string }>;
  /** Serve GET /metrics on this listener too, to `Authorization: Bearer <metricsSecret>`. */
  metricsSecret?: string;
  /** Shared with the composition root for graceful shutdown. */
  lifecycle: Lifecycle;
}

/**
 * Graceful shutdown state: requests in flight are counted so stop() can wait for them; once
 * stopping, new requests on kept-alive connections are dropped unanswered (clients retry; sends
 * are idempotent by transaction ID).
 */
export class Lifecycle {
  stopping = false;
  inflight = 0;
  private idle: Array<() => void> = [];

  enter(): void {
    this.inflight++;
  }

  leave(): void {
    this.inflight--;
    if (this.inflight === 0) for (const f of this.idle.splice(0)) f();
  }

  /** Resolves when no request is in flight, or after `maxMs`. */
  drained(maxMs: number): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, maxMs);
      this.idle.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

const CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_HTTP_REQUEST_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE']);

export interface HttpApp {
  /** The client listener's request handler (node:http). */
  handler: RequestListener;
  /** Every route, served by dispatch; the socket's request frames use the same table. */
  table: HandlerTable;
}

/** Declares every route of the client listener in one table. */
export function createRouteTable(services: ApiServices, opts: Pick<HttpOptions, 'maxBodyBytes' | 'maxEventBytes' | 'observe' | 'renderMetrics' | 'metricsSecret'>): HandlerTable {
  const routes = new ClientRoutes(services, { maxBodyBytes: opts.maxBodyBytes, maxEventBytes: opts.maxEventBytes, observe: opts.observe });
  miscRoutes(routes, services);
  accountRoutes(routes, services);
  ssoRoutes(routes, services);
  roomRoutes(routes, services);
  syncRoutes(routes, services);
  historyRoutes(routes, services);
  profileRoutes(routes, services);
  ephemeralRoutes(routes, services);
  pushRuleRoutes(routes, services);
  directoryRoutes(routes, services);
  searchRoutes(routes, services);
  spaceRoutes(routes, services);
  adminRoutes(routes, services);
  chatRoutes(routes, services);
  relationRoutes(routes, services);
  pusherRoutes(routes, services);
  e2eeRoutes(routes, services);
  mediaRoutes(routes, services);
  legacyRoutes(routes, services);
  openIdRoutes(routes, services);
  whoisRoutes(routes, services);
  appServiceRoutes(routes, services);
  identityRoutes(routes, services);
  threepidRoutes(routes, services);
  peekRoutes(routes, services);
  // Metrics have their own listener (metrics.listen); here only behind a configured secret.
  if (opts.renderMetrics && opts.metricsSecret) {
    const render = opts.renderMetrics;
    const secret = sha256(opts.metricsSecret);
    routes.raw('get', '/metrics', async (ctx) => {
      // From the Authorization header only: a secret in a query string ends up in access logs.
      const given = ctx.query.access_token === undefined ? ctx.accessToken : undefined;
      if (given === undefined || !timingSafeEqual(sha256(given), secret)) {
        throw new MatrixError('M_FORBIDDEN', 'GET /metrics here needs Authorization: Bearer <metrics.client_port_secret>');
      }
      const m = await render();
      ctx.type = m.contentType;
      ctx.body = m.body;
    });
  }
  return routes.table;
}

/**
 * The HTTP adapter, on node:http directly: graceful-shutdown accounting, CORS, and one function
 * that turns the request into an ApiRequest for the table and writes its ApiResponse back, with
 * the response rules the handlers were written to (Koa's, which this replaced: a parked /sync
 * held ~4 KiB of Koa context, request, response and middleware frames).
 */
export function createHttpApp(services: ApiServices, opts: HttpOptions): HttpApp {
  const table = createRouteTable(services, opts);
  const logger = services.logger;
  const userInfo = openIdUserInfo((token) => services.accounts.openIdUser(token));
  const handler: RequestListener = (req, res) => {
    if (opts.lifecycle.stopping) {
      // Like a server that is already gone: the client sees a closed connection and retries
      // elsewhere or later (sends are idempotent), rather than an error it might show a user.
      req.socket.destroy();
      return;
    }
    opts.lifecycle.enter();
    serve(table, userInfo, req, res, opts.trustProxy, logger, opts.lifecycle).then(
      (deferred) => {
        // A deferred answer leaves when it is written (HttpWriter).
        if (!deferred) opts.lifecycle.leave();
      },
      (err: unknown) => {
        // dispatch never throws; this is the adapter's own failure (a bug): answered 500 if it can be.
        opts.lifecycle.leave();
        logger.error({ err, method: req.method, url: req.url }, 'http adapter error');
        if (!res.headersSent) {
          cors(res);
          res.statusCode = 500;
          res.setHeader('Content-Type', 'application/json');
          res.end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'Internal server error' }));
        } else res.destroy();
      },
    );
  };
  return { handler, table };
}

async function serve(
  table: HandlerTable,
  userInfo: OpenIdUserInfo,
  req: IncomingMessage,
  res: ServerResponse,
  trustProxy: boolean,
  logger: ApiServices['logger'],
  lifecycle: Lifecycle,
): Promise<boolean> {
  if (req.method === 'OPTIONS') {
    cors(res);
    res.statusCode = 204;
    res.end();
    return false;
  }
  const request = new HttpRequest(req, res, trustProxy);
  let answer: ApiResponse;
  try {
    // The OpenID userinfo lookup is served here, outside the route table (see openid-userinfo.ts).
    const info = await userInfo(request.method, request.path, request.query);
    answer = info ? { ...info, route: OPENID_USERINFO_PATH } : await table.dispatch(request);
  } finally {
    request.done();
  }
  if (answer.body instanceof DeferredAnswer) {
    // Parked (a long-poll /sync): this frame and the table's return now; the writer answers.
    const deferred = answer.body;
    if (req.closed || res.destroyed) deferred.cancel();
    else {
      // One shared listener, which finds the answer on the request: a closure per parked request
      // (and its context) would cost more than the property.
      (req as ParkedRequest)[PARKED] = deferred;
      req.on('close', cancelParked);
    }
    // Only the path is left of the URL: the query (filter, since, perhaps access_token) was read,
    // and the URL string is the largest thing a parked request still holds of its own.
    req.url = internPath(request.path);
    // The headers were read too (token, user agent): their table and strings (the token's
    // "Bearer ..." among them) are the next largest. Nothing reads them again: Node decided
    // keep-alive and Expect at parse time, and the answer is written from method and path.
    req.headers = PARKED_HEADERS;
    req.rawHeaders = PARKED_RAW_HEADERS;
    // The socket's inactivity timer (server.timeout: a client that stops reading an answer) has
    // nothing to time while no answer is being written; the wait has its own deadline. Stopped
    // here, armed again before the answer is written (HttpWriter).
    const idleMs = req.socket.timeout ?? 0;
    if (idleMs > 0) req.socket.setTimeout(0);
    deferred.attach(new HttpWriter(req, res, logger, lifecycle, idleMs));
    return true;
  }
  answerWith(req, res, answer, logger);
  return false;
}

const PARKED = Symbol('hearth.parked');
type ParkedRequest = IncomingMessage & { [PARKED]?: DeferredAnswer };

/** The 'close' listener of every parked request (called with the request as `this`): the client went. */
function cancelParked(this: ParkedRequest): void {
  this[PARKED]?.cancel();
}

/** What a parked request's headers read as (see serve): shared, empty, frozen. */
const PARKED_HEADERS: IncomingMessage['headers'] = Object.freeze({});
const PARKED_RAW_HEADERS: string[] = Object.freeze([]) as unknown as string[];

/** Writes a deferred answer when it settles, and ends the request's accounting. */
class HttpWriter implements AnswerSink {
  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly logger: ApiServices['logger'],
    private readonly lifecycle: Lifecycle,
    /** The socket's inactivity timeout, stopped while parked (0: there was none). */
    private readonly idleMs: number,
  ) {}

  answered(answer: ApiResponse): void {
    (this.req as ParkedRequest)[PARKED] = undefined;
    try {
      if (this.idleMs > 0 && !this.res.destroyed) this.req.socket.setTimeout(this.idleMs);
      answerWith(this.req, this.res, answer, this.logger);
    } catch (err) {
      this.logger.error({ err, method: this.req.method, url: this.req.url }, 'http adapter error');
      this.res.destroy();
    } finally {
      this.lifecycle.leave();
    }
  }
}

function answerWith(req: IncomingMessage, res: ServerResponse, answer: ApiResponse, logger: ApiServices['logger']): void {
  // The client went away while the answer was being made: nothing to write to.
  if (res.writableEnded || res.destroyed) {
    if (answer.body instanceof BinaryBody) answer.body.stream.destroy();
    return;
  }
  if (answer.body instanceof BinaryBody) {
    cors(res);
    res.statusCode = answer.status;
    if (answer.headers) for (const [k, v] of Object.entries(answer.headers)) res.setHeader(k, v);
    writeBinary(req, res, answer.body, answer.contentType, logger);
  } else writeSmall(req, res, answer);
}

/**
 * The CORS headers of every answer, set when it is written: set on arrival, a parked long-poll
 * kept Node's header table (three entries, their lower-cased names) for as long as it waited.
 */
function cors(res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
  res.setHeader('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
}

const CORS_HEADERS: readonly string[] = [
  'Access-Control-Allow-Origin',
  '*',
  'Access-Control-Allow-Methods',
  'GET, POST, PUT, DELETE, OPTIONS',
  'Access-Control-Allow-Headers',
  'X-Requested-With, Content-Type, Authorization',
];

/** Statuses that carry no body. */
const EMPTY_STATUS = new Set([204, 205, 304]);

/** Media bytes, piped; the type is set as stored (not looked up as a file extension); HEAD sends no body. */
function writeBinary(req: IncomingMessage, res: ServerResponse, body: BinaryBody, contentType: string | undefined, logger: ApiServices['logger']): void {
  res.setHeader('Content-Type', contentType ?? 'application/octet-stream');
  res.setHeader('Content-Length', body.length);
  if (req.method === 'HEAD' || EMPTY_STATUS.has(res.statusCode)) {
    body.stream.destroy();
    res.end();
    return;
  }
  body.stream.on('error', (err: NodeJS.ErrnoException) => {
    const level = err.code && CONNECTION_ERRORS.has(err.code) ? 'debug' : 'warn';
    logger[level]({ err, method: req.method, url: req.url }, 'response stream error');
    res.destroy();
  });
  // A client that goes away stops the read.
  res.once('close', () => body.stream.destroy());
  body.stream.pipe(res);
}

/**
 * Every other answer, as Koa wrote it: JSON for objects, text for strings, bytes as given, the
 * reason phrase for a bare status, nothing for null and the empty statuses. Written with one
 * writeHead of a flat header list (no per-header setHeader calls and their header table: the
 * same headers on the wire, for less work on every request).
 */
function writeSmall(req: IncomingMessage, res: ServerResponse, answer: ApiResponse): void {
  const body = answer.body;
  const headers = [...CORS_HEADERS];
  // The handler's own Content-Type wins over the one made from the body.
  let typeGiven: string | undefined;
  if (answer.headers) {
    for (const k in answer.headers) {
      const lower = k.toLowerCase();
      if (lower === 'content-type') typeGiven = answer.headers[k];
      else if (lower !== 'content-length' && lower !== 'transfer-encoding') headers.push(k, answer.headers[k]);
    }
  }
  if (body === null || EMPTY_STATUS.has(answer.status)) {
    res.writeHead(EMPTY_STATUS.has(answer.status) ? answer.status : 204, headers);
    res.end();
    return;
  }
  let payload: string | Buffer;
  let type: string;
  if (body === undefined) {
    // A status without a body: its reason phrase as text.
    payload = STATUS_CODES[answer.status] ?? String(answer.status);
    type = 'text/plain; charset=utf-8';
  } else if (typeof body === 'string') {
    payload = body;
    type = answer.contentType ? withCharset(answer.contentType) : /^\s*</.test(body) ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
  } else if (Buffer.isBuffer(body)) {
    payload = body;
    type = answer.contentType ? withCharset(answer.contentType) : 'application/octet-stream';
  } else {
    payload = JSON.stringify(body);
    // No "; charset=utf-8": RFC 8259 defines no charset parameter for application/json.
    type = answer.contentType ? withCharset(answer.contentType) : 'application/json';
  }
  headers.push('Content-Type', typeGiven ?? type);
  headers.push('Content-Length', String(typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length));
  res.writeHead(answer.status, headers);
  res.end(req.method === 'HEAD' ? undefined : payload);
}

/** A media type as Koa's `ctx.type =` set it: text and JSON types get "; charset=utf-8". */
function withCharset(type: string): string {
  if (/charset/i.test(type)) return type;
  return /^text\//i.test(type) || /^application\/json$/i.test(type) ? `${type}; charset=utf-8` : type;
}

/** The path and query of a request target, as Koa read them (parseurl). */
function splitTarget(url: string): { path: string; search: string } {
  // The common case: origin-form without a fragment or characters url.parse would escape.
  if (url.startsWith('/') && !/[\s#\u00a0\ufeff]/.test(url)) {
    const q = url.indexOf('?');
    return q < 0 ? { path: url, search: '' } : { path: url.slice(0, q), search: url.slice(q + 1) };
  }
  const u = parseUrl(url);
  return { path: u.pathname ?? '/', search: u.query ?? '' };
}

/** A node:http request as the table sees it; the abort signal is made only for handlers that ask. */
class HttpRequest implements ApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Query;
  readonly accessToken: string | undefined;
  readonly ip: string;
  readonly userAgent: string | undefined;
  private abort?: AbortController;
  private onClose?: () => void;

  constructor(private readonly req: IncomingMessage, private readonly res: ServerResponse, trustProxy: boolean) {
    this.method = req.method ?? 'GET';
    const { path, search } = splitTarget(req.url ?? '/');
    this.path = path;
    this.query = parseQuery(search);
    this.accessToken = accessTokenOf(req.headers.authorization ?? '', this.query);
    this.ip = clientIp(req, trustProxy);
    this.userAgent = req.headers['user-agent'] || undefined;
  }

  get body(): RequestBody {
    const req = this.req;
    return {
      read: async (rule) => {
        // Gone while the request waited (paced, src/admission): nothing to read or answer, and
        // raw-body would report a 500-class "stream not readable" for it.
        if (req.destroyed) throw new MatrixError('M_UNKNOWN', 'Request aborted by the client', {}, 400);
        const raw = await getRawBody(req, { limit: rule.limit, length: req.headers['content-length'] || undefined });
        return parseJsonBody(raw, rule);
      },
    };
  }

  upload(): UploadSource {
    const length = this.req.headers['content-length'] ?? '';
    return {
      contentType: this.req.headers['content-type'] || null,
      length: /^\d{1,15}$/.test(length) ? Number(length) : undefined,
      body: this.req,
    };
  }

  /**
   * The connection is gone: the response is destroyed only by the socket closing while the request
   * is served (it is answered after dispatch). Not `req.destroyed`: a request whose body was read
   * is destroyed then (auto-destroy of the readable), with its client still waiting.
   */
  get closed(): boolean {
    return this.res.destroyed;
  }

  /**
   * Aborted once the connection closes, and already aborted if it closed before this was first
   * read ('close' is not emitted twice). Follows the response, not the request: a request whose
   * body was read emits 'close' then, with its client still connected.
   */
  get signal(): AbortSignal {
    if (!this.abort) {
      const abort = (this.abort = new AbortController());
      if (this.res.destroyed) abort.abort();
      else {
        this.onClose = () => abort.abort();
        this.res.once('close', this.onClose);
      }
    }
    return this.abort.signal;
  }

  /** Served (the answer is written after this): the response's own 'close' is no abort. */
  done(): void {
    if (this.onClose) this.res.off('close', this.onClose);
  }
}

/**
 * The Authorization header's bearer token, else ?access_token. A header that is present but not
 * a bearer token counts as no token (it is not silently replaced by the query).
 */
export function accessTokenOf(authorization: string, query: Query): string | undefined {
  if (authorization) return BEARER.exec(authorization)?.[1];
  const q = query.access_token;
  return typeof q === 'string' && q ? q : undefined;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
