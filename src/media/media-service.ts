// The media repository: uploads (direct, and POST /create + PUT for async uploads), downloads,
// thumbnails and deletion. Metadata goes to the store contract (MediaMetaStore), bytes to a
// MediaStore (files under media.path, or chunks in Cassandra that every worker shares).
//
// Invariants:
// - Bytes are stored before their metadata commits, and only metadata makes media visible: an
//   upload cut off mid-stream leaves neither (the MediaStore's put is all or nothing), and one
//   refused at commit (quota, a lost race) has its bytes deleted again.
// - Limits are checked before a byte is read when the request says its length (413 for
//   media.max_upload_bytes, 403 for the quota), and again while streaming and at commit.
// - Deleting removes the metadata first, then the bytes: a reader never finds metadata without
//   bytes except in the moment between (answered 404 like missing media).
// - Two PUTs to one pending ID are serialised in this process (the second is 409). Across
//   processes (a cluster) the MediaStore writes a key once and hands the loser the winner's size
//   and hash, and the metadata completes once (the store's LWT / transaction), so the recorded
//   size and hash always describe the bytes readers get.
// - Media of other servers comes through the federation seam (RemoteMedia) and is kept in
//   `blobs` like ours (remote-cache.ts: fetching, limits, sanitising); its thumbnails are made
//   here from the fetched original (as Synapse does), never asked of the origin. It is evicted
//   by age (remote-eviction.ts; keys per fetch generation, bytes deleted after a grace period);
//   local media never is.
// - Serving ours to other servers (/_matrix/federation/v1/media/download) is download() with
//   our name.
// - stop() resolves only after the background passes (eviction, expiry of pending IDs) have
//   ended, and closes the byte store after them: the caller closes the metadata store next.

import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { MediaMetaStore, ThumbnailRecord } from '../store/media-types.js';
import { BlobTooLargeError, type MediaStore } from './media-store.js';
import { RemoteMediaCache, remoteKey, remoteThumbnailKey, type RemoteMedia } from './remote-cache.js';
import { RemoteMediaEvictor, type EvictionStats } from './remote-eviction.js';
import { makeThumbnail, THUMBNAILABLE, ThumbnailError, type ThumbnailRequest } from './thumbnailer.js';
import { essence } from './headers.js';

export { remoteKey, type RemoteDownload, type RemoteMedia } from './remote-cache.js';

export interface MediaConfig {
  maxUploadBytes: number;
  /** Per-user quota over complete uploads; null: none. */
  maxUserBytes: number | null;
  unusedExpirationMs: number;
  maxPendingUploads: number;
  /** Cap on a download's timeout_ms while waiting for an async upload. */
  maxWaitMs: number;
  maxImagePixels: number;
  maxThumbnailsPerMedia: number;
  /** Fetch media of other servers over federation (media.fetch_remote); else 404. */
  fetchRemote: boolean;
  /** Remote media not accessed for this long is evicted (media.remote_media_lifetime_ms); null: kept. */
  remoteMediaLifetimeMs: number | null;
  /** Total size of remote media kept before the least recently accessed go (media.max_remote_media_bytes); null: no cap. */
  maxRemoteMediaBytes: number | null;
}

