// The route table: every endpoint of the client listener is declared here once (method, path
// pattern, authentication, rate-limit class, body intake rule, optional body schema) and served by
// one dispatch function that every transport calls: HTTP through the Koa adapter (http.ts) and
// the WebSocket's request frames (src/sync/socket/requests.ts). Transports only translate; they
// add no checks of their own, so auth, limits, intake, idempotency and error bodies cannot drift.
//
// Invariants:
// - One order of checks for every request: route (404, 405) → load shedding of the route's
//   class, when overloaded (429 sends, 503 catch-ups; before any body is read or token checked,
//   so a refusal costs little; or deferred to a later loop turn, paced, and skipped with a 400 if
//   its client left meanwhile) → body intake (413, M_NOT_JSON, M_BAD_JSON) → access token
//   (401) → rate limit (429) → body schema (400) → handler.
// - dispatch never throws. A MatrixError is rendered as {errcode, error} with its status; anything
//   else is a bug: logged with its error object and answered 500 M_UNKNOWN.
// - Handlers see an ApiCtx only: no Koa context or socket reaches them. Media routes (intake
//   'media') get the raw body as a byte source (ctx.upload) instead of JSON, and answer bytes with
//   a BinaryBody; both exist over HTTP only: over a socket frame they are 400 M_UNRECOGNIZED.
// - Path patterns are matched by path-to-regexp, the matcher @koa/router is built on, with its
//   rules: case-insensitive, one optional trailing slash, parameters percent-decoded (kept as given
//   when that fails); the first route registered wins.

import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { match, type MatchFunction } from 'path-to-regexp';
import type { z } from 'zod';
import { MatrixError } from '../errors.js';
import { StoreUnavailableError } from '../store/types.js';
import type { JsonObject } from '../protocol/types.js';
import type { AuthInfo } from './middleware.js';
import type { RateLimitName, RateLimiters } from '../admission/rate-limit.js';
import { DeferredAnswer, type DeferredEnd, type DeferredProducer } from './deferred.js';

export { DeferredAnswer };

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
export type Query = Record<string, string | string[] | undefined>;
/** Which per-user bucket an authenticated route spends from (see routing.ts for the defaults). */
export type RouteLimit = RateLimitName | 'none';
/**
 * The intake rule of a body: events get the PDU limit, account data may hold fractions; 'media'
 * bodies are not read by the table at all: the handler streams them from ctx.upload.
 */
export type IntakeClass = 'json' | 'event' | 'account_data' | 'media';

/** A raw request body (uploads), unread: the handler streams it and applies its own limits. */
export interface UploadSource {
  /** The Content-Type header, or null. */
  contentType: string | null;
  /** The Content-Length header, when given. */
  length: number | undefined;
  body: AsyncIterable<Uint8Array>;
}

/** A binary response (media bytes) of known length; HTTP only. */
export class BinaryBody {
  constructor(
    readonly stream: Readable,
    readonly length: number,
  ) {}
}

export interface IntakeRule {
  limit: number;
  fractions: boolean;
}

/** The request body as the transport holds it; dispatch applies the route's rule to it. */
export interface RequestBody {
  /** The body as a JSON object with null prototypes; an absent or empty body is {}. */
  read(rule: IntakeRule): Promise<JsonObject>;
}

/** What a transport hands to dispatch. */
export interface ApiRequest {
  /** Upper case; HEAD is served by GET routes. */
  method: string;
  /** As sent: percent-encoded, without the query. */
  path: string;
  query: Query;
  body: RequestBody;
  /** The raw body, for media routes; transports without one (socket frames) leave it unset. */
  upload?: () => UploadSource;
  /** From the transport's credentials (Authorization header, access_token, the socket's token). */
  accessToken: string | undefined;
  ip: string;
  /** The User-Agent header, where the transport has one (GET /admin/whois shows the last one). */
  userAgent?: string;
  /** Aborted when the client goes away, so a parked /sync returns early. */
  readonly signal: AbortSignal;
  /**
   * Whether the client has gone (its connection closed), read without making a signal;
   * transports that leave it out are asked through `signal.aborted`.
   */
  readonly closed?: boolean;
}

