// Route registration helpers shared by the route modules: the services bundle, the v3/r0 alias,
// the per-route declarations (auth, rate-limit class, intake rule) that go into the handler table
// (handlers.ts), authentication, and path and query parameter access.

import type { ErasureService } from '../room/erasure.js';
import type { ExpiringMap } from '../cluster/shared-state.js';
import type { Admission } from '../admission/admission.js';
import { LRUCache } from 'lru-cache';
import type { z } from 'zod';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { AuthInfo, Ctx } from './middleware.js';
import { HandlerTable, parse, type IntakeClass, type Method, type RouteLimit, type RouteSpec, type ShedClass, type TableDeps, type Query } from './handlers.js';
import type { AccountService } from '../users/account-service.js';
import type { Registration } from '../users/registration.js';
import type { RoomDirectory } from '../room/directory.js';
import type { RoomHistory } from '../room/history.js';
import type { RelationsService } from '../room/relations.js';
import type { LegacyEventStream } from '../sync/legacy-events.js';
import type { UserDataService } from '../users/user-data.js';
import type { PusherService } from '../push/pushers.js';
import type { EphemeralAccess } from '../ephemeral/access.js';
import type { ProfileService } from '../users/profile.js';
import type { RoomStateReader } from '../room/state-reader.js';
import type { RoomService } from '../room/room-service.js';
import type { RoomUpgradeService } from '../room/room-upgrade.js';
import type { SearchService } from '../room/search-service.js';
import type { HierarchyService } from '../room/hierarchy.js';
import type { AdminService } from '../admin/admin-service.js';
import type { SyncService } from '../sync/sync-service.js';
import type { SyncFilterResolver } from '../sync/filter.js';
import type { EventFormatter } from '../room/client-event.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { RoomInput } from '../room/room-input.js';
import type { Notifier } from '../sync/notifier.js';
import type { RateLimiters } from '../admission/rate-limit.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { PresenceService } from '../ephemeral/presence.js';
import type { PushRulesService } from '../push/push-rules-service.js';
import type { ReceiptService } from '../receipts/receipt-service.js';
import type { E2eeServices } from '../e2ee/index.js';
import type { ConnectionTracker } from '../sync/connections.js';
import type { OutboundGuard } from '../net/outbound-guard.js';
import type { TurnConfig } from '../voip/turn.js';
import type { MediaService } from '../media/media-service.js';
import type { UrlPreviewer } from '../media/url-preview.js';
import type { StreamToken } from '../sync/token.js';
import type { AppServices } from '../appservice/service.js';
import type { IdentityServices } from '../identity/index.js';
import type { LoginTokens } from '../auth/sso/login-tokens.js';
import type { CasService } from '../auth/sso/cas.js';
import type { Recaptcha } from '../auth/recaptcha.js';
import type { ThreepidServices } from '../threepid/index.js';
import type { PeekService } from '../sync/peeks.js';

