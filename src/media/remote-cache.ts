// Media of other servers for the media service (media-service.ts): kept in the MediaStore every
// worker shares (under remote/<origin>/<id>.<generation>), fetched through the RemoteMedia seam
// (federation: src/federation/media-fetch.ts) when a client first asks, and evicted by age
// (remote-eviction.ts).
//
// Invariants:
// - Bytes are stored before the remote record (origin + id) commits, and only the record makes
//   them visible; a fetch is limited to media.max_upload_bytes while streaming (over it, or cut
//   off: the MediaStore's put stores nothing), and refused at once when the origin announces more.
// - Every fetch draws a fresh generation for its keys, so its bytes are its own: no other fetch
//   and no eviction of an earlier fetch touches them. Concurrent requests for one item share one
//   fetch in this process; across workers the store keeps the first record, and a fetch whose
//   record lost drops its own bytes (only its own: no record can name its generation). A record
//   write that fails keeps the bytes (the write may have committed); they leak rather than risk
//   a record without bytes.
// - A read moves the record's last access at most once per ACCESS_GRANULARITY_MS (one write per
//   item and minute, not per download), in the background: a failed touch is logged only.
// - A failed fetch is remembered for REMOTE_FAILURE_MS (at most 10 000 entries), so clients
//   retrying a dead or hostile origin do not make us ask it again each time.
// - The origin's Content-Type and file name are kept only when they pass the rules an upload's
//   pass; the response headers (headers.ts) then decide inline or attachment as for local media.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isValidServerName } from '../protocol/ids.js';
import type { MediaMetaStore, RemoteMediaRecord } from '../store/media-types.js';
import { BlobTooLargeError, type MediaStore } from './media-store.js';

/** Media of another server as its origin answers it (unsanitised). */
export interface RemoteDownload {
  contentType: string | null;
  filename: string | null;
  /** Content-Length, when the answer gave one. */
  length: number | undefined;
  /** Fails when the transfer breaks off. */
  body: AsyncIterable<Uint8Array>;
  /** Drops the transfer (when the body will not be read to its end). */
  cancel(): void;
}

/** Fetches media of other servers (src/federation/media-fetch.ts). */
export interface RemoteMedia {
  /** null: the origin has no such media. Throws on any other failure. */
  fetch(origin: string, mediaId: string, signal: AbortSignal): Promise<RemoteDownload | null>;
}

/** How long a failed remote fetch is answered from memory before the origin is asked again. */
export const REMOTE_FAILURE_MS = 30_000;
/** The longest one remote fetch may take, all of its bytes included. */
const REMOTE_FETCH_MS = 120_000;

/** How stale a record's last access may get before a read writes it again. */
export const ACCESS_GRANULARITY_MS = 60_000;

/**
 * The last segment of a generation's keys: `<id>.<generation>`, or `<id>` for generation ''
 * (media fetched before generations). Media IDs have no '.', so the two never meet.
 */
const idGen = (mediaId: string, generation: string): string => (generation === '' ? mediaId : `${mediaId}.${generation}`);
/** The origin base64url-encoded, as server names hold ':' and '[]'. */
const originPart = (origin: string): string => Buffer.from(origin).toString('base64url');

/** The key of one generation of remote media's bytes. */
export const remoteKey = (origin: string, mediaId: string, generation: string): string => `remote/${originPart(origin)}/${idGen(mediaId, generation)}`;

/** The key of a thumbnail made of one generation of remote media. */
export const remoteThumbnailKey = (
  origin: string,
  generation: string,
  t: Pick<RemoteMediaRecord, 'mediaId'> & { reqWidth: number; reqHeight: number; method: string; animated: boolean },
): string => `remote-thumbnails/${originPart(origin)}/${idGen(t.mediaId, generation)}/${t.reqWidth}x${t.reqHeight}-${t.method}${t.animated ? '-animated' : ''}`;

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
/** What an upload's Content-Type may be (the upload routes check the same). */
const CONTENT_TYPE_RE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

export class RemoteMediaCache {
  private readonly fetching = new Map<string, Promise<RemoteMediaRecord>>();
  private readonly failed = new Map<string, { until: number; error: MatrixError }>();
  /** Items whose touch is in flight: a burst of downloads of one item writes once. */
  private readonly touching = new Set<string>();

  constructor(
    private readonly deps: {
      meta: MediaMetaStore;
      blobs: MediaStore;
      /** Absent (no federation, or media.fetch_remote false): remote media is 404. */
      fetcher: RemoteMedia | undefined;
      maxBytes: number;
      logger: Logger;
      now: () => number;
    },
  ) {}