export interface ApiResponse {
  status: number;
  /** A JSON value; a string for the few text routes (/health, /metrics); a BinaryBody for media. */
  body: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /** The matched pattern, or "unmatched": the metrics label. */
  route: string;
}

/** What a handler sees of a request, and where it puts its answer. */
export interface ApiCtx {
  readonly method: string;
  readonly path: string;
  readonly params: Record<string, string | undefined>;
  readonly query: Query;
  readonly ip: string;
  /** The credential the request came with (the table has already checked it on authed routes). */
  readonly accessToken: string | undefined;
  readonly signal: AbortSignal;
  readonly state: ApiState;
  /** The raw body of a media route (intake 'media'); undefined elsewhere. */
  readonly upload: UploadSource | undefined;
  /** Headers of a successful answer (media responses); errors never carry them. */
  readonly headers: Record<string, string>;
  /** Unset means 200 when a body was given (Koa's rule, which the handlers were written to). */
  status?: number;
  body: unknown;
  type?: string;
  /**
   * Answers later: the handler returns at once and the transport writes what `producer`
   * settles with (200, or the error rendered as a thrown one). `onEnd.ended()` runs when it settles,
   * whatever the outcome. See deferred.ts.
   */
  defer(producer: DeferredProducer, onEnd?: DeferredEnd): void;
}

export interface ApiState {
  /** The body after intake: null-prototype objects, exactly as sent. */
  body?: JsonObject;
  auth?: AuthInfo;
  /** The route's schema and what it made of the body (see routing.ts `valid`). */
  schema?: z.ZodTypeAny;
  valid?: unknown;
}

/** Which admission class a route's requests belong to (src/admission/admission.ts). */
export type ShedClass = 'send' | 'catchup';

export interface RouteSpec {
  method: Method;
  /** The full path pattern, e.g. /_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId. */
  path: string;
  /** 'required': an access token is needed (401 without); 'none': login, registration, discovery. */
  auth: 'required' | 'none';
  limit: RouteLimit;
  intake: IntakeClass;
  /**
   * Validates the body before the handler runs (400 M_BAD_JSON / M_MISSING_PARAM). The parsed
   * value goes to state.valid; state.body stays the hardened original (zod's output objects have
   * ordinary prototypes, so they are read for their declared fields only).
   */
  schema?: z.ZodTypeAny;
  /** Refused early while the server sheds this class (the handler still takes its slot). */
  shed?: ShedClass;
  handler: (ctx: ApiCtx, auth: AuthInfo | undefined) => Promise<void> | void;
}

export interface TableDeps {
  /** Resolves an access token; throws M_UNKNOWN_TOKEN for an unknown or revoked one. */
  authenticate: (token: string, ip: string, userAgent?: string, query?: Query) => Promise<AuthInfo>;
  limits: RateLimiters;
  logger: Logger;
  maxBodyBytes: number;
  maxEventBytes: number;
  observe?: (method: string, route: string, status: number, seconds: number) => void;
  /**
   * Throws the shed answer (429/503 with retry_after_ms) when `kind` is being refused now;
   * returns a promise when the request is deferred to a later loop turn (pacing).
   */
  shed?: (kind: ShedClass) => Promise<void> | undefined;
  /** A deferred request whose client had gone when its turn came (skipped; counted there). */
  abandoned?: (kind: ShedClass) => void;
}

interface Route extends RouteSpec {
  index: number;
  matcher: Matcher;
}

type Params = Partial<Record<string, string>>;
type Matcher = MatchFunction<Params>;

// The methods @koa/router knows: any other is answered 405 even where no route exists.
const KNOWN_METHODS = new Set(['HEAD', 'OPTIONS', 'GET', 'PUT', 'PATCH', 'POST', 'DELETE']);
// Routes are indexed by their first KEY_SEGMENTS path segments when those are all literal.
const KEY_SEGMENTS = 4;
const EXACT_PATHS = 512;
const NO_METHODS: Set<string> = new Set();