/** An upload's body as the transport hands it over. */
export interface UploadInput {
  contentType: string | null;
  filename: string | null;
  /** Content-Length, when the request gave one. */
  length: number | undefined;
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

export interface MediaBytes {
  uploadName: string | null;
  contentType: string;
  stream: Readable;
  size: number;
}

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
const MAX_THUMBNAIL_DIMENSION = 2048;

export const contentKey = (mediaId: string): string => `content/${mediaId}`;
export const thumbnailKey = (t: Pick<ThumbnailRecord, 'mediaId' | 'reqWidth' | 'reqHeight' | 'method' | 'animated'>): string =>
  `thumbnails/${t.mediaId}/${t.reqWidth}x${t.reqHeight}-${t.method}${t.animated ? '-animated' : ''}`;

export class MediaService {
  private readonly uploading = new Set<string>();
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly generating = new Map<string, Promise<{ contentType: string; bytes: Buffer }>>();
  private readonly remote: RemoteMediaCache;
  private readonly evictor: RemoteMediaEvictor;
  private sweeper: NodeJS.Timeout | undefined;
  private expiring: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      meta: MediaMetaStore;
      blobs: MediaStore;
      serverName: string;
      config: MediaConfig;
      logger: Logger;
      now: () => number;
      remote?: RemoteMedia;
    },
  ) {
    const d = deps;
    this.remote = new RemoteMediaCache({ meta: d.meta, blobs: d.blobs, fetcher: d.config.fetchRemote ? d.remote : undefined, maxBytes: d.config.maxUploadBytes, logger: d.logger, now: d.now });
    this.evictor = new RemoteMediaEvictor({ meta: d.meta, blobs: d.blobs, lifetimeMs: d.config.remoteMediaLifetimeMs, maxBytes: d.config.maxRemoteMediaBytes, logger: d.logger, now: d.now });
  }

  get config(): MediaConfig {
    return this.deps.config;
  }

  async start(): Promise<void> {
    await this.deps.blobs.open();
    this.sweeper = setInterval(() => {
      // One pass at a time; stop() waits for it.
      this.expiring ??= this.sweepExpired().finally(() => (this.expiring = undefined));
    }, 60_000);
    this.sweeper.unref();
    this.evictor.start();
  }

  /** Resolves once no background pass (eviction, expiry of pending IDs) is running: the store can close. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    await this.evictor.stop();
    await this.expiring;
    this.deps.blobs.close?.();
    for (const set of this.waiting.values()) for (const wake of set) wake();
  }

  /** Remote media this process has evicted so far (for /metrics). */
  evictionStats(): EvictionStats {
    return this.evictor.stats();
  }

  mxc(mediaId: string): string {
    return `mxc://${this.deps.serverName}/${mediaId}`;
  }

  /** POST /upload: stores the body under a new media ID. */
  async upload(userId: string, input: UploadInput): Promise<string> {
    await this.precheck(userId, input.length);
    const mediaId = newMediaId();
    const stored = await this.putBytes(mediaId, input);
    const now = this.deps.now();
    let outcome: 'ok' | 'quota';
    try {
      outcome = await this.deps.meta.insertMedia(
        { mediaId, userId, contentType: input.contentType, uploadName: input.filename, size: stored.size, sha256: stored.sha256, createdTs: now, uploadedTs: now, unusedExpiresTs: null },
        this.deps.config.maxUserBytes,
      );
    } catch (err) {
      await this.dropBytes(contentKey(mediaId));
      throw err;
    }
    if (outcome === 'quota') {
      await this.dropBytes(contentKey(mediaId));
      throw quotaError();
    }
    return mediaId;
  }

  /** POST /create: a media ID to upload to later. */
  async create(userId: string): Promise<{ mediaId: string; unusedExpiresAt: number }> {
    const now = this.deps.now();
    const mediaId = newMediaId();
    const unusedExpiresAt = now + this.deps.config.unusedExpirationMs;
    const ok = await this.deps.meta.createPending({ mediaId, userId, createdTs: now, unusedExpiresTs: unusedExpiresAt }, this.deps.config.maxPendingUploads, now);
    if (!ok) {
      throw new MatrixError('M_LIMIT_EXCEEDED', 'Too many pending media uploads', { retry_after_ms: this.deps.config.unusedExpirationMs });
    }
    return { mediaId, unusedExpiresAt };
  }

  /** PUT /upload/{serverName}/{mediaId}: the bytes for a media ID from create(). */
  async uploadTo(userId: string, serverName: string, mediaId: string, input: UploadInput): Promise<void> {
    if (serverName !== this.deps.serverName || !MEDIA_ID_RE.test(mediaId)) throw new MatrixError('M_NOT_FOUND', 'Unknown media ID');
    const existing = await this.deps.meta.getMedia(mediaId);
    const now = this.deps.now();
    if (!existing || (existing.uploadedTs === null && existing.unusedExpiresTs !== null && existing.unusedExpiresTs <= now)) {
      throw new MatrixError('M_NOT_FOUND', 'Unknown media ID');
    }
    if (existing.userId !== userId) throw new MatrixError('M_FORBIDDEN', 'This media ID was created by another user');
    if (existing.uploadedTs !== null || this.uploading.has(mediaId)) throw new MatrixError('M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded', {}, 409);
    await this.precheck(userId, input.length);
    // One upload per ID at a time in this process: two would rename over each other's file.
    this.uploading.add(mediaId);
    try {
      const stored = await this.putBytes(mediaId, input);
      const outcome = await this.deps.meta.completePending(
        mediaId,
        userId,
        { contentType: input.contentType, uploadName: input.filename, size: stored.size, sha256: stored.sha256, uploadedTs: this.deps.now() },
        this.deps.config.maxUserBytes,
      );
      if (outcome === 'ok') {
        this.wake(mediaId);
        return;
      }
      // Only a lost race gets here; the winner's bytes are the ones under the key now (another
      // process's upload may have completed with them: those stay).
      if (outcome !== 'exists' && (await this.deps.meta.getMedia(mediaId))?.uploadedTs == null) await this.dropBytes(contentKey(mediaId));
      if (outcome === 'quota') throw quotaError();
      if (outcome === 'exists') throw new MatrixError('M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded', {}, 409);
      if (outcome === 'forbidden') throw new MatrixError('M_FORBIDDEN', 'This media ID was created by another user');
      throw new MatrixError('M_NOT_FOUND', 'Unknown media ID');
    } finally {
      this.uploading.delete(mediaId);
    }
  }

  /**
   * The bytes of a media ID, waiting up to `timeoutMs` for an async upload to arrive; another
   * server's fetched first unless kept already (`allowRemote` false, the legacy parameter: never
   * fetched).
   */
  async download(serverName: string, mediaId: string, timeoutMs: number, signal: AbortSignal, allowRemote = true): Promise<MediaBytes> {
    if (!this.isLocal(serverName)) {
      const remote = await this.remote.record(serverName, mediaId, allowRemote);
      const blob = await this.deps.blobs.get(remoteKey(serverName, mediaId, remote.generation));
      if (!blob) throw notFound();
      return { uploadName: remote.uploadName, contentType: remote.contentType ?? 'application/octet-stream', stream: blob.stream, size: blob.size };
    }
    const record = await this.complete(serverName, mediaId, timeoutMs, signal);
    const blob = await this.deps.blobs.get(contentKey(mediaId));
    if (!blob) throw notFound();
    return { uploadName: record.uploadName, contentType: record.contentType ?? 'application/octet-stream', stream: blob.stream, size: blob.size };
  }

  /**
   * A thumbnail, from the cache or made now. `charge` is called before making one (the caller's
   * rate limit: making thumbnails costs CPU and disk).
   */
  async thumbnail(
    serverName: string,
    mediaId: string,
    req: ThumbnailRequest,
    timeoutMs: number,
    signal: AbortSignal,
    charge: () => Promise<void>,
    allowRemote = true,
  ): Promise<{ contentType: string; stream: Readable; size: number }> {
    const w = Math.min(req.width, MAX_THUMBNAIL_DIMENSION);
    const h = Math.min(req.height, MAX_THUMBNAIL_DIMENSION);
    const local = this.isLocal(serverName);
    const record = local ? await this.complete(serverName, mediaId, timeoutMs, signal) : await this.remote.record(serverName, mediaId, allowRemote);
    const gen = 'generation' in record ? record.generation : '';
    const type = essence(record.contentType ?? '');
    if (!THUMBNAILABLE.has(type)) throw new MatrixError('M_UNKNOWN', 'Cannot generate thumbnails for the requested content', {}, 400);
    const key = { mediaId, reqWidth: w, reqHeight: h, method: req.method, animated: req.animated };
    const k = local ? thumbnailKey(key) : remoteThumbnailKey(serverName, gen, key);
    const cached = local
      ? await this.deps.meta.getThumbnail(mediaId, w, h, req.method, req.animated)
      : await this.deps.meta.getRemoteThumbnail(serverName, mediaId, gen, w, h, req.method, req.animated);
    const blob = cached ? await this.deps.blobs.get(k) : null;
    if (cached && blob) return { contentType: cached.contentType, stream: blob.stream, size: blob.size };
    await charge();
    let pending = this.generating.get(k);
    if (!pending) {
      const source = local ? contentKey(mediaId) : remoteKey(serverName, mediaId, gen);
      const keep = local
        ? (t: ThumbnailRecord) => this.deps.meta.putThumbnail(t, this.deps.config.maxThumbnailsPerMedia)
        : (t: ThumbnailRecord) => this.deps.meta.putRemoteThumbnail({ ...t, origin: serverName, generation: gen }, this.deps.config.maxThumbnailsPerMedia);
      pending = this.generate(mediaId, source, k, keep, type, { ...req, width: w, height: h }).finally(() => this.generating.delete(k));
      this.generating.set(k, pending);
    }
    const made = await pending;
    return { contentType: made.contentType, stream: Readable.from([made.bytes]), size: made.bytes.length };
  }

  /** Deletes one local media item (admin); false when there is none. */
  async deleteMedia(mediaId: string): Promise<boolean> {
    if (!MEDIA_ID_RE.test(mediaId)) return false;
    const gone = await this.deps.meta.deleteMedia(mediaId);
    if (!gone) return false;
    await this.dropBytes(contentKey(mediaId));
    for (const t of gone.thumbnails) await this.dropBytes(thumbnailKey(t));
    this.wake(mediaId);
    return true;
  }

  /** Deletes every media item a user uploaded or created; returns their IDs. */
  async deleteUserMedia(userId: string): Promise<string[]> {
    const deleted: string[] = [];
    for (const id of await this.deps.meta.listUserMedia(userId)) if (await this.deleteMedia(id)) deleted.push(id);
    return deleted;
  }

  /** The admin purge: evicts remote media last accessed before `beforeTs`; how many. */
  purgeRemoteMedia(beforeTs: number): Promise<number> {
    return this.evictor.purge(beforeTs);
  }

  /** One eviction sweep now (the timer's; tests pass their own clock). */
  sweepRemoteMedia(now?: number): Promise<void> {
    return this.evictor.sweep(now);
  }

  isLocal(serverName: string): boolean {
    return serverName === this.deps.serverName;
  }

  /** Makes a thumbnail and keeps it (unless the media has its cap of them, or is gone). */
  private async generate(
    mediaId: string,
    sourceKey: string,
    k: string,
    keep: (t: ThumbnailRecord) => Promise<boolean>,
    type: string,
    req: ThumbnailRequest,
  ): Promise<{ contentType: string; bytes: Buffer }> {
    const blob = await this.deps.blobs.get(sourceKey);
    if (!blob) throw notFound();
    const source = await readAll(blob.stream, this.deps.config.maxUploadBytes);
    let made;
    try {
      made = await makeThumbnail(source, type, req, this.deps.config.maxImagePixels);
    } catch (err) {
      if (err instanceof ThumbnailError) {
        this.deps.logger.debug({ err, mediaId }, 'thumbnail refused');
        throw new MatrixError('M_UNKNOWN', 'Cannot generate thumbnails for the requested content', {}, 400);
      }
      throw err;
    }
    const rec: ThumbnailRecord = {
      mediaId,
      reqWidth: req.width,
      reqHeight: req.height,
      method: req.method,
      animated: req.animated,
      width: made.width,
      height: made.height,
      contentType: made.contentType,
      size: made.bytes.length,
      createdTs: this.deps.now(),
    };
    try {
      await this.deps.blobs.put(k, [made.bytes], made.bytes.length);
      if (!(await keep(rec))) await this.dropBytes(k);
    } catch (err) {
      // The thumbnail is still served; only the cache missed out.
      this.deps.logger.warn({ err, mediaId }, 'could not keep a thumbnail');
    }
    return { contentType: made.contentType, bytes: made.bytes };
  }

  /** The record of complete local media, waiting for a pending one. */
  private async complete(serverName: string, mediaId: string, timeoutMs: number, signal: AbortSignal) {
    if (!this.isLocal(serverName)) throw notFound();
    if (!MEDIA_ID_RE.test(mediaId)) throw notFound();
    const deadline = this.deps.now() + Math.max(0, Math.min(timeoutMs, this.deps.config.maxWaitMs));
    for (;;) {
      const record = await this.deps.meta.getMedia(mediaId);
      if (!record) throw notFound();
      if (record.uploadedTs !== null) return record;
      const now = this.deps.now();
      if (record.unusedExpiresTs !== null && record.unusedExpiresTs <= now) throw notFound();
      if (now >= deadline || signal.aborted) throw new MatrixError('M_NOT_YET_UPLOADED', 'Content has not yet been uploaded', {}, 504);
      // Woken by an upload in this process; the re-check every second covers other processes.
      await this.waitFor(mediaId, Math.min(1000, deadline - now), signal);
    }
  }

  private waitFor(mediaId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiting.get(mediaId);
      if (!set) this.waiting.set(mediaId, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        set.delete(done);
        if (set.size === 0 && this.waiting.get(mediaId) === set) this.waiting.delete(mediaId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      set.add(done);
    });
  }

  private wake(mediaId: string): void {
    for (const f of [...(this.waiting.get(mediaId) ?? [])]) f();
  }

  private async precheck(userId: string, length: number | undefined): Promise<void> {
    const c = this.deps.config;
    if (length !== undefined && length > c.maxUploadBytes) throw tooLarge(c.maxUploadBytes);
    if (c.maxUserBytes !== null && (await this.deps.meta.usage(userId)) + (length ?? 0) > c.maxUserBytes) throw quotaError();
  }

  private async putBytes(mediaId: string, input: UploadInput) {
    const limit = this.deps.config.maxUploadBytes;
    try {
      return await this.deps.blobs.put(contentKey(mediaId), exactly(input.body, input.length), limit);
    } catch (err) {
      if (err instanceof BlobTooLargeError) throw tooLarge(limit);
      if (err instanceof MatrixError) throw err;
      // The client went away or the body broke off: nothing was stored, and nobody is listening.
      this.deps.logger.debug({ err, mediaId }, 'upload interrupted');
      throw new MatrixError('M_UNKNOWN', 'The upload was interrupted', {}, 400);
    }
  }

  private async dropBytes(key: string): Promise<void> {
    try {
      await this.deps.blobs.delete(key);
    } catch (err) {
      this.deps.logger.warn({ err, key }, 'could not delete media bytes');
    }
  }

  private async sweepExpired(): Promise<void> {
    try {
      for (const id of await this.deps.meta.listExpiredPending(this.deps.now(), 500)) await this.deleteMedia(id);
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not remove expired pending media IDs');
    }
  }
}

/** The body, failing if it ends before the Content-Length it announced (a cut-off upload). */
async function* exactly(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, length: number | undefined): AsyncIterable<Uint8Array> {
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    yield chunk;
  }
  if (length !== undefined && n !== length) throw new Error(`body ended after ${n} of ${length} bytes`);
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > limit) {
      stream.destroy();
      throw new MatrixError('M_TOO_LARGE', 'Content is too large to thumbnail');
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function newMediaId(): string {
  // 144 bits, base64url: only [A-Za-z0-9_-], as the spec asks of media IDs.
  return randomBytes(18).toString('base64url');
}

const notFound = (): MatrixError => new MatrixError('M_NOT_FOUND', 'Media not found');
const tooLarge = (limit: number): MatrixError => new MatrixError('M_TOO_LARGE', `Upload is larger than the limit of ${limit} bytes`);
const quotaError = (): MatrixError => new MatrixError('M_FORBIDDEN', 'Media quota exceeded: delete some media or ask the server admin');
