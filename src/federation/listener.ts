// The federation listener: /_matrix/key/v2 and /_matrix/federation/v1/version (unauthenticated)
// and the rest of /_matrix/federation (X-Matrix),
// over HTTPS with the configured certificate or one generated at start.
//
// Invariants:
// - Every /_matrix/federation request is authenticated before its handler runs: the X-Matrix
//   signature is checked over the raw request target (ctx.req.url, never a decoded form), with
//   this server's own name always as `destination`; the body is signed `content` only when
//   non-empty. Failures answer 401 M_UNAUTHORIZED. A valid request tells the sender the peer is
//   up (its backoff resets).
// - Errors are Matrix errors: MatrixError as itself, anything else logged and answered 500 (except
//   /send, whose per-PDU failures are in its 200 body).
// - Bodies are read raw up to a limit, then parsed strictly (src/protocol/canonical-json.ts).

import { readFileSync } from 'node:fs';
import { match, type MatchFunction } from 'path-to-regexp';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttpServer, type Server } from 'node:http';
import Koa from 'koa';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { parseStrictJson } from '../protocol/canonical-json.js';
import { isValidServerName } from '../protocol/ids.js';
import { SUPPORTED_ROOM_VERSIONS } from '../protocol/room-versions.js';
import type { JsonObject, JsonValue, SigningKey } from '../protocol/types.js';
import { signJson } from '../protocol/crypto.js';
import { parseXMatrixHeader, verifyXMatrixRequest } from '../protocol/x-matrix.js';
import type { KeyRing } from '../room/key-ring.js';
import type { FederationInbound } from './inbound.js';
import type { LocalDeviceLists } from './local-devices.js';
import type { FederationDirectory } from './directory.js';
import type { FederationKnocks } from './knock.js';
import { directoryRoutes, knockRoutes, mediaRoutes, v1MembershipRoutes, type FederationMediaSource } from './listener-routes.js';
import { ownKeyDocument, type OldKey, type RemoteKeyRing } from './keys.js';
import type { FederationSender } from './sender.js';
import type { FederationPolicy } from './policy.js';

export interface FederationAppDeps {
  serverName: string;
  signingKey: SigningKey;
  oldKeys: readonly OldKey[];
  keyRing: KeyRing & Pick<RemoteKeyRing, 'notaryDocuments' | 'verifyKey'>;
  inbound: FederationInbound;
  /** Device lists and keys of our users (absent: those endpoints answer 404). */
  e2ee?: Pick<LocalDeviceLists, 'userDevices' | 'queryKeys' | 'claimKeys'>;
  /** publicRooms and hierarchy; absent: those endpoints are unrecognized. */
  directory?: FederationDirectory;
  /** make_knock/send_knock; absent: unrecognized. */
  knocks?: FederationKnocks;
  sender: FederationSender;
  /** Allow/deny lists (absent: every server). */
  policy?: FederationPolicy;
  /**
   * Third-party invites (src/identity): exchange_third_party_invite (X-Matrix) and the identity
   * server's unauthenticated 3pid/onbind. Absent: both unrecognized.
   */
  thirdParty?: {
    exchange(origin: string, roomId: string, body: JsonValue | undefined): Promise<void>;
    onBind(body: JsonValue | undefined): Promise<void>;
    /**
     * Spends the caller's allowance for one onbind (by address); throws M_LIMIT_EXCEEDED when
     * none is left. Each onbind may make requests to identity servers and other homeservers.
     */
    limit?(ip: string): Promise<void>;
  };
  /** Our media for other servers (a late getter: the media service is built after federation). */
  media?: () => FederationMediaSource | undefined;
  /** The user an unexpired OpenID token names (absent: openid/userinfo is unrecognized). */
  openIdUser?: (token: string) => Promise<string | null>;
  logger: Logger;
  maxBodyBytes: number;
  now: () => number;
}

export interface FedState {
  origin: string;
  body: JsonValue | undefined;
}

async function readBody(ctx: Ctx, max: number): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new MatrixError('M_TOO_LARGE', 'Request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return parseStrictJson(text);
  } catch (err) {
    // JSON that parses but that Matrix refuses (a float, an integer past 2^53, a duplicate key)
    // is "valid JSON, but malformed": M_BAD_JSON; M_NOT_JSON is for what is not JSON at all.
    let parses = true;
    try {
      JSON.parse(text);
    } catch {
      parses = false;
    }
    throw new MatrixError(parses ? 'M_BAD_JSON' : 'M_NOT_JSON', `Body is not valid Matrix JSON: ${(err as Error).message}`);
  }
}