export class HandlerTable {
  private readonly routes: Route[] = [];
  private byKey = new Map<string, Route[]>();
  private unkeyed: Route[] = [];
  private indexed = false;
  /**
   * "METHOD path" -> the route, for paths that matched a route without parameters (/sync,
   * /account/whoami: the frequent requests); the same answer match() gives, without running the
   * matchers. Bounded (case and trailing-slash variants are distinct keys); cleared with the index.
   */
  private readonly exact = new Map<string, Route>();

  constructor(private readonly deps: TableDeps) {}

  add(spec: RouteSpec): void {
    this.routes.push({ ...spec, index: this.routes.length, matcher: compilePattern(spec.path) });
    this.indexed = false;
  }

  /**
   * Keeps only the routes `keep` accepts (a worker's roles, src/cluster/roles.ts); the others
   * answer as never declared (404 M_UNRECOGNIZED).
   */
  retain(keep: (spec: RouteSpec) => boolean): void {
    const kept = this.routes.filter(keep);
    this.routes.length = 0;
    kept.forEach((r, index) => this.routes.push({ ...r, index }));
    this.indexed = false;
  }

  /** Every declared route, in registration order (for documentation and tests). */
  list(): readonly RouteSpec[] {
    return this.routes;
  }

  intakeRule(c: IntakeClass): IntakeRule {
    if (c === 'event') return { limit: this.deps.maxEventBytes, fractions: false };
    return { limit: this.deps.maxBodyBytes, fractions: c === 'account_data' };
  }

  /** Serves one request; never throws. */
  async dispatch(req: ApiRequest): Promise<ApiResponse> {
    const start = performance.now();
    const ctx = new Exchange(req);
    let route = 'unmatched';
    let res: ApiResponse;
    try {
      res = await this.run(req, ctx, (r) => (route = r));
    } catch (err) {
      res = this.renderError(err, req);
    }
    res.route = route;
    // A deferred answer (a parked /sync) is observed and logged when it settles.
    if (res.body instanceof DeferredAnswer) res.body.begin(this, req.method, req.path, route, start);
    else this.record(req.method, req.path, route, start, res);
    return res;
  }

  /** The metrics observation and the request's log line, once its answer is final. */
  record(method: string, path: string, route: string, start: number, res: ApiResponse): void {
    // performance.now(), not hrtime.bigint(): a parked request keeps its start, and a number is
    // stored in its object where a bigint is one more heap object.
    const seconds = (performance.now() - start) / 1000;
    this.deps.observe?.(method, route, res.status, seconds);
    // One line per request, as Synapse logs them. The path carries no query string, so no
    // access_token parameter; tokens in headers are never logged.
    if (this.deps.logger.isLevelEnabled('info')) {
      this.deps.logger.info({ method, path, status: res.status, ms: Math.round(seconds * 1e4) / 10, route }, 'request');
    }
  }

