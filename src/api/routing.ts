// Route registration helpers shared by the route modules: the services bundle, the v3/r0 alias,
// authentication, and zod-based request validation.

import Router from '@koa/router';
import { LRUCache } from 'lru-cache';
import type { z } from 'zod';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { accessTokenOf, type AuthInfo, type Ctx, type HearthState } from './middleware.js';
import type { AccountService } from '../users/account-service.js';
import type { RoomService } from '../room/room-service.js';
import type { SyncService } from '../sync/sync-service.js';
import type { EventFormatter } from '../room/client-event.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { Store } from '../store/types.js';
import type { RoomInput } from '../room/room-input.js';
import type { Notifier } from '../sync/notifier.js';
import type { RateLimitName, RateLimiters } from './rate-limit.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { PresenceService } from '../ephemeral/presence.js';
import type { PushRulesService } from '../push/push-rules-service.js';
import type { ReceiptService } from '../receipts/receipt-service.js';
import type { E2eeServices } from '../e2ee/index.js';
import type { ConnectionTracker } from '../sync/connections.js';
import type { OutboundGuard } from '../net/outbound-guard.js';
import type { TurnConfig } from '../voip/turn.js';

export interface ApiServices {
  serverName: string;
  publicBaseUrl: string;
  store: Store;
  accounts: AccountService;
  rooms: RoomService;
  roomInput: RoomInput;
  sync: SyncService;
  typing: TypingService;
  presence: PresenceService;
  pushRules: PushRulesService;
  receipts: ReceiptService;
  /** End-to-end encryption: keys, cross-signing, to-device, key backup, device lists. */
  e2ee: E2eeServices;
  /** The SSRF policy for user-chosen outbound URLs (pusher URLs are checked at /pushers/set). */
  outboundGuard: OutboundGuard;
  /** TURN servers for /voip/turnServer. */
  turn: TurnConfig;
  connections: ConnectionTracker;
  formatter: EventFormatter;
  visibility: VisibilityChecker;
  notifier: Notifier;
  logger: Logger;
  limits: RateLimiters;
  registration: { enabled: boolean; token: string | null; sharedSecret: string | null };
  maxSyncTimeoutMs: number;
  features: { websocket: boolean };
  now: () => number;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

/**
 * Which per-user limit an authenticated route spends from. Every POST, PUT and DELETE spends
 * from one: `write` unless it says otherwise (`message` for routes that create room events).
 * Fan-outs charge their cost on top, inside the handler (profile: rooms, to-device: recipients).
 */
export type RouteLimit = RateLimitName | 'none';
export type AuthedHandler = (ctx: Ctx, auth: AuthInfo) => Promise<void> | void;
type Method = 'get' | 'post' | 'put' | 'delete';

/**
 * Registers client routes under /_matrix/client/v3 and the legacy /r0 alias (bot-sdk still uses
 * r0), or under an explicit version list for v1-only endpoints.
 */
const TOUCH_INTERVAL_MS = 60_000;

export class ClientRoutes {
  private readonly lastTouched = new LRUCache<string, number>({ max: 100_000 });

  constructor(readonly router: Router<HearthState>, private readonly services: ApiServices) {}

  route(method: Method, path: string, handler: Handler, versions: string[] = ['v3', 'r0']): void {
    for (const v of versions) {
      (this.router[method] as (p: string, h: (ctx: Ctx) => Promise<void>) => unknown)(
        `/_matrix/client/${v}${path}`,
        async (ctx: Ctx) => {
          await handler(ctx);
        },
      );
    }
  }

  authed(method: Method, path: string, handler: AuthedHandler, versions?: string[], limit: RouteLimit = method === 'get' ? 'none' : 'write'): void {
    this.route(
      method,
      path,
      async (ctx) => {
        const auth = await this.authenticate(ctx);
        if (limit !== 'none') await this.services.limits[limit].consume(auth.userId);
        await handler(ctx, auth);
      },
      versions,
    );
  }

  async authenticate(ctx: Ctx): Promise<AuthInfo> {
    const token = accessTokenOf(ctx);
    if (!token) throw new MatrixError('M_MISSING_TOKEN', 'Missing access token');
    const auth = await this.services.accounts.authenticate(token);
    ctx.state.auth = auth;
    // Last-seen needs minute accuracy, not a durable write per request (every /sync is one).
    const key = `${auth.userId}\u0000${auth.deviceId}`;
    const now = this.services.now();
    if (now - (this.lastTouched.get(key) ?? 0) >= TOUCH_INTERVAL_MS) {
      this.lastTouched.set(key, now);
      void this.services.store.devices
        .touchDevice(auth.userId, auth.deviceId, now, ctx.ip || null)
        .catch((err: unknown) => this.services.logger.warn({ err, userId: auth.userId }, 'could not record device last-seen'));
    }
    return auth;
  }
}

/** Validates with a zod schema; the first problem becomes M_BAD_JSON (or M_MISSING_PARAM). */
export function parse<T extends z.ZodTypeAny>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.join('.') || 'body';
  const missing = issue.code === 'invalid_type' && valueAt(value, issue.path) === undefined;
  throw new MatrixError(missing ? 'M_MISSING_PARAM' : 'M_BAD_JSON', `${where}: ${missing ? 'required' : issue.message}`);
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let v = root;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

export function param(ctx: Ctx, name: string): string {
  const v = ctx.params[name];
  if (v === undefined || v === '') throw new MatrixError('M_MISSING_PARAM', `Missing path parameter ${name}`);
  // No Matrix identifier, event type or account-data type contains NUL; stores and logs that
  // treat it as a terminator would see another name than the one checked here.
  if (v.includes('\u0000')) throw new MatrixError('M_INVALID_PARAM', `Path parameter ${name} contains a NUL byte`);
  return v;
}

export function queryString(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  if (Array.isArray(v)) return v[0];
  return v;
}

export function queryInt(ctx: Ctx, name: string, def: number, min: number, max: number): number {
  const v = queryString(ctx, name);
  if (v === undefined || v === '') return def;
  if (!/^-?\d{1,15}$/.test(v)) throw new MatrixError('M_INVALID_PARAM', `${name} must be an integer`);
  return Math.min(max, Math.max(min, Number(v)));
}
