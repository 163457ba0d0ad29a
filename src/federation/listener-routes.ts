// Federation endpoints added after the first slice, kept out of listener.ts: the public room
// directory, the space hierarchy, knocking, the v1 forms of send_join, send_leave and invite,
// and authenticated media (our media as multipart/mixed: metadata, then the bytes). They run behind the same X-Matrix guard as every
// /_matrix/federation route (listener.ts), so ctx.state.origin is the authenticated server.
// Query and body parameters of the wrong type are 400 M_INVALID_PARAM / M_BAD_JSON.

import { Readable } from 'node:stream';
import { MatrixError } from '../errors.js';
import { contentDisposition, isInline } from '../media/headers.js';
import type { MediaService } from '../media/media-service.js';
import { multipartMediaParts } from '../media/multipart.js';
import { parseThumbnailQuery } from '../media/thumbnailer.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import type { JsonValue } from '../protocol/types.js';
import type { FederationDirectory, FederationPublicRoomsQuery } from './directory.js';
import type { FederationInbound } from './inbound.js';
import type { FederationKnocks } from './knock.js';
import type { Ctx, Routes } from './listener.js';

function query(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  return Array.isArray(v) ? v[0] : v;
}

function queryAll(ctx: Ctx, name: string): string[] {
  const v = ctx.query[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function boolParam(ctx: Ctx, name: string): boolean {
  const v = query(ctx, name);
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw new MatrixError('M_INVALID_PARAM', `${name} must be true or false`);
}

/** A POST /publicRooms body: limit, since, filter.{generic_search_term, room_types}. */
function publicRoomsBody(body: JsonValue | undefined): FederationPublicRoomsQuery {
  if (body === undefined) return {};
  if (!isJsonObject(body)) throw new MatrixError('M_BAD_JSON', 'The body must be a JSON object');
  const q: FederationPublicRoomsQuery = {};
  if (body.limit !== undefined && body.limit !== null) {
    if (typeof body.limit !== 'number' || !Number.isSafeInteger(body.limit) || body.limit < 0) throw new MatrixError('M_BAD_JSON', 'limit must be a non-negative integer');
    q.limit = body.limit;
  }
  if (body.since !== undefined && body.since !== null) {
    if (typeof body.since !== 'string') throw new MatrixError('M_BAD_JSON', 'since must be a string');
    q.since = body.since;
  }
  const f = body.filter;
  if (f !== undefined && f !== null) {
    if (!isJsonObject(f)) throw new MatrixError('M_BAD_JSON', 'filter must be an object');
    if (f.generic_search_term !== undefined && f.generic_search_term !== null) {
      if (typeof f.generic_search_term !== 'string' || f.generic_search_term.length > 512) throw new MatrixError('M_BAD_JSON', 'generic_search_term must be a string');
      q.term = f.generic_search_term;
    }
    if (f.room_types !== undefined && f.room_types !== null) {
      if (!Array.isArray(f.room_types) || f.room_types.length > 100 || !f.room_types.every((t) => t === null || typeof t === 'string')) {
        throw new MatrixError('M_BAD_JSON', 'room_types must be a list of strings or null');
      }
      q.roomTypes = f.room_types as Array<string | null>;
    }
  }
  return q;
}

export function directoryRoutes(fed: Routes, directory: FederationDirectory): void {
  fed.get('/v1/publicRooms', async (ctx) => {
    const raw = query(ctx, 'limit');
    const limit = raw === undefined ? undefined : Number(raw);
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) throw new MatrixError('M_INVALID_PARAM', 'limit must be a non-negative integer');
    boolParam(ctx, 'include_all_networks'); // no third-party networks: every listing is "all"
    ctx.body = await directory.publicRooms({ limit, since: query(ctx, 'since') });
  });
  fed.post('/v1/publicRooms', async (ctx) => {
    ctx.body = await directory.publicRooms(publicRoomsBody(ctx.state.body));
  });
  fed.get('/v1/hierarchy/:roomId', async (ctx) => {
    ctx.body = await directory.hierarchy(ctx.state.origin, ctx.params.roomId, boolParam(ctx, 'suggested_only'));
  });
}

export function knockRoutes(fed: Routes, knocks: FederationKnocks): void {
  fed.get('/v1/make_knock/:roomId/:userId', async (ctx) => {
    const versions = queryAll(ctx, 'ver');
    if (versions.length === 0) throw new MatrixError('M_MISSING_PARAM', 'ver is required: the room versions your server supports');
    ctx.body = await knocks.makeKnock(ctx.state.origin, ctx.params.roomId, ctx.params.userId, versions);
  });
  fed.put('/v1/send_knock/:roomId/:eventId', async (ctx) => {
    ctx.body = await knocks.sendKnock(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body);
  });
}

/**
 * v1 of send_join, send_leave and invite: deprecated in favour of v2, still in the spec, and
 * still what some servers send. The same operations as v2; the answers are wrapped as
 * `[200, body]`. A v1 invite carries the bare event (invite_room_state in its `unsigned`) and
 * no room version: the spec says to assume version 1 or 2 (the same event format), so it is the
 * stored room's version when that is one of them, otherwise 1.
 */
export function v1MembershipRoutes(fed: Routes, i: FederationInbound): void {
  fed.put('/v1/send_join/:roomId/:eventId', async (ctx) => {
    ctx.body = [200, await i.sendJoin(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body)];
  });
  fed.put('/v1/send_leave/:roomId/:eventId', async (ctx) => {
    await i.sendMembership(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, ctx.state.body, 'leave');
    ctx.body = [200, {}];
  });
  fed.put('/v1/invite/:roomId/:eventId', async (ctx) => {
    const event = ctx.state.body;
    if (!isJsonObject(event)) throw new MatrixError('M_BAD_JSON', 'The body must be the invite event');
    const known = await i.roomVersion(ctx.params.roomId);
    const roomVersion = known === '2' ? '2' : '1';
    const unsigned = isJsonObject(event.unsigned) ? event.unsigned : {};
    const body = { room_version: roomVersion, event, invite_room_state: unsigned.invite_room_state ?? [] };
    ctx.body = [200, await i.invite(ctx.state.origin, ctx.params.roomId, ctx.params.eventId, body)];
  });
}

/** The media service as the federation listener uses it (set late: it is built after federation). */
export type FederationMediaSource = Pick<MediaService, 'download' | 'thumbnail'>;

const MEDIA_WAIT_DEFAULT_MS = 20_000;

/**
 * GET /v1/media/download/{mediaId} and /v1/media/thumbnail/{mediaId}: our own media only (a
 * server never proxies a third server's media), answered multipart/mixed with `{}` metadata.
 */
export function mediaRoutes(fed: Routes, media: () => FederationMediaSource | undefined, serverName: string): void {
  const source = (): FederationMediaSource => {
    const m = media();
    if (!m) throw new MatrixError('M_UNRECOGNIZED', 'Unrecognized request', {}, 404);
    return m;
  };
  const timeout = (ctx: Ctx): number => {
    const v = query(ctx, 'timeout_ms');
    if (v === undefined || v === '') return MEDIA_WAIT_DEFAULT_MS;
    if (!/^\d{1,15}$/.test(v)) throw new MatrixError('M_INVALID_PARAM', 'timeout_ms must be a non-negative integer');
    return Number(v);
  };
  const answer = (ctx: Ctx, got: { contentType: string; stream: Readable; size: number }, disposition: string) => {
    const parts = multipartMediaParts(got.contentType, disposition);
    ctx.status = 200;
    ctx.type = parts.contentType;
    ctx.length = parts.head.length + got.size + parts.tail.length;
    ctx.body = Readable.from(
      (async function* () {
        yield parts.head;
        yield* got.stream;
        yield parts.tail;
      })(),
    );
  };
  fed.get('/v1/media/download/:mediaId', async (ctx) => {
    const got = await source().download(serverName, ctx.params.mediaId, timeout(ctx), AbortSignal.timeout(MEDIA_WAIT_DEFAULT_MS * 3));
    answer(ctx, got, contentDisposition(isInline(got.contentType) ? 'inline' : 'attachment', got.uploadName));
  });
  fed.get('/v1/media/thumbnail/:mediaId', async (ctx) => {
    const req = parseThumbnailQuery((name) => query(ctx, name));
    const got = await source().thumbnail(serverName, ctx.params.mediaId, req, timeout(ctx), AbortSignal.timeout(MEDIA_WAIT_DEFAULT_MS * 3), async () => {});
    answer(ctx, got, contentDisposition('inline', `thumbnail.${got.contentType.split('/')[1] ?? 'bin'}`));
  });
}