  private async run(req: ApiRequest, ctx: Exchange, matched: (route: string) => void): Promise<ApiResponse> {
    const found = this.match(req.method, req.path);
    if (!found.route) {
      if (!KNOWN_METHODS.has(req.method) || found.allowed.size > 0) {
        const allow = [...found.allowed].join(', ');
        const e = new MatrixError('M_UNRECOGNIZED', 'Method not allowed', {}, 405);
        return { status: 405, body: e.toJSON(), headers: { Allow: allow }, route: '' };
      }
      throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request');
    }
    const route = found.route;
    matched(route.path);
    if (route.shed) {
      // Refused now (throws), or paced to a later loop turn (a promise), or on at once.
      const paced = this.deps.shed?.(route.shed);
      if (paced) {
        await paced;
        // Gone while it waited: nobody reads the answer, so nothing of it is made (a catch-up's
        // build, a send's body, token check and commit). The 400 is for the log and metrics.
        if (req.closed ?? req.signal.aborted) {
          this.deps.abandoned?.(route.shed);
          throw new MatrixError('M_UNKNOWN', 'Request aborted by the client', {}, 400);
        }
      }
    }
    ctx.params = found.params;
    if (route.intake === 'media') {
      if (!req.upload) throw new MatrixError('M_UNRECOGNIZED', 'Media is served over HTTP only', {}, 400);
      if (req.method !== 'GET') ctx.upload = req.upload();
    } else if (req.method === 'POST' || req.method === 'PUT' || req.method === 'DELETE') {
      // DELETE carries a body too (UIA on DELETE /devices/{id}).
      ctx.state.body = await req.body.read(this.intakeRule(route.intake));
    }
    let auth: AuthInfo | undefined;
    if (route.auth === 'required') {
      if (!req.accessToken) throw new MatrixError('M_MISSING_TOKEN', 'Missing access token');
      auth = await this.deps.authenticate(req.accessToken, req.ip, req.userAgent, req.query);
      ctx.state.auth = auth;
      if (route.limit !== 'none' && !auth.rateLimitExempt) await this.deps.limits[route.limit].consume(auth.userId);
    }
    if (route.schema) {
      ctx.state.valid = parse(route.schema, ctx.state.body ?? {});
      ctx.state.schema = route.schema;
    }
    await route.handler(ctx, auth);
    if (ctx.body instanceof DeferredAnswer) return { status: 200, body: ctx.body, route: '' };
    if (ctx.body === undefined && ctx.status === undefined) throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request');
    const status = ctx.status ?? (ctx.body === null ? 204 : 200);
    const headers = Object.keys(ctx.headers).length > 0 ? ctx.headers : undefined;
    return { status, body: ctx.body ?? undefined, contentType: ctx.type, headers, route: '' };
  }

  /** The one error renderer: {errcode, error} with the error's status. */
  renderError(err: unknown, req: Pick<ApiRequest, 'method' | 'path'>): ApiResponse {
    const e = toMatrixError(err);
    if (!e) {
      this.deps.logger.error({ err, method: req.method, path: req.path }, 'unhandled error');
      return { status: 500, body: { errcode: 'M_UNKNOWN', error: 'Internal server error' }, route: '' };
    }
    const res: ApiResponse = { status: e.status, body: e.toJSON(), route: '' };
    if (e.errcode === 'M_LIMIT_EXCEEDED' && typeof e.extra.retry_after_ms === 'number') {
      res.headers = { 'Retry-After': String(Math.ceil(e.extra.retry_after_ms / 1000)) };
    }
    return res;
  }

