// Media metadata (src/store/media-types.ts). Quota and pending-count checks run inside the
// write that would breach them, in the one write queue, so concurrent uploads are judged in
// commit order and never overshoot.

import { StoreConflictError } from '../types.js';
import type { CompleteUpload, DoomedRemoteMedia, MediaMetaStore, MediaRecord, RemoteMediaRecord, RemoteThumbnailRecord, ThumbnailRecord, UploadOutcome } from '../media-types.js';
import type { SqliteContext } from './context.js';

interface MediaRow {
  media_id: string;
  user_id: string;
  content_type: string | null;
  upload_name: string | null;
  size: number | null;
  sha256: string | null;
  created_ts: number;
  uploaded_ts: number | null;
  unused_expires_ts: number | null;
}

interface ThumbRow {
  media_id: string;
  req_width: number;
  req_height: number;
  method: 'crop' | 'scale';
  animated: number;
  width: number;
  height: number;
  content_type: string;
  size: number;
  created_ts: number;
}

const MEDIA_COLUMNS = 'media_id, user_id, content_type, upload_name, size, sha256, created_ts, uploaded_ts, unused_expires_ts';
const THUMB_COLUMNS = 'media_id, req_width, req_height, method, animated, width, height, content_type, size, created_ts';

interface RemoteRow {
  origin: string;
  media_id: string;
  content_type: string | null;
  upload_name: string | null;
  size: number;
  sha256: string;
  fetched_ts: number;
  generation: string;
  last_access_ts: number;
}

const REMOTE_COLUMNS = 'origin, media_id, content_type, upload_name, size, sha256, fetched_ts, generation, last_access_ts';

const toRemote = (r: RemoteRow): RemoteMediaRecord => ({
  origin: r.origin,
  mediaId: r.media_id,
  contentType: r.content_type,
  uploadName: r.upload_name,
  size: r.size,
  sha256: r.sha256,
  fetchedTs: r.fetched_ts,
  generation: r.generation,
  lastAccessTs: r.last_access_ts,
});

const toMedia = (r: MediaRow): MediaRecord => ({
  mediaId: r.media_id,
  userId: r.user_id,
  contentType: r.content_type,
  uploadName: r.upload_name,
  size: r.size,
  sha256: r.sha256,
  createdTs: r.created_ts,
  uploadedTs: r.uploaded_ts,
  unusedExpiresTs: r.unused_expires_ts,
});

const toThumb = (r: ThumbRow): ThumbnailRecord => ({
  mediaId: r.media_id,
  reqWidth: r.req_width,
  reqHeight: r.req_height,
  method: r.method,
  animated: r.animated === 1,
  width: r.width,
  height: r.height,
  contentType: r.content_type,
  size: r.size,
  createdTs: r.created_ts,
});

export class SqliteMediaStore implements MediaMetaStore {
  constructor(private readonly ctx: SqliteContext) {}

  private usageNow(userId: string): number {
    const row = this.ctx.stmt('SELECT COALESCE(SUM(size), 0) AS n FROM media WHERE user_id = ? AND uploaded_ts IS NOT NULL').get(userId) as { n: number };
    return row.n;
  }

  private exists(mediaId: string): boolean {
    return this.ctx.stmt('SELECT 1 FROM media WHERE media_id = ?').get(mediaId) !== undefined;
  }

  async insertMedia(record: MediaRecord & CompleteUpload, quotaBytes: number | null): Promise<'ok' | 'quota'> {
    this.ctx.checkOpen();
    const r = { ...record };
    return this.ctx.queue.write(() => {
      if (this.exists(r.mediaId)) throw new StoreConflictError(`media ID ${r.mediaId} is taken`);
      if (quotaBytes !== null && this.usageNow(r.userId) + r.size > quotaBytes) return 'quota';
      this.ctx
        .stmt(`INSERT INTO media (${MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`)
        .run(r.mediaId, r.userId, r.contentType, r.uploadName, r.size, r.sha256, r.createdTs, r.uploadedTs);
      return 'ok';
    });
  }

  async createPending(record: { mediaId: string; userId: string; createdTs: number; unusedExpiresTs: number }, maxPending: number, now: number): Promise<boolean> {
    this.ctx.checkOpen();
    const r = { ...record };
    return this.ctx.queue.write(() => {
      if (this.exists(r.mediaId)) throw new StoreConflictError(`media ID ${r.mediaId} is taken`);
      const { n } = this.ctx
        .stmt('SELECT COUNT(*) AS n FROM media WHERE user_id = ? AND uploaded_ts IS NULL AND unused_expires_ts > ?')
        .get(r.userId, now) as { n: number };
      if (n >= maxPending) return false;
      this.ctx
        .stmt(`INSERT INTO media (${MEDIA_COLUMNS}) VALUES (?, ?, NULL, NULL, NULL, NULL, ?, NULL, ?)`)
        .run(r.mediaId, r.userId, r.createdTs, r.unusedExpiresTs);
      return true;
    });
  }

