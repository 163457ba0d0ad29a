// Builds the Koa application for the client listener from the services bundle.

import Koa from 'koa';
import Router from '@koa/router';
import { MatrixError } from './errors.js';
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

export interface HttpOptions {
  maxBodyBytes: number;
  maxEventBytes: number;
  /** Take the client IP from X-Forwarded-For (only behind a trusted reverse proxy). */
  trustProxy: boolean;
  observe: (method: string, route: string, status: number, seconds: number) => void;
  renderMetrics?: () => Promise<{ contentType: string; body: string }>;
}

// Event bodies are capped at the PDU limit; everything else at the general body limit.
const EVENT_PATH = /\/rooms\/[^/]+\/(send|state)\//;

export function createHttpApp(services: ApiServices, opts: HttpOptions): Koa<HearthState> {
  const app = new Koa<HearthState>({ proxy: opts.trustProxy });
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
  if (opts.renderMetrics) {
    const render = opts.renderMetrics;
    router.get('/metrics', async (ctx) => {
      const m = await render();
      ctx.type = m.contentType;
      ctx.body = m.body;
    });
  }

  const eventLimit = jsonBody(opts.maxEventBytes);
  const generalLimit = jsonBody(opts.maxBodyBytes);
  app.use(requestLog(services.logger, opts.observe));
  app.use(cors());
  app.use(errors(services.logger));
  app.use((ctx, next) => (EVENT_PATH.test(ctx.path) ? eventLimit(ctx, next) : generalLimit(ctx, next)));
  app.use(router.routes());
  app.use(
    router.allowedMethods({
      throw: true,
      methodNotAllowed: () => new MatrixError('M_UNRECOGNIZED', 'Method not allowed', {}, 405),
      notImplemented: () => new MatrixError('M_UNRECOGNIZED', 'Not implemented', {}, 501),
    }),
  );
  return app;
}
