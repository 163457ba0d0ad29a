// Cross-cutting HTTP concerns: CORS, the one error renderer, body parsing with size limits,
// access-token authentication, and request logging/metrics.

import type Koa from 'koa';
import getRawBody from 'raw-body';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { UiaRequest } from '../users/uia.js';
import { dict, hardenParsed, isJsonObject } from '../protocol/canonical-json.js';

export interface AuthInfo {
  userId: string;
  deviceId: string;
  tokenHash: string;
}

export interface HearthState {
  auth?: AuthInfo;
  body?: unknown;
}

export type Ctx = Koa.ParameterizedContext<HearthState> & { params: Record<string, string | undefined> };

export function cors(): Koa.Middleware {
  return async (ctx, next) => {
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
    ctx.set('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      return;
    }
    await next();
  };
}

/** Renders every error as {errcode, error}. Anything that is not a MatrixError is a bug: 500 + log. */
export function errors(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request');
      }
    } catch (err) {
      const e = toMatrixError(err);
      if (!e) {
        logger.error({ err, method: ctx.method, url: ctx.url }, 'unhandled error');
        ctx.status = 500;
        ctx.body = { errcode: 'M_UNKNOWN', error: 'Internal server error' };
        return;
      }
      ctx.status = e.status;
      ctx.body = e.toJSON();
      if (e.errcode === 'M_LIMIT_EXCEEDED' && typeof e.extra.retry_after_ms === 'number') {
        ctx.set('Retry-After', String(Math.ceil(e.extra.retry_after_ms / 1000)));
      }
    }
  };
}

function toMatrixError(err: unknown): MatrixError | null {
  if (err instanceof MatrixError) return err;
  const e = err as { status?: number; statusCode?: number; type?: string; expose?: boolean; message?: string };
  // raw-body / koa HTTP errors for client mistakes.
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

// fatal: invalid UTF-8 is refused, never silently turned into U+FFFD and stored.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Reads a JSON object body (for POST/PUT/DELETE): the one intake check every endpoint shares.
 * Bodies over `limit` bytes get 413 M_TOO_LARGE before being buffered further; invalid UTF-8 or
 * non-JSON M_NOT_JSON; a value canonical JSON cannot carry (fractions, integers past 2^53, lone
 * surrogates, nesting past the limit) or a top level that is not an object M_BAD_JSON. Objects
 * come out with null prototypes (see parseStrictJson). An empty body counts as {} because
 * several clients send none on POST.
 */
export function jsonBody(limit: number, opts: { fractions?: boolean } = {}): Koa.Middleware<HearthState> {
  return async (ctx, next) => {
    // DELETE carries a body too (UIA on DELETE /devices/{id}).
    if (ctx.method !== 'POST' && ctx.method !== 'PUT' && ctx.method !== 'DELETE') return next();
    const raw = await getRawBody(ctx.req, { limit, length: ctx.get('content-length') || undefined });
    ctx.state.body = parseJsonBody(raw, opts);
    return next();
  };
}

/** The intake rule of {@link jsonBody} for a body already in hand (socket request frames). */
export function parseJsonBody(raw: Buffer | string, opts: { fractions?: boolean } = {}): JsonObject {
  let text: string;
  try {
    text = typeof raw === 'string' ? raw : utf8.decode(raw);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'Content is not valid UTF-8.');
  }
  if (text.trim() === '') return dict();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'Content not JSON.');
  }
  try {
    parsed = hardenParsed(text, parsed, opts);
  } catch (err) {
    throw new MatrixError('M_BAD_JSON', `Content contains a value Matrix does not allow: ${(err as Error).message}`);
  }
  if (!isJsonObject(parsed)) throw new MatrixError('M_BAD_JSON', 'Request body must be a JSON object');
  return parsed;
}

export function body(ctx: Ctx): JsonObject {
  return (ctx.state.body ?? {}) as JsonObject;
}

/** The request a user-interactive-auth session is bound to. */
export function uiaRequest(ctx: Ctx): UiaRequest {
  return { method: ctx.method, path: ctx.path, body: body(ctx) };
}

export function accessTokenOf(ctx: Koa.Context | Ctx): string | undefined {
  const h = ctx.get('authorization');
  if (h) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (m) return m[1];
    return undefined;
  }
  const q = ctx.query.access_token;
  return typeof q === 'string' && q ? q : undefined;
}

export function requestLog(logger: Logger, observe: (method: string, route: string, status: number, seconds: number) => void): Koa.Middleware {
  return async (ctx, next) => {
    const start = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      observe(ctx.method, String(route), ctx.status, seconds);
      logger.debug({ method: ctx.method, route, status: ctx.status, ms: Math.round(seconds * 1e4) / 10 }, 'request');
    }
  };
}