export interface ApiServices {
  serverName: string;
  publicBaseUrl: string;
  accounts: AccountService;
  /** /register through user-interactive auth (sessions remember their parameters and account). */
  registrar: Registration;
  rooms: RoomService;
  /** /messages, /context and single events, filtered by history visibility. */
  history: RoomHistory;
  /** Room state, members and joined rooms, as the user may read them. */
  roomState: RoomStateReader;
  /** Local room aliases and the published room list. */
  directory: RoomDirectory;
  /** Account erasure (deactivation with erase: true). */
  erasure: ErasureService;
  upgrades: RoomUpgradeService;
  /** POST /search over room events. */
  search: SearchService;
  /** GET /rooms/{roomId}/hierarchy (spaces). */
  hierarchy: HierarchyService;
  /** The Synapse admin API subset (/_synapse/admin). */
  admin: AdminService;
  roomInput: RoomInput;
  sync: SyncService;
  /** The deprecated /events and /initialSync API. */
  legacy: LegacyEventStream;
  /** Tags, the notification list, content reports, user directory search. */
  userData: UserDataService;
  profiles: ProfileService;
  /** /relations and /threads. */
  relations: RelationsService;
  /** /sync's filter parameter, stored filters cached compiled. */
  syncFilters: SyncFilterResolver;
  typing: TypingService;
  /** Who may set typing and read presence. */
  ephemeral: EphemeralAccess;
  presence: PresenceService;
  pushRules: PushRulesService;
  pushers: PusherService;
  receipts: ReceiptService;
  /** End-to-end encryption: keys, cross-signing, to-device, key backup, device lists. */
  e2ee: E2eeServices;
  /** The SSRF policy for user-chosen outbound URLs (pusher URLs are checked at /pushers/set). */
  outboundGuard: OutboundGuard;
  /** The media repository (uploads, downloads, thumbnails). */
  media: MediaService;
  /** URL previews for /preview_url; null when media.url_preview.enabled is false. */
  urlPreviews: UrlPreviewer | null;
  /** TURN servers for /voip/turnServer. */
  turn: TurnConfig;
  connections: ConnectionTracker;
  formatter: EventFormatter;
  visibility: VisibilityChecker;
  notifier: Notifier;
  logger: Logger;
  limits: RateLimiters;
  registration: { enabled: boolean; token: string | null; sharedSecret: string | null; allowGuests: boolean };
  /** One-time login tokens (m.login.token), shared between processes in a cluster. */
  loginTokens: LoginTokens;
  /** Single sign-on through CAS; null when cas.enabled is false. */
  cas: CasService | null;
  /** The m.login.recaptcha stage; null when recaptcha.enabled is false. */
  recaptcha: Recaptcha | null;
  /** Shared-secret registration nonces (src/cluster: local, or Redis in a cluster). */
  registrationNonces: ExpiringMap;
  maxSyncTimeoutMs: number;
  /** The position a stream token taken now names (durable and ephemeral streams). */
  currentToken: () => StreamToken;
  /** Load shedding for sends and catch-ups (see src/admission/admission.ts). */
  admission: Admission;
  features: { websocket: boolean; peeking: boolean };
  /** MSC2753 peeking; null when experimental.msc2753_peeking is off. */
  peeks: PeekService | null;
  /** Application services (registrations, as_token identity, queries, third-party lookups). */
  appServices: AppServices;
  /** Identity servers: 3PID invites and bindings (src/identity). */
  identity: IdentityServices;
  /** Email addresses on accounts and their validation by mail (src/threepid). */
  threepids: ThreepidServices;
  now: () => number;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

/**
 * The authenticated endpoints guest accounts may use: the spec's list ("Guest Access", client
 * behaviour), as route templates. Every other authenticated route answers a guest with 403
 * M_GUEST_ACCESS_FORBIDDEN. POST /join/{roomIdOrAlias} is the same operation as the listed
 * POST /rooms/{roomId}/join (with an alias resolved first), so it is allowed too; the
 * m.room.guest_access rule applies to every join (RoomService).
 */
export const GUEST_ROUTES: ReadonlySet<string> = new Set([
  // retrieving events
  'get /rooms/:roomId/state',
  'get /rooms/:roomId/context/:eventId',
  'get /rooms/:roomId/event/:eventId',
  'get /rooms/:roomId/state/:eventType{/:stateKey}',
  'get /rooms/:roomId/messages',
  'get /rooms/:roomId/members',
  'get /rooms/:roomId/initialSync',
  'get /sync',
  'get /events',
  // sending events
  'post /rooms/:roomId/join',
  'post /join/:roomIdOrAlias',
  'post /rooms/:roomId/leave',
  'put /rooms/:roomId/send/:eventType/:txnId',
  'put /rooms/:roomId/state/:eventType{/:stateKey}',
  'put /sendToDevice/:eventType/:txnId',
  // account maintenance
  'put /profile/:userId/displayname', // (DELETE of it is not served: PUT with null clears it)
  'get /devices',
  'get /devices/:deviceId',
  'put /devices/:deviceId',
  'get /account/whoami',
  // end-to-end encryption
  'post /keys/upload',
  'post /keys/query',
  'post /keys/claim',
]);

/**
 * Which per-user limit an authenticated route spends from. Every POST, PUT and DELETE spends
 * from one: `write` unless it says otherwise (`message` for routes that create room events).
 * Fan-outs charge their cost on top, inside the handler (profile: rooms, to-device: recipients).
 */
export type { RouteLimit };
export type AuthedHandler = (ctx: Ctx, auth: AuthInfo) => Promise<void> | void;
type LowerMethod = 'get' | 'post' | 'put' | 'delete';

export interface RouteOptions {
  /** Defaults to v3 and the legacy r0 alias. */
  versions?: string[];
  /** Defaults to 'none' for GET, 'write' for the other methods (authed routes only). */
  limit?: RouteLimit;
  /** Validated by the table before the handler runs, which reads the result with valid(). */
  schema?: z.ZodTypeAny;
  /** Defaults from the path: the PDU limit under /send and /state, fractions in account data. */
  intake?: IntakeClass;
  /** Shed early (before body and token) while the server refuses this class of work. */
  shed?: ShedClass;
}

const TOUCH_INTERVAL_MS = 60_000;

// Event bodies are capped at the PDU limit; everything else at the general body limit.
const EVENT_PATH = /\/rooms\/[^/]+\/(send|state)\//;
// Account data and tags are stored as given and never signed: fractions are allowed there.
const ACCOUNT_DATA_PATH = /\/user\/[^/]+\/(rooms\/[^/]+\/)?(account_data|tags)\//;

/**
 * Declares client routes in the handler table under /_matrix/client/v3 and the legacy /r0 alias
 * (bot-sdk still uses r0), or under an explicit version list for v1-only endpoints. Also the
 * table's authenticator: access token to AuthInfo, recording the device's last-seen.
 */
export class ClientRoutes {
  private readonly lastTouched = new LRUCache<string, number>({ max: 100_000 });
  readonly table: HandlerTable;

