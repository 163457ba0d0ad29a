// Builds the Koa application for the client listener from the services bundle.

import { createHash, timingSafeEqual } from 'node:crypto';
import Koa from 'koa';
import Router from '@koa/router';
import { MatrixError } from '../errors.js';
import { cors, errors, jsonBody, requestLog, type HearthState } from './middleware.js';
import { ClientRoutes, type ApiServices } from './routing.js';
import { accountRoutes } from './routes/account.js';
import { historyRoutes } from './routes/history.js';
import { miscRoutes } from './routes/misc.js';
import { profileRoutes } from './routes/profile.js';
import { roomRoutes } from './routes/rooms.js';
import { syncRoutes } from './routes/sync.js';
import { ephemeralRoutes } from './routes/ephemeral.js';
import { pushRuleRoutes } from './routes/push-rules.js';
import { directoryRoutes } from './routes/directory.js';
import { chatRoutes } from './routes/chat.js';
import { relationRoutes } from './routes/relations.js';
import { pusherRoutes } from './routes/pushers.js';
import { e2eeRoutes } from './routes/keys.js';

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

// Event bodies are capped at the PDU limit; everything else at the general body limit.
const EVENT_PATH = /\/rooms\/[^/]+\/(send|state)\//;
// Account data and tags are stored as given and never signed: fractions are allowed there.
const ACCOUNT_DATA_PATH = /\/user\/[^/]+\/(rooms\/[^/]+\/)?(account_data|tags)\//;

export function createHttpApp(services: ApiServices, opts: HttpOptions): Koa<HearthState> {
  const app = new Koa<HearthState>({ proxy: opts.trustProxy });
  // Only connection errors get here (a client resetting mid-request); everything a handler throws
  // is rendered by errors(). Koa's default would print them to stderr, bypassing the logger.
  app.on('error', (err: NodeJS.ErrnoException, ctx?: Koa.Context) => {
    const level = err.code && CONNECTION_ERRORS.has(err.code) ? 'debug' : 'warn';
    services.logger[level]({ err, method: ctx?.method, path: ctx?.path }, 'request connection error');
  });
  const router = new Router<HearthState>();
  const routes = new ClientRoutes(router, services);

  miscRoutes(routes, services);
  accountRoutes(routes, services);
  roomRoutes(routes, services);
  syncRoutes(routes, services);
  historyRoutes(routes, services);
  profileRoutes(routes, services);
  ephemeralRoutes(routes, services);
  pushRuleRoutes(routes, services);
  directoryRoutes(routes, services);
  chatRoutes(routes, services);
  relationRoutes(routes, services);
  pusherRoutes(routes, services);
  e2eeRoutes(routes, services);
  // Metrics have their own listener (metrics.listen); here only behind a configured secret.
  if (opts.renderMetrics && opts.metricsSecret) {
    const render = opts.renderMetrics;
    const secret = sha256(opts.metricsSecret);
    router.get('/metrics', async (ctx) => {
      const given = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'))?.[1];
      if (given === undefined || !timingSafeEqual(sha256(given), secret)) {
        throw new MatrixError('M_FORBIDDEN', 'GET /metrics here needs Authorization: Bearer <metrics.client_port_secret>');
      }
      const m = await render();
      ctx.type = m.contentType;
      ctx.body = m.body;
    });
  }

  const eventLimit = jsonBody(opts.maxEventBytes);
  const generalLimit = jsonBody(opts.maxBodyBytes);
  const accountDataLimit = jsonBody(opts.maxBodyBytes, { fractions: true });
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
  app.use(requestLog(services.logger, opts.observe));
  app.use(cors());
  app.use(errors(services.logger));
  app.use((ctx, next) =>
    EVENT_PATH.test(ctx.path) ? eventLimit(ctx, next) : ACCOUNT_DATA_PATH.test(ctx.path) ? accountDataLimit(ctx, next) : generalLimit(ctx, next),
  );
  // A known method on a path without it, and a method the router does not know at all (PROPFIND,
  // MKCOL; Node's parser already refuses made-up ones, see listener.ts): 405 M_UNRECOGNIZED, with
  // the router's Allow header (empty for a path that serves nothing).
  app.use(async (ctx, next) => {
    await next();
    if ((ctx.status === 405 || ctx.status === 501) && ctx.body == null) {
      ctx.status = 405;
      ctx.body = new MatrixError('M_UNRECOGNIZED', 'Method not allowed', {}, 405).toJSON();
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
