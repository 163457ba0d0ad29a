// Storage contract for the media repository's metadata: which media IDs exist, who uploaded them,
// their type, name and size, and the thumbnails made of them. The bytes themselves live in a
// MediaStore (src/media/media-store.ts) under keys derived from the media ID; this store never
// sees them. Same rules as src/store/types.ts (async, concurrent-safe, writes resolve after
// commit). Nothing here takes a stream position: media is not part of /sync.
//
// Invariants:
// - A media ID is created once, either complete (a direct upload) or pending (POST /create);
//   a pending ID becomes complete at most once (M_CANNOT_OVERWRITE_MEDIA after that).
// - A user's usage is the sum of the sizes of their complete media; the quota check and the
//   insert that would exceed it happen in one write, so concurrent uploads cannot overshoot.
// - Remote media (fetched from other servers over federation) is keyed by origin + media ID and
//   recorded only after its bytes are stored; the first record of a key is kept (two workers
//   fetching the same media store the same bytes under one write-once key). Remote thumbnails
//   are recorded only while their media's record exists, up to a cap per media.
// - Remote media can be evicted (src/media/remote-eviction.ts). Every fetch stores its bytes
//   under a fresh `generation` (part of the blob keys), so an evicted generation's bytes are
//   never the bytes of a later record. Evicting removes the record only if it still names the
//   generation, and notes the generation as doomed with a due time; its bytes (and its
//   thumbnails') are deleted only once due, so a reader that found the record just before the
//   eviction still reads whole bytes. A generation a record names is never listed as doomed.

export interface MediaRecord {
  mediaId: string;
  /** The uploader (for /create: the creator, who alone may upload to it). */
  userId: string;
  /** As the uploader sent it (Content-Type), or null when none was given. */
  contentType: string | null;
  /** The `filename` query parameter of the upload, or null. */
  uploadName: string | null;
  /** Bytes; null while pending. */
  size: number | null;
  /** Hex SHA-256 of the bytes; null while pending. */
  sha256: string | null;
  createdTs: number;
  /** Null while pending (created, not yet uploaded). */
  uploadedTs: number | null;
  /** Pending IDs expire at this time if nothing was uploaded; null once complete. */
  unusedExpiresTs: number | null;
}

export interface ThumbnailRecord {
  mediaId: string;
  /** What was asked for: the cache key, with method and animated. */
  reqWidth: number;
  reqHeight: number;
  method: 'crop' | 'scale';
  animated: boolean;
  /** What was made. */
  width: number;
  height: number;
  contentType: string;
  size: number;
  createdTs: number;
}

/** Media of another server, kept here after a federation fetch. */
export interface RemoteMediaRecord {
  origin: string;
  mediaId: string;
  /** As the origin sent it (before our sanitising), or null. */
  contentType: string | null;
  uploadName: string | null;
  size: number;
  sha256: string;
  fetchedTs: number;
  /**
   * Random per fetch, part of the bytes' keys; '' for media fetched before generations existed
   * (their keys have none).
   */
  generation: string;
  /** The last download or thumbnail of it (kept to a minute or so), for eviction by age. */
  lastAccessTs: number;
}

/** A thumbnail made here of remote media, of one generation of its bytes. */
export type RemoteThumbnailRecord = ThumbnailRecord & { origin: string; generation: string };

/** An evicted generation of remote media whose bytes are to be deleted once `dueTs` passed. */
export interface DoomedRemoteMedia {
  origin: string;
  mediaId: string;
  generation: string;
  dueTs: number;
  /** The thumbnails made of that generation (their bytes go too). */
  thumbnails: ThumbnailRecord[];
}

export interface CompleteUpload {
  contentType: string | null;
  uploadName: string | null;
  size: number;
  sha256: string;
  uploadedTs: number;
}

export type UploadOutcome = 'ok' | 'quota' | 'not_found' | 'forbidden' | 'exists' | 'expired';