  async completePending(mediaId: string, userId: string, upload: CompleteUpload, quotaBytes: number | null): Promise<UploadOutcome> {
    this.ctx.checkOpen();
    const u = { ...upload };
    return this.ctx.queue.write((): UploadOutcome => {
      const row = this.ctx.stmt(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`).get(mediaId) as MediaRow | undefined;
      if (!row) return 'not_found';
      if (row.user_id !== userId) return 'forbidden';
      if (row.uploaded_ts !== null) return 'exists';
      if (row.unused_expires_ts !== null && row.unused_expires_ts <= u.uploadedTs) return 'expired';
      if (quotaBytes !== null && this.usageNow(userId) + u.size > quotaBytes) return 'quota';
      this.ctx
        .stmt('UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?, uploaded_ts = ?, unused_expires_ts = NULL WHERE media_id = ?')
        .run(u.contentType, u.uploadName, u.size, u.sha256, u.uploadedTs, mediaId);
      return 'ok';
    });
  }

  async getMedia(mediaId: string): Promise<MediaRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`).get(mediaId) as MediaRow | undefined;
    return row ? toMedia(row) : null;
  }

  async usage(userId: string): Promise<number> {
    this.ctx.checkOpen();
    return this.usageNow(userId);
  }

  async listUserMedia(userId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt('SELECT media_id FROM media WHERE user_id = ? ORDER BY created_ts, media_id').all(userId) as { media_id: string }[];
    return rows.map((r) => r.media_id);
  }

  async listExpiredPending(now: number, limit: number): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT media_id FROM media WHERE uploaded_ts IS NULL AND unused_expires_ts <= ? ORDER BY unused_expires_ts LIMIT ?')
      .all(now, limit) as { media_id: string }[];
    return rows.map((r) => r.media_id);
  }

  async deleteMedia(mediaId: string): Promise<{ media: MediaRecord; thumbnails: ThumbnailRecord[] } | null> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      const row = this.ctx.stmt(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`).get(mediaId) as MediaRow | undefined;
      if (!row) return null;
      const thumbs = this.ctx.stmt(`SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ?`).all(mediaId) as ThumbRow[];
      this.ctx.stmt('DELETE FROM media_thumbnails WHERE media_id = ?').run(mediaId);
      this.ctx.stmt('DELETE FROM media WHERE media_id = ?').run(mediaId);
      return { media: toMedia(row), thumbnails: thumbs.map(toThumb) };
    });
  }

  async getThumbnail(mediaId: string, reqWidth: number, reqHeight: number, method: 'crop' | 'scale', animated: boolean): Promise<ThumbnailRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt(`SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ? AND req_width = ? AND req_height = ? AND method = ? AND animated = ?`)
      .get(mediaId, reqWidth, reqHeight, method, animated ? 1 : 0) as ThumbRow | undefined;
    return row ? toThumb(row) : null;
  }

  async putThumbnail(record: ThumbnailRecord, maxPerMedia: number): Promise<boolean> {
    this.ctx.checkOpen();
    const t = { ...record };
    return this.ctx.queue.write(() => {
      if (!this.exists(t.mediaId)) return false;
      const { n } = this.ctx.stmt('SELECT COUNT(*) AS n FROM media_thumbnails WHERE media_id = ?').get(t.mediaId) as { n: number };
      if (n >= maxPerMedia) return false;
      this.ctx
        .stmt(`INSERT INTO media_thumbnails (${THUMB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
        .run(t.mediaId, t.reqWidth, t.reqHeight, t.method, t.animated ? 1 : 0, t.width, t.height, t.contentType, t.size, t.createdTs);
      return true;
    });
  }

  async listThumbnails(mediaId: string): Promise<ThumbnailRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt(`SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ? ORDER BY req_width, req_height, method, animated`).all(mediaId) as ThumbRow[];
    return rows.map(toThumb);
  }

