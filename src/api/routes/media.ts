// The media repository's client routes: authenticated media (v1.11, /_matrix/client/v1/media/*),
// the legacy /_matrix/media/{v3,r0}/* paths (also authenticated, as Synapse serves them once
// unauthenticated media is frozen), async uploads (POST /_matrix/media/v1/create + PUT
// /upload/{serverName}/{mediaId}), URL previews, and the Synapse admin API's media deletion and
// remote media purge.
//
// Uploads are 'media' intake: the table hands the raw body to the handler unread, and the media
// service streams it to the MediaStore under its own limits. Downloads answer a BinaryBody with
// the safe headers of src/media/headers.ts. Every route needs an access token; uploads, creates
// and thumbnail generation spend from the write limit.

import { BinaryBody } from '../handlers.js';
import { MatrixError } from '../../errors.js';
import { contentDisposition, mediaHeaders } from '../../media/headers.js';
import type { UploadInput } from '../../media/media-service.js';
import { parseThumbnailQuery, type ThumbnailRequest } from '../../media/thumbnailer.js';
import type { AuthInfo, Ctx } from '../middleware.js';
import { param, queryString, type ApiServices, type ClientRoutes } from '../routing.js';

/** Where each endpoint is served: the authenticated v1 path first, then the legacy ones. */
const AUTHED = '/_matrix/client/v1/media';
const LEGACY = ['/_matrix/media/v3', '/_matrix/media/r0'];
const ALL = [AUTHED, ...LEGACY];
const DEFAULT_TIMEOUT_MS = 20000;

type MediaRouteDeps = Pick<ApiServices, 'accounts' | 'limits' | 'media' | 'serverName' | 'urlPreviews'>;

export function mediaRoutes(r: ClientRoutes, s: MediaRouteDeps): void {
  const media = s.media;
  // Routes that carry bytes (either way) are 'media' intake: HTTP only; the rest are JSON.
  const BYTES = /\/(upload|download|thumbnail)\//;
  const each = (prefixes: string[], method: 'get' | 'post' | 'put' | 'delete', path: string, handler: (ctx: Ctx, auth: AuthInfo) => Promise<void> | void) => {
    for (const p of prefixes) r.authedRaw(method, `${p}${path}`, handler, { intake: BYTES.test(`${path}/`) ? 'media' : 'json' });
  };

  each(ALL, 'get', '/config', (ctx) => {
    ctx.body = { 'm.upload.size': media.config.maxUploadBytes };
  });

  each(ALL, 'post', '/upload', async (ctx, auth) => {
    const mediaId = await media.upload(auth.userId, uploadInput(ctx));
    ctx.body = { content_uri: media.mxc(mediaId) };
  });

  // v1/create is the spec's path; v3 and the v1 media path are accepted as Synapse does.
  each(['/_matrix/media/v1', AUTHED, ...LEGACY], 'post', '/create', async (ctx, auth) => {
    const { mediaId, unusedExpiresAt } = await media.create(auth.userId);
    ctx.body = { content_uri: media.mxc(mediaId), unused_expires_at: unusedExpiresAt };
  });

  each(ALL, 'put', '/upload/:serverName/:mediaId', async (ctx, auth) => {
    await media.uploadTo(auth.userId, param(ctx, 'serverName'), param(ctx, 'mediaId'), uploadInput(ctx));
    ctx.body = {};
  });

  each(ALL, 'get', '/download/:serverName/:mediaId{/:fileName}', async (ctx) => {
    const got = await media.download(param(ctx, 'serverName'), param(ctx, 'mediaId'), timeoutOf(ctx), ctx.signal, allowRemote(ctx));
    // A file name in the path wins over the uploaded one, as the spec says.
    const name = ctx.params.fileName ?? got.uploadName;
    Object.assign(ctx.headers, mediaHeaders(got.contentType, name));
    ctx.type = got.contentType;
    ctx.body = new BinaryBody(got.stream, got.size);
  });

  each(ALL, 'get', '/thumbnail/:serverName/:mediaId', async (ctx, auth) => {
    const req = thumbnailRequest(ctx);
    const got = await media.thumbnail(param(ctx, 'serverName'), param(ctx, 'mediaId'), req, timeoutOf(ctx), ctx.signal, () => s.limits.write.consume(auth.userId), allowRemote(ctx));
    const ext = got.contentType.split('/')[1] ?? 'bin';
    Object.assign(ctx.headers, mediaHeaders(got.contentType, null, true), { 'Content-Disposition': contentDisposition('inline', `thumbnail.${ext}`) });
    ctx.type = got.contentType;
    ctx.body = new BinaryBody(got.stream, got.size);
  });

  // Disabled: not routed at all (404 M_UNRECOGNIZED, as Synapse), so clients stop asking.
  const previews = s.urlPreviews;
  if (previews) {
    each(ALL, 'get', '/preview_url', async (ctx, auth) => {
      const url = queryString(ctx, 'url');
      if (!url) throw new MatrixError('M_MISSING_PARAM', 'Missing url');
      await s.limits.write.consume(auth.userId);
      ctx.body = await previews.preview(auth.userId, url, ctx.signal);
    });
  }

  // Synapse's admin API: delete one item, or everything a user uploaded. Admins only.
  const admin = async (auth: AuthInfo) => {
    if (!(await s.accounts.isAdmin(auth.userId))) throw new MatrixError('M_FORBIDDEN', 'You are not a server admin');
  };
  r.authedRaw('delete', '/_synapse/admin/v1/media/:serverName/:mediaId', async (ctx, auth) => {
    await admin(auth);
    const serverName = param(ctx, 'serverName');
    const mediaId = param(ctx, 'mediaId');
    if (!media.isLocal(serverName)) throw new MatrixError('M_INVALID_PARAM', 'Can only delete local media');
    if (!(await media.deleteMedia(mediaId))) throw new MatrixError('M_NOT_FOUND', 'Media not found');
    ctx.body = { deleted_media: [mediaId], total: 1 };
  });
  r.authedRaw('delete', '/_synapse/admin/v1/users/:userId/media', async (ctx, auth) => {
    await admin(auth);
    const userId = param(ctx, 'userId');
    if (!userId.endsWith(`:${s.serverName}`)) throw new MatrixError('M_INVALID_PARAM', 'Can only delete media of local users');
    const deleted = await media.deleteUserMedia(userId);
    ctx.body = { deleted_media: deleted, total: deleted.length };
  });
  // Evicts cached remote media last accessed before before_ts (ms), as Synapse: {deleted: n}.
  // POST, so it spends from the write limit like the deletions above.
  r.authedRaw('post', '/_synapse/admin/v1/purge_media_cache', async (ctx, auth) => {
    await admin(auth);
    const v = queryString(ctx, 'before_ts');
    if (v === undefined || v === '') throw new MatrixError('M_MISSING_PARAM', 'Missing integer query parameter "before_ts"');
    if (!/^-?\d{1,16}$/.test(v)) throw new MatrixError('M_INVALID_PARAM', 'Query parameter "before_ts" must be an integer');
    const beforeTs = Number(v);
    if (beforeTs < 0) throw new MatrixError('M_INVALID_PARAM', 'Query parameter before_ts must be a positive integer.');
    // Seconds instead of milliseconds would purge nothing: refused, as Synapse does.
    if (beforeTs < 30_000_000_000) {
      throw new MatrixError('M_INVALID_PARAM', 'Query parameter before_ts you provided is from the year 1970. Double check that you are providing a timestamp in milliseconds.');
    }
    ctx.body = { deleted: await media.purgeRemoteMedia(beforeTs) };
  });
}