  /** Remote media's record: kept already, or fetched now (`allowRemote` false: never fetched). */
  async record(origin: string, mediaId: string, allowRemote: boolean): Promise<RemoteMediaRecord> {
    if (!this.deps.fetcher || !MEDIA_ID_RE.test(mediaId) || !isValidServerName(origin)) throw notFound();
    const known = await this.deps.meta.getRemoteMedia(origin, mediaId);
    if (known) {
      this.touch(known);
      return known;
    }
    if (!allowRemote) throw notFound();
    const k = `${origin}/${mediaId}`;
    const failure = this.failed.get(k);
    if (failure && failure.until > this.deps.now()) throw failure.error;
    let pending = this.fetching.get(k);
    if (!pending) {
      pending = this.fetchRemote(origin, mediaId)
        .catch((err: unknown) => {
          const error = err instanceof MatrixError ? err : remoteFailed();
          if (!(err instanceof MatrixError)) this.deps.logger.warn({ err, origin, mediaId }, 'could not fetch remote media');
          this.rememberFailure(k, error);
          throw error;
        })
        .finally(() => this.fetching.delete(k));
      this.fetching.set(k, pending);
    }
    return pending;
  }

  private async fetchRemote(origin: string, mediaId: string): Promise<RemoteMediaRecord> {
    const limit = this.deps.maxBytes;
    const got = await this.deps.fetcher!.fetch(origin, mediaId, AbortSignal.timeout(REMOTE_FETCH_MS));
    if (!got) throw notFound();
    if (got.length !== undefined && got.length > limit) {
      got.cancel();
      throw remoteTooLarge(limit);
    }
    const generation = randomBytes(12).toString('base64url');
    const key = remoteKey(origin, mediaId, generation);
    let stored;
    try {
      stored = await this.deps.blobs.put(key, got.body, limit);
    } catch (err) {
      got.cancel();
      if (err instanceof BlobTooLargeError) throw remoteTooLarge(limit);
      throw err;
    }
    const type = got.contentType !== null && CONTENT_TYPE_RE.test(got.contentType) ? got.contentType : null;
    const name = got.filename !== null && got.filename.length <= 255 && !/[\u0000-\u001f\u007f/\\]/.test(got.filename) && got.filename !== '' ? got.filename : null;
    const now = this.deps.now();
    const kept = await this.deps.meta.putRemoteMedia({
      origin,
      mediaId,
      contentType: type,
      uploadName: name,
      size: stored.size,
      sha256: stored.sha256,
      fetchedTs: now,
      generation,
      lastAccessTs: now,
    });
    if (kept.generation !== generation) {
      // Another worker's fetch was recorded first: ours are bytes nobody will ever name.
      await this.deps.blobs.delete(key).catch((err: unknown) => this.deps.logger.warn({ err, key }, 'could not delete the bytes of a remote fetch that lost its race'));
    }
    return kept;
  }

  /** Notes a read of the record (in the background). */
  private touch(rec: RemoteMediaRecord): void {
    const now = this.deps.now();
    const k = `${rec.origin}/${rec.mediaId}`;
    if (now - rec.lastAccessTs < ACCESS_GRANULARITY_MS || this.touching.has(k)) return;
    this.touching.add(k);
    void this.deps.meta
      .touchRemoteMedia(rec.origin, rec.mediaId, now)
      .catch((err: unknown) => this.deps.logger.warn({ err, origin: rec.origin, mediaId: rec.mediaId }, 'could not note an access of remote media'))
      .finally(() => this.touching.delete(k));
  }

  private rememberFailure(k: string, error: MatrixError): void {
    const now = this.deps.now();
    if (this.failed.size >= 10_000) for (const [key, f] of this.failed) if (f.until <= now) this.failed.delete(key);
    if (this.failed.size < 10_000) this.failed.set(k, { until: now + REMOTE_FAILURE_MS, error });
  }
}

const notFound = (): MatrixError => new MatrixError('M_NOT_FOUND', 'Media not found');
const remoteFailed = (): MatrixError => new MatrixError('M_UNKNOWN', 'Failed to fetch remote media', {}, 502);
const remoteTooLarge = (limit: number): MatrixError => new MatrixError('M_TOO_LARGE', `Remote media is larger than the limit of ${limit} bytes`, {}, 502);