  async getRemoteMedia(origin: string, mediaId: string): Promise<RemoteMediaRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`).get(origin, mediaId) as RemoteRow | undefined;
    return row ? toRemote(row) : null;
  }

  async putRemoteMedia(record: RemoteMediaRecord): Promise<RemoteMediaRecord> {
    this.ctx.checkOpen();
    const r = { ...record };
    return this.ctx.queue.write(() => {
      this.ctx
        .stmt(`INSERT INTO remote_media (${REMOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
        .run(r.origin, r.mediaId, r.contentType, r.uploadName, r.size, r.sha256, r.fetchedTs, r.generation, r.lastAccessTs);
      return toRemote(this.ctx.stmt(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`).get(r.origin, r.mediaId) as RemoteRow);
    });
  }

  async getRemoteThumbnail(
    origin: string,
    mediaId: string,
    generation: string,
    reqWidth: number,
    reqHeight: number,
    method: 'crop' | 'scale',
    animated: boolean,
  ): Promise<RemoteThumbnailRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt(
        `SELECT ${THUMB_COLUMNS} FROM remote_media_thumbnails WHERE origin = ? AND media_id = ? AND req_width = ? AND req_height = ? AND method = ? AND animated = ? AND generation = ?`,
      )
      .get(origin, mediaId, reqWidth, reqHeight, method, animated ? 1 : 0, generation) as ThumbRow | undefined;
    return row ? { ...toThumb(row), origin, generation } : null;
  }

  async putRemoteThumbnail(record: RemoteThumbnailRecord, maxPerMedia: number): Promise<boolean> {
    this.ctx.checkOpen();
    const t = { ...record };
    return this.ctx.queue.write(() => {
      if (this.ctx.stmt('SELECT 1 FROM remote_media WHERE origin = ? AND media_id = ? AND generation = ?').get(t.origin, t.mediaId, t.generation) === undefined) return false;
      const { n } = this.ctx.stmt('SELECT COUNT(*) AS n FROM remote_media_thumbnails WHERE origin = ? AND media_id = ?').get(t.origin, t.mediaId) as { n: number };
      if (n >= maxPerMedia) return false;
      this.ctx
        .stmt(`INSERT INTO remote_media_thumbnails (origin, generation, ${THUMB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
        .run(t.origin, t.generation, t.mediaId, t.reqWidth, t.reqHeight, t.method, t.animated ? 1 : 0, t.width, t.height, t.contentType, t.size, t.createdTs);
      return true;
    });
  }

  async touchRemoteMedia(origin: string, mediaId: string, ts: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? AND last_access_ts < ?').run(ts, origin, mediaId, ts);
    });
  }

  async listRemoteMediaBefore(beforeTs: number, limit: number): Promise<RemoteMediaRecord[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    const rows = this.ctx.stmt(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE last_access_ts < ? ORDER BY last_access_ts LIMIT ?`).all(beforeTs, n) as RemoteRow[];
    return rows.map(toRemote);
  }

  async listRemoteMediaOverCap(capBytes: number, limit: number): Promise<RemoteMediaRecord[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    const { total } = this.ctx.stmt('SELECT COALESCE(SUM(size), 0) AS total FROM remote_media').get() as { total: number };
    let excess = total - capBytes;
    const out: RemoteMediaRecord[] = [];
    if (excess <= 0 || !(n > 0)) return out;
    for (const row of this.ctx.stmt(`SELECT ${REMOTE_COLUMNS} FROM remote_media ORDER BY last_access_ts`).iterate() as IterableIterator<RemoteRow>) {
      out.push(toRemote(row));
      excess -= row.size;
      if (excess <= 0 || out.length >= n) break;
    }
    return out;
  }

  async evictRemoteMedia(origin: string, mediaId: string, generation: string, dueTs: number): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      if (this.ctx.stmt('SELECT 1 FROM remote_media WHERE origin = ? AND media_id = ? AND generation = ?').get(origin, mediaId, generation) === undefined) return false;
      // The thumbnails' rows go with the record (ON DELETE CASCADE): the doomed row keeps what
      // their keys are made of.
      const thumbs = (this.ctx.stmt(`SELECT ${THUMB_COLUMNS} FROM remote_media_thumbnails WHERE origin = ? AND media_id = ?`).all(origin, mediaId) as ThumbRow[]).map(toThumb);
      this.ctx.stmt('DELETE FROM remote_media WHERE origin = ? AND media_id = ?').run(origin, mediaId);
      this.ctx
        .stmt(
          `INSERT INTO remote_media_doomed (origin, media_id, generation, due_ts, thumbnails) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET due_ts = MAX(due_ts, excluded.due_ts)`,
        )
        .run(origin, mediaId, generation, dueTs, JSON.stringify(thumbs));
      return true;
    });
  }

  async listDoomedRemoteMedia(now: number, limit: number): Promise<DoomedRemoteMedia[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    const rows = this.ctx
      .stmt('SELECT origin, media_id, generation, due_ts, thumbnails FROM remote_media_doomed WHERE due_ts <= ? ORDER BY due_ts LIMIT ?')
      .all(now, n) as { origin: string; media_id: string; generation: string; due_ts: number; thumbnails: string }[];
    return rows.map((r) => ({ origin: r.origin, mediaId: r.media_id, generation: r.generation, dueTs: r.due_ts, thumbnails: JSON.parse(r.thumbnails) as ThumbnailRecord[] }));
  }

  async forgetDoomedRemoteMedia(doomed: DoomedRemoteMedia): Promise<void> {
    this.ctx.checkOpen();
    const d = { ...doomed };
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM remote_media_doomed WHERE origin = ? AND media_id = ? AND generation = ?').run(d.origin, d.mediaId, d.generation);
    });
  }
}