/** The upload's type, name and body; bad values are refused before a byte is read. */
function uploadInput(ctx: Ctx): UploadInput {
  const up = ctx.upload;
  if (!up) throw new MatrixError('M_UNRECOGNIZED', 'Media uploads are served over HTTP only', {}, 400);
  const filename = queryString(ctx, 'filename') ?? null;
  if (filename !== null && (filename.length > 255 || /[\u0000-\u001f\u007f]/.test(filename))) {
    throw new MatrixError('M_INVALID_PARAM', 'filename must be at most 255 characters, without control characters');
  }
  const type = up.contentType;
  if (type !== null && !/^[\x21-\x7e][\x20-\x7e]{0,254}$/.test(type)) throw new MatrixError('M_INVALID_PARAM', 'Invalid Content-Type');
  return { contentType: type, filename: filename === '' ? null : filename, length: up.length, body: up.body };
}

/** The legacy allow_remote=false: remote media is not fetched (a server asking us, avoiding loops). */
function allowRemote(ctx: Ctx): boolean {
  const v = queryString(ctx, 'allow_remote');
  if (v === undefined || v === '' || v === 'true') return true;
  if (v === 'false') return false;
  throw new MatrixError('M_INVALID_PARAM', 'allow_remote must be true or false');
}

function timeoutOf(ctx: Ctx): number {
  const v = queryString(ctx, 'timeout_ms');
  if (v === undefined || v === '') return DEFAULT_TIMEOUT_MS;
  if (!/^\d{1,15}$/.test(v)) throw new MatrixError('M_INVALID_PARAM', 'timeout_ms must be a non-negative integer');
  return Number(v);
}

function thumbnailRequest(ctx: Ctx): ThumbnailRequest {
  return parseThumbnailQuery((name) => queryString(ctx, name));
}