export interface MediaMetaStore {
  /**
   * Inserts a complete upload unless it would take the user's usage past `quotaBytes` (null: no
   * quota): 'quota' then, and nothing is written. Throws StoreConflictError for a taken ID.
   */
  insertMedia(record: MediaRecord & CompleteUpload, quotaBytes: number | null): Promise<'ok' | 'quota'>;
  /**
   * Inserts a pending ID (POST /create) unless the user already holds `maxPending` pending IDs
   * not expired at `now`: false then. Throws StoreConflictError for a taken ID.
   */
  createPending(record: { mediaId: string; userId: string; createdTs: number; unusedExpiresTs: number }, maxPending: number, now: number): Promise<boolean>;
  /**
   * Completes a pending ID: 'not_found' (no such ID), 'forbidden' (created by another user),
   * 'exists' (already uploaded), 'expired' (its unused expiry passed at `upload.uploadedTs`),
   * 'quota' as insertMedia; 'ok' otherwise.
   */
  completePending(mediaId: string, userId: string, upload: CompleteUpload, quotaBytes: number | null): Promise<UploadOutcome>;
  getMedia(mediaId: string): Promise<MediaRecord | null>;
  /** Sum of the sizes of the user's complete media. */
  usage(userId: string): Promise<number>;
  /** The user's media IDs, complete and pending, oldest first. */
  listUserMedia(userId: string): Promise<string[]>;
  /** Pending IDs whose unused expiry is at or before `now`. */
  listExpiredPending(now: number, limit: number): Promise<string[]>;
  /** Removes the record and its thumbnails' records; returns the thumbnails that were there. */
  deleteMedia(mediaId: string): Promise<{ media: MediaRecord; thumbnails: ThumbnailRecord[] } | null>;
  getThumbnail(mediaId: string, reqWidth: number, reqHeight: number, method: 'crop' | 'scale', animated: boolean): Promise<ThumbnailRecord | null>;
  /** Records a thumbnail unless the media has `maxPerMedia` already, or is gone: false then. */
  putThumbnail(record: ThumbnailRecord, maxPerMedia: number): Promise<boolean>;
  listThumbnails(mediaId: string): Promise<ThumbnailRecord[]>;
  getRemoteMedia(origin: string, mediaId: string): Promise<RemoteMediaRecord | null>;
  /** Records fetched remote media; a record already there is kept. Returns the record stored. */
  putRemoteMedia(record: RemoteMediaRecord): Promise<RemoteMediaRecord>;
  /** A thumbnail of the given generation of remote media (one of another generation: null). */
  getRemoteThumbnail(
    origin: string,
    mediaId: string,
    generation: string,
    reqWidth: number,
    reqHeight: number,
    method: 'crop' | 'scale',
    animated: boolean,
  ): Promise<RemoteThumbnailRecord | null>;
  /**
   * As putThumbnail, for remote media: false unless the media's record names the thumbnail's
   * generation, at the cap, or while a thumbnail of another generation still holds that size.
   */
  putRemoteThumbnail(record: RemoteThumbnailRecord, maxPerMedia: number): Promise<boolean>;
  /** Moves the record's last access to `ts` (never back); nothing when there is no record. */
  touchRemoteMedia(origin: string, mediaId: string, ts: number): Promise<void>;
  /** Up to `limit` records last accessed before `beforeTs` (any order). */
  listRemoteMediaBefore(beforeTs: number, limit: number): Promise<RemoteMediaRecord[]>;
  /**
   * The least recently accessed records whose eviction brings the remote media kept (the sum of
   * their sizes; thumbnails not counted) down to at most `capBytes`, oldest first, at most `limit`
   * of them; none when within the cap.
   */
  listRemoteMediaOverCap(capBytes: number, limit: number): Promise<RemoteMediaRecord[]>;
  /**
   * Removes the record if it names `generation` and dooms that generation for `dueTs`: true then.
   * False (nothing changed) when the record is gone or names another generation.
   */
  evictRemoteMedia(origin: string, mediaId: string, generation: string, dueTs: number): Promise<boolean>;
  /** Up to `limit` doomed generations due at or before `now` (any order). */
  listDoomedRemoteMedia(now: number, limit: number): Promise<DoomedRemoteMedia[]>;
  /** Forgets a doomed generation (after its bytes were deleted), thumbnails' records included. */
  forgetDoomedRemoteMedia(doomed: DoomedRemoteMedia): Promise<void>;
}