  constructor(private readonly services: ApiServices, limits: { maxBodyBytes: number; maxEventBytes: number; observe?: TableDeps['observe'] }) {
    this.table = new HandlerTable({
      authenticate: (token, ip, userAgent, query) => this.authenticate(token, ip, userAgent, query),
      limits: services.limits,
      logger: services.logger,
      shed: (kind) => services.admission.precheck(kind),
      abandoned: () => services.admission.abandoned(),
      ...limits,
    });
  }

  /** A route that needs no access token. `opts` may be just the version list. */
  route(method: LowerMethod, path: string, handler: Handler, opts: string[] | RouteOptions = {}): void {
    const o = Array.isArray(opts) ? { versions: opts } : opts;
    for (const v of o.versions ?? ['v3', 'r0']) this.add(method, `/_matrix/client/${v}${path}`, 'none', 'none', (ctx) => handler(ctx), o);
  }

  /** A route that needs an access token. `opts` may be just the version list, `limit` its bucket. */
  authed(method: LowerMethod, path: string, handler: AuthedHandler, opts: string[] | RouteOptions = {}, limit?: RouteLimit): void {
    const o = Array.isArray(opts) ? { versions: opts } : opts;
    const bucket = limit ?? o.limit ?? (method === 'get' ? 'none' : 'write');
    const guestsMay = GUEST_ROUTES.has(`${method} ${path}`);
    const guarded: RouteSpec['handler'] = (ctx, auth) => {
      if (auth!.isGuest && !guestsMay) throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guest accounts may not use this endpoint', {}, 403);
      return handler(ctx, auth!);
    };
    for (const v of o.versions ?? ['v3', 'r0']) this.add(method, `/_matrix/client/${v}${path}`, 'required', bucket, guarded, o);
  }

  /**
   * A route outside /_matrix/client/{version} that needs an access token (media, admin); the
   * limit defaults as for authed().
   */
  authedRaw(method: LowerMethod, fullPath: string, handler: AuthedHandler, opts: RouteOptions = {}): void {
    const bucket = opts.limit ?? (method === 'get' ? 'none' : 'write');
    this.add(method, fullPath, 'required', bucket, (ctx, auth) => handler(ctx, auth!), opts);
  }

  /** A route outside /_matrix/client/{version} (discovery, health, admin), without an access token. */
  raw(method: LowerMethod, fullPath: string, handler: Handler, opts: RouteOptions = {}): void {
    this.add(method, fullPath, 'none', 'none', (ctx) => handler(ctx), opts);
  }

  private add(method: LowerMethod, path: string, auth: 'required' | 'none', limit: RouteLimit, handler: RouteSpec['handler'], opts: RouteOptions): void {
    const intake = opts.intake ?? (EVENT_PATH.test(path) ? 'event' : ACCOUNT_DATA_PATH.test(path) ? 'account_data' : 'json');
    this.table.add({ method: method.toUpperCase() as Method, path, auth, limit, intake, schema: opts.schema, shed: opts.shed, handler });
  }

  async authenticate(token: string, ip: string, userAgent?: string, query?: Query): Promise<AuthInfo> {
    // An application service's as_token, acting as its user or as ?user_id= (spec: "Identity assertion").
    const as = await this.services.appServices.identify(token, firstOf(query?.user_id), firstOf(query?.device_id));
    if (as) {
      return { userId: as.userId, deviceId: as.deviceId, tokenHash: as.tokenHash, isGuest: false, appServiceId: as.appServiceId, rateLimitExempt: !as.rateLimited };
    }
    const auth = await this.services.accounts.authenticate(token);
    // Last-seen needs minute accuracy, not a durable write per request (every /sync is one).
    const key = `${auth.userId}\u0000${auth.deviceId}`;
    const now = this.services.now();
    if (now - (this.lastTouched.get(key) ?? 0) >= TOUCH_INTERVAL_MS) {
      this.lastTouched.set(key, now);
      void this.services.accounts
        .touchDevice(auth.userId, auth.deviceId, now, ip || null, userAgent?.slice(0, 512) || null)
        .catch((err: unknown) => this.services.logger.warn({ err, userId: auth.userId }, 'could not record device last-seen'));
    }
    return auth;
  }
}

export { parse };

function firstOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The body as the route's declared schema parsed it. Asking for another schema than the one the
 * route declared is a bug in the route, not the client's mistake: it fails loudly (500).
 */
export function valid<S extends z.ZodTypeAny>(ctx: Ctx, schema: S): z.infer<S> {
  if (ctx.state.schema !== schema) throw new Error('valid(): the route did not declare this schema');
  return ctx.state.valid as z.infer<S>;
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
