// Media of other servers for the media service (media-service.ts): kept in the MediaStore every
// worker shares (under remote/<origin>/<id>), fetched through the RemoteMedia seam (federation:
// src/federation/media-fetch.ts) when a client first asks.
//
// Invariants:
// - Bytes are stored before the remote record (origin + id) commits, and only the record makes
//   them visible; a fetch is limited to media.max_upload_bytes while streaming (over it, or cut
//   off: the MediaStore's put stores nothing), and refused at once when the origin announces more.
// - Concurrent requests for one item share one fetch in this process; across workers the
//   write-once MediaStore key and the store's first-record-kept rule make racing fetches agree.
// - A failed fetch is remembered for REMOTE_FAILURE_MS (at most 10 000 entries), so clients
//   retrying a dead or hostile origin do not make us ask it again each time.
// - The origin's Content-Type and file name are kept only when they pass the rules an upload's
//   pass; the response headers (headers.ts) then decide inline or attachment as for local media.

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

/** Keys of remote media: the origin base64url-encoded, as server names hold ':' and '[]'. */
export const remoteKey = (origin: string, mediaId: string): string => `remote/${Buffer.from(origin).toString('base64url')}/${mediaId}`;

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
/** What an upload's Content-Type may be (the upload routes check the same). */
const CONTENT_TYPE_RE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/;

export class RemoteMediaCache {
  private readonly fetching = new Map<string, Promise<RemoteMediaRecord>>();
  private readonly failed = new Map<string, { until: number; error: MatrixError }>();

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
    if (known) return known;
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
    let stored;
    try {
      stored = await this.deps.blobs.put(remoteKey(origin, mediaId), got.body, limit);
    } catch (err) {
      got.cancel();
      if (err instanceof BlobTooLargeError) throw remoteTooLarge(limit);
      throw err;
    }
    const type = got.contentType !== null && CONTENT_TYPE_RE.test(got.contentType) ? got.contentType : null;
    const name = got.filename !== null && got.filename.length <= 255 && !/[\u0000-\u001f\u007f/\\]/.test(got.filename) && got.filename !== '' ? got.filename : null;
    return this.deps.meta.putRemoteMedia({ origin, mediaId, contentType: type, uploadName: name, size: stored.size, sha256: stored.sha256, fetchedTs: this.deps.now() });
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