let cachedVersion: string | undefined;
function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cachedVersion = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

export type Ctx = Koa.ParameterizedContext<FedState> & { params: Record<string, string> };
export type Handler = (ctx: Ctx) => Promise<void> | void;
type Guard = (ctx: Ctx, next: () => Promise<void>) => Promise<void>;

/**
 * The few routes of this listener. Paths match on the raw (encoded) path, a trailing slash
 * allowed; parameters are percent-decoded; a known path with another method is 405.
 */
function decodeParam(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    throw new MatrixError('M_INVALID_PARAM', 'Malformed percent-encoding in the path');
  }
}

export class Routes {
  private readonly list: Array<{ method: string; matcher: MatchFunction<Partial<Record<string, string>>>; handler: Handler }> = [];
  private readonly guards: Guard[] = [];

  constructor(private readonly prefix = '') {}

  use(g: Guard): this {
    this.guards.push(g);
    return this;
  }

  private add(method: string, paths: string | string[], handler: Handler): void {
    for (const path of Array.isArray(paths) ? paths : [paths]) {
      // path-to-regexp (the matcher the client listener's route table uses): `:name` is one segment.
      const matcher = match<Partial<Record<string, string>>>(this.prefix + path, { decode: decodeParam, trailing: true, sensitive: true });
      this.list.push({ method, matcher, handler });
    }
  }
  get(p: string | string[], h: Handler): void {
    this.add('GET', p, h);
  }
  put(p: string | string[], h: Handler): void {
    this.add('PUT', p, h);
  }
  post(p: string | string[], h: Handler): void {
    this.add('POST', p, h);
  }

  middleware(): Koa.Middleware<FedState> {
    return async (ctx, next) => {
      const path = (ctx.req.url ?? '').split('?')[0];
      let methodMismatch = false;
      for (const r of this.list) {
        const m = r.matcher(path);
        if (!m) continue;
        if (r.method !== ctx.method) {
          methodMismatch = true;
          continue;
        }
        const params: Record<string, string> = Object.create(null) as Record<string, string>;
        for (const [k, v] of Object.entries(m.params)) if (v !== undefined) params[k] = v;
        const c = ctx as Ctx;
        c.params = params;
        const run = async (i: number): Promise<void> => {
          if (i < this.guards.length) return this.guards[i](c, () => run(i + 1));
          await r.handler(c);
        };
        return run(0);
      }
      if (methodMismatch) throw new MatrixError('M_UNRECOGNIZED', 'Method not allowed', {}, 405);
      await next();
    };
  }
}

