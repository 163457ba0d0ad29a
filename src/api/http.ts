// Builds the client listener's Koa application from the services bundle: a thin adapter over the
// route table (handlers.ts), which the socket's request frames share.

import { createHash, timingSafeEqual } from 'node:crypto';
import Koa from 'koa';
import getRawBody from 'raw-body';
import { MatrixError } from '../errors.js';
import { parseJsonBody } from './middleware.js';
import { BinaryBody, parseQuery, type ApiRequest, type HandlerTable, type Query, type RequestBody, type UploadSource } from './handlers.js';
import { ClientRoutes, type ApiServices } from './routing.js';
import { accountRoutes } from './routes/account.js';
import { ssoRoutes } from './routes/sso.js';
import { historyRoutes } from './routes/history.js';
import { miscRoutes } from './routes/misc.js';
import { profileRoutes } from './routes/profile.js';
import { roomRoutes } from './routes/rooms.js';
import { identityRoutes } from './routes/identity.js';
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
import { openIdUserInfo } from './openid-userinfo.js';

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
  app: Koa;
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
 * The Koa adapter: graceful-shutdown accounting, CORS, and one middleware that turns the Koa
 * context into an ApiRequest for the table and writes its ApiResponse back.
 */
export function createHttpApp(services: ApiServices, opts: HttpOptions): HttpApp {
  const app = new Koa({ proxy: opts.trustProxy });
  // Only connection errors get here (a client resetting mid-request); everything a handler throws
  // is rendered by the table. Koa's default would print them to stderr, bypassing the logger.
  app.on('error', (err: NodeJS.ErrnoException, ctx?: Koa.Context) => {
    const level = err.code && CONNECTION_ERRORS.has(err.code) ? 'debug' : 'warn';
    services.logger[level]({ err, method: ctx?.method, path: ctx?.path }, 'request connection error');
  });
  const table = createRouteTable(services, opts);

  app.use(async (ctx, next) => {
    if (opts.lifecycle.stopping) {
      // Like a server that is already gone: the client sees a closed connection and retries
      // elsewhere or later (sends are idempotent), rather than an error it might show a user.
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    opts.lifecycle.enter();
    try {
      await next();
    } finally {
      opts.lifecycle.leave();
    }
  });
  app.use(openIdUserInfo((token) => services.accounts.openIdUser(token)));
  app.use(async (ctx) => {
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
    ctx.set('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      return;
    }
    const req = new HttpRequest(ctx);
    try {
      const res = await table.dispatch(req);
      // Koa's own default for a matched route (the metrics middleware in observability reads it).
      (ctx as unknown as { _matchedRoute?: string })._matchedRoute = res.route === 'unmatched' ? undefined : res.route;
      ctx.status = res.status;
      if (res.headers) ctx.set(res.headers);
      if (res.body instanceof BinaryBody) {
        // Koa pipes the stream and destroys it if the client goes away; HEAD sends no body. The
        // type is set as stored (ctx.type would look it up as a file extension).
        ctx.set('Content-Type', res.contentType ?? 'application/octet-stream');
        if (ctx.method === 'HEAD') {
          res.body.stream.destroy();
          ctx.length = res.body.length;
        } else {
          ctx.body = res.body.stream;
          ctx.length = res.body.length;
        }
      } else if (res.body !== undefined) {
        if (res.contentType) ctx.type = res.contentType;
        // Koa's default for a JSON body adds "; charset=utf-8", a parameter RFC 8259 does not
        // define for application/json; set before the body, so Koa keeps it.
        else if (res.body !== null && typeof res.body === 'object') ctx.set('Content-Type', 'application/json');
        ctx.body = res.body;
      }
    } finally {
      req.done();
    }
  });
  return { app, table };
}

/** A Koa request as the table sees it; the abort signal is made only for handlers that ask. */
class HttpRequest implements ApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Query;
  readonly accessToken: string | undefined;
  readonly ip: string;
  readonly userAgent: string | undefined;
  readonly body: RequestBody;
  readonly upload: () => UploadSource;
  private abort?: AbortController;
  private readonly onClose = () => this.abort?.abort();

  constructor(private readonly ctx: Koa.Context) {
    this.method = ctx.method;
    this.path = ctx.path;
    this.query = parseQuery(ctx.querystring);
    this.accessToken = accessTokenOf(ctx.get('authorization'), this.query);
    this.ip = ctx.ip;
    this.userAgent = ctx.get('user-agent') || undefined;
    this.body = {
      read: async (rule) => {
        const raw = await getRawBody(ctx.req, { limit: rule.limit, length: ctx.get('content-length') || undefined });
        return parseJsonBody(raw, rule);
      },
    };
    this.upload = () => {
      const length = ctx.get('content-length');
      return {
        contentType: ctx.get('content-type') || null,
        length: /^\d{1,15}$/.test(length) ? Number(length) : undefined,
        body: ctx.req,
      };
    };
  }

  get signal(): AbortSignal {
    if (!this.abort) {
      this.abort = new AbortController();
      this.ctx.req.on('close', this.onClose);
    }
    return this.abort.signal;
  }

  done(): void {
    if (this.abort) this.ctx.req.off('close', this.onClose);
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