  private match(method: string, path: string): { route?: Route; params: Record<string, string | undefined>; allowed: Set<string> } {
    const m = method === 'HEAD' ? 'GET' : method;
    if (!this.indexed) this.buildIndex();
    const key = `${m} ${path}`;
    const known = this.exact.get(key);
    if (known) return { route: known, params: Object.create(null) as Record<string, string | undefined>, allowed: NO_METHODS };
    const allowed = new Set<string>();
    for (const r of this.candidates(path)) {
      const found = r.matcher(path);
      if (!found) continue;
      if (r.method === m) {
        if (!/[:*{]/.test(r.path) && this.exact.size < EXACT_PATHS) this.exact.set(key, r);
        return { route: r, params: paramsOf(found.params), allowed };
      }
      if (r.method === 'GET') allowed.add('HEAD');
      allowed.add(r.method);
    }
    return { params: {}, allowed };
  }

  private candidates(path: string): Route[] {
    if (!this.indexed) this.buildIndex();
    const key = keyOfPath(path);
    return (key !== undefined && this.byKey.get(key)) || this.unkeyed;
  }

  private buildIndex(): void {
    const byKey = new Map<string, Route[]>();
    const unkeyed: Route[] = [];
    for (const r of this.routes) {
      const key = keyOfPattern(r.path);
      if (key === undefined) unkeyed.push(r);
      else byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
    // A path with a key can still match an unkeyed route: each list keeps registration order.
    for (const [k, list] of byKey) byKey.set(k, [...list, ...unkeyed].sort((a, b) => a.index - b.index));
    this.byKey = byKey;
    this.unkeyed = unkeyed;
    this.exact.clear();
    this.indexed = true;
  }
}

class Exchange implements ApiCtx {
  readonly state: ApiState = {};
  readonly headers: Record<string, string> = {};
  upload: UploadSource | undefined = undefined;
  params: Record<string, string | undefined> = {};
  status?: number;
  body: unknown = undefined;
  type?: string;

  constructor(private readonly req: ApiRequest) {}

  defer(producer: DeferredProducer, onEnd?: DeferredEnd): void {
    this.body = new DeferredAnswer(producer, onEnd);
  }

  get method(): string {
    return this.req.method;
  }
  get path(): string {
    return this.req.path;
  }
  get query(): Query {
    return this.req.query;
  }
  get ip(): string {
    return this.req.ip;
  }
  get accessToken(): string | undefined {
    return this.req.accessToken;
  }
  get signal(): AbortSignal {
    return this.req.signal;
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

/** Errors of the HTTP plumbing (raw-body, Koa) that are the client's fault, as Matrix errors. */
function toMatrixError(err: unknown): MatrixError | null {
  if (err instanceof MatrixError) return err;
  // The storage backend timed out or is unreachable: the client may retry (sends are idempotent
  // by transaction ID), so it gets a retryable 503, not a 500.
  if (err instanceof StoreUnavailableError) return new MatrixError('M_UNKNOWN', 'Storage is temporarily unavailable; try again', { retry_after_ms: 1000 }, 503);
  const e = err as { status?: number; statusCode?: number; type?: string; message?: string };
  if (e?.type === 'entity.too.large') return new MatrixError('M_TOO_LARGE', 'Request body too large');
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 405) return new MatrixError('M_UNRECOGNIZED', 'Method not allowed', {}, 405);
    if (status === 404) return new MatrixError('M_UNRECOGNIZED', 'Unrecognized request');
    if (status === 413) return new MatrixError('M_TOO_LARGE', 'Request body too large');
    return new MatrixError('M_UNKNOWN', e.message ?? 'Bad request', {}, status);
  }
  return null;
}

/**
 * A query string as Koa parses it (URLSearchParams; a repeated key gives an array), into an
 * object without a prototype so no name reaches Object.prototype.
 */
export function parseQuery(search: string): Query {
  const out: Query = Object.create(null) as Query;
  if (search === '') return out;
  const sp = new URLSearchParams(search);
  for (const key of sp.keys()) {
    if (key in out) continue;
    const all = sp.getAll(key);
    out[key] = all.length <= 1 ? all[0] : all;
  }
  return out;
}

/** Compiles a route pattern (`:name` is one non-empty segment, `{/:name}` an optional one). */
export function compilePattern(pattern: string): Matcher {
  if (!pattern.startsWith('/')) throw new Error(`route pattern must start with /: ${pattern}`);
  return match<Params>(pattern, { decode: safeDecode, sensitive: false, trailing: true, end: true });
}

function paramsOf(found: Params): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = Object.create(null) as Record<string, string | undefined>;
  for (const [k, v] of Object.entries(found)) if (v !== undefined && v.length > 0) out[k] = v;
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function keyOfPattern(pattern: string): string | undefined {
  const segs = pattern.split('/', KEY_SEGMENTS + 1).slice(1);
  if (segs.length < KEY_SEGMENTS || segs.some((s) => s.includes(':') || s.includes('{'))) return undefined;
  return segs.join('/').toLowerCase();
}

/** As keyOfPattern for a request path, without splitting it (this runs on every request). */
function keyOfPath(path: string): string | undefined {
  let at = 0;
  for (let n = 0; n < KEY_SEGMENTS; n++) {
    at = path.indexOf('/', at + 1);
    if (at < 0) return n === KEY_SEGMENTS - 1 ? path.slice(1).toLowerCase() : undefined;
  }
  return path.slice(1, at).toLowerCase();
}