export function createFederationApp(d: FederationAppDeps): Koa<FedState> {
  const app = new Koa<FedState>();
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' };
      }
    } catch (err) {
      if (err instanceof MatrixError) {
        ctx.status = err.status;
        ctx.body = err.toJSON();
      } else {
        d.logger.warn({ err, url: ctx.req.url }, 'federation request failed');
        ctx.status = 500;
        ctx.body = { errcode: 'M_UNKNOWN', error: 'Internal error' };
      }
    }
  });

  const keys = new Routes();
  const ownDoc = () => ownKeyDocument(d.serverName, d.signingKey, d.oldKeys, d.now());
  keys.get(['/_matrix/key/v2/server', '/_matrix/key/v2/server/', '/_matrix/key/v2/server/:keyId'], (ctx) => {
    ctx.body = ownDoc();
  });
  // Notary: what we know of each server, re-signed by us. We answer from our own key and our cache
  // (fetching on demand, again when what we keep does not reach the asker's
  // minimum_valid_until_ts, which defaults to now), never by asking another notary on the
  // caller's behalf. Kept documents are served even expired when the origin has nothing better.
  const notary = async (criteria: Array<{ server: string; keyIds: string[]; minValidUntil: (keyId: string) => number }>) => {
    const out = [];
    for (const c of criteria.slice(0, 100)) {
      if (c.server === d.serverName) {
        out.push(ownDoc());
        continue;
      }
      if (!isValidServerName(c.server)) continue;
      for (const doc of await d.keyRing.notaryDocuments(c.server, c.keyIds, c.minValidUntil)) out.push(signWithOurs(doc));
    }
    return { server_keys: out };
  };
  // A notary adds its own signature next to the server's.
  const signWithOurs = (doc: JsonObject) => signJson(doc, d.serverName, d.signingKey);
  const minTs = (v: unknown, now: number) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : now);
  keys.post('/_matrix/key/v2/query', async (ctx) => {
    const body = await readBody(ctx, d.maxBodyBytes);
    const sk = body && typeof body === 'object' && !Array.isArray(body) ? body.server_keys : undefined;
    if (!sk || typeof sk !== 'object' || Array.isArray(sk)) throw new MatrixError('M_BAD_JSON', 'server_keys must be an object');
    const now = d.now();
    ctx.body = await notary(
      Object.entries(sk).map(([server, ids]) => {
        const byId = ids && typeof ids === 'object' && !Array.isArray(ids) ? (ids as Record<string, unknown>) : {};
        const min = new Map(Object.entries(byId).map(([id, q]) => [id, minTs(q && typeof q === 'object' ? (q as Record<string, unknown>).minimum_valid_until_ts : undefined, now)]));
        return { server, keyIds: [...min.keys()], minValidUntil: (id: string) => min.get(id) ?? now };
      }),
    );
  });
  // The form with a key ID (r0 spec, since removed; Synapse still serves it) answers the same:
  // every key of the server, as that spec's deprecation note asked.
  keys.get(['/_matrix/key/v2/query/:serverName', '/_matrix/key/v2/query/:serverName/:keyId'], async (ctx) => {
    const raw = ctx.query.minimum_valid_until_ts;
    const n = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : undefined;
    const min = minTs(n, d.now());
    ctx.body = await notary([{ server: ctx.params.serverName, keyIds: [], minValidUntil: () => min }]);
  });
  // Unauthenticated, like the key routes (spec: GET /_matrix/federation/v1/version has no security).
  keys.get('/_matrix/federation/v1/version', (ctx) => {
    ctx.body = { server: { name: 'Hearth', version: packageVersion() } };
  });
  // Authenticated by the OpenID token in the query string, not X-Matrix: the caller is an
  // integration manager or widget host, not necessarily a homeserver.
  const openIdUser = d.openIdUser;
  if (openIdUser) {
    keys.get('/_matrix/federation/v1/openid/userinfo', async (ctx) => {
      const token = ctx.query.access_token;
      const sub = typeof token === 'string' && token.length > 0 && token.length <= 1024 ? await openIdUser(token) : null;
      if (sub === null) throw new MatrixError('M_UNKNOWN_TOKEN', 'Access token unknown or expired', {}, 401);
      ctx.body = { sub };
    });
  }
  // Unauthenticated: the identity server calling is no homeserver. What it says is checked
  // against the identity server's keys in the room before any invite is issued.
  const thirdParty = d.thirdParty;
  if (thirdParty) {
    const onBind = async (ctx: Ctx) => {
      // Unauthenticated, and each call may pass invites on to the servers it names: limited per
      // address before anything is read or sent.
      await thirdParty.limit?.(ctx.ip);
      await thirdParty.onBind(await readBody(ctx, 256 * 1024));
      ctx.body = {};
    };
    keys.put('/_matrix/federation/v1/3pid/onbind', onBind);
    keys.post('/_matrix/federation/v1/3pid/onbind', onBind);
  }
  app.use(keys.middleware());

  const fed = new Routes('/_matrix/federation');
  fed.use(async (ctx, next) => {
    const body = await readBody(ctx, d.maxBodyBytes);
    const header = parseXMatrixHeader(ctx.get('authorization'));
    const unauthorized = (why: string) => new MatrixError('M_UNAUTHORIZED', why);
    if (!header) throw unauthorized('Missing or malformed X-Matrix authorization');
    // A malformed origin (a non-numeric port, say) is a bad request, not a failed authentication.
    if (!isValidServerName(header.origin)) throw new MatrixError('M_INVALID_PARAM', 'The X-Matrix origin is not a valid server name', {}, 400);
    if (header.origin === d.serverName) throw unauthorized('Invalid origin');
    // Before its keys are fetched: a refused server makes us contact it for nothing.
    if (d.policy && !d.policy.allows(header.origin)) throw new MatrixError('M_FORBIDDEN', 'Federation with your server is not allowed');
    if (header.destination !== undefined && header.destination !== d.serverName) throw unauthorized('Wrong destination');
    const key = await d.keyRing.verifyKey(header.origin, header.key, d.now());
    const uri = ctx.req.url ?? '';
    if (!key || !verifyXMatrixRequest(header, { method: ctx.method, uri, content: body }, d.serverName, key)) {
      throw unauthorized('Invalid X-Matrix signature');
    }
    ctx.state.origin = header.origin;
    ctx.state.body = body;
    d.sender.contact(header.origin);
    await next();
  });
  const q = (ctx: Ctx, name: string): string | undefined => {
    const v = ctx.query[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const qAll = (ctx: Ctx, name: string): string[] => {
    const v = ctx.query[name];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  const i = d.inbound;
  fed.put('/v1/send/:txnId', async (ctx) => {
    ctx.body = await i.send(ctx.state.origin, ctx.params.txnId, ctx.state.body);
  });
  fed.get('/v1/make_join/:roomId/:userId', async (ctx) => {
    const vers = qAll(ctx, 'ver');
    ctx.body = await i.makeMembership(ctx.state.origin, ctx.params.roomId, ctx.params.userId, 'join', vers.length > 0 ? vers : ['1']);
  });
  fed.put('/v2/send_join/:roomId/:eventId', async (ctx) => {
    ctx.body = await i.sendJoin(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body);
  });
  fed.get('/v1/make_leave/:roomId/:userId', async (ctx) => {
    ctx.body = await i.makeMembership(ctx.state.origin, ctx.params.roomId, ctx.params.userId, 'leave', [...SUPPORTED_ROOM_VERSIONS]);
  });
  fed.put('/v2/send_leave/:roomId/:eventId', async (ctx) => {
    await i.sendMembership(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body, 'leave');
    ctx.body = {};
  });
  fed.put('/v2/invite/:roomId/:eventId', async (ctx) => {
    ctx.body = await i.invite(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body);
  });
  fed.get('/v1/event/:eventId', async (ctx) => {
    ctx.body = await i.getEvent(ctx.state.origin, ctx.params.eventId);
  });
  const eventParam = (ctx: Ctx) => {
    const id = q(ctx, 'event_id');
    if (!id) throw new MatrixError('M_MISSING_PARAM', 'event_id is required');
    return id;
  };
  fed.get('/v1/state_ids/:roomId', async (ctx) => {
    ctx.body = await i.state(ctx.state.origin, ctx.params.roomId, eventParam(ctx), true);
  });
  fed.get('/v1/state/:roomId', async (ctx) => {
    ctx.body = await i.state(ctx.state.origin, ctx.params.roomId, eventParam(ctx), false);
  });
  fed.get('/v1/event_auth/:roomId/:eventId', async (ctx) => {
    ctx.body = await i.eventAuth(ctx.state.origin, ctx.params.roomId, ctx.params.eventId);
  });
  fed.get('/v1/backfill/:roomId', async (ctx) => {
    const limit = Number(q(ctx, 'limit') ?? '10');
    ctx.body = await i.backfill(ctx.state.origin, ctx.params.roomId, qAll(ctx, 'v'), Number.isFinite(limit) ? limit : 10);
  });
  fed.post('/v1/get_missing_events/:roomId', async (ctx) => {
    ctx.body = await i.getMissingEvents(ctx.state.origin, ctx.params.roomId, ctx.state.body);
  });
  fed.get('/v1/query/directory', async (ctx) => {
    const alias = q(ctx, 'room_alias');
    if (!alias) throw new MatrixError('M_MISSING_PARAM', 'room_alias is required');
    ctx.body = await i.queryDirectory(alias);
  });
  fed.get('/v1/query/profile', async (ctx) => {
    const userId = q(ctx, 'user_id');
    if (!userId) throw new MatrixError('M_MISSING_PARAM', 'user_id is required');
    ctx.body = await i.queryProfile(userId, q(ctx, 'field'));
  });
  const e2ee = d.e2ee;
  if (e2ee) {
    fed.get('/v1/user/devices/:userId', async (ctx) => {
      ctx.body = await e2ee.userDevices(ctx.params.userId);
    });
    fed.post('/v1/user/keys/query', async (ctx) => {
      ctx.body = await e2ee.queryKeys(ctx.state.body);
    });
    fed.post('/v1/user/keys/claim', async (ctx) => {
      ctx.body = await e2ee.claimKeys(ctx.state.body);
    });
  }
  if (thirdParty) {
    fed.put('/v1/exchange_third_party_invite/:roomId', async (ctx) => {
      await thirdParty.exchange(ctx.state.origin, ctx.params.roomId, ctx.state.body);
      ctx.body = {};
    });
  }
  v1MembershipRoutes(fed, i);
  if (d.directory) directoryRoutes(fed, d.directory);
  if (d.knocks) knockRoutes(fed, d.knocks);
  if (d.media) mediaRoutes(fed, d.media, d.serverName);
  app.use(fed.middleware());
  return app;
}


export function createFederationServer(app: Koa<FedState>, tls: { cert: string; key: string } | null): Server | HttpsServer {
  const handler = app.callback();
  return tls ? createHttpsServer({ cert: tls.cert, key: tls.key, keepAliveTimeout: 65_000 }, handler) : createHttpServer({ keepAliveTimeout: 65_000 }, handler);
}
