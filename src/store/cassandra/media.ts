// Media metadata on Cassandra (src/store/media-types.ts). Same results and errors as
// ../sqlite/media.ts.
//
// Invariants and why:
// - A media row is written only by LWT: created once (IF NOT EXISTS: a taken ID is a
//   StoreConflictError on every instance), completed once (IF uploaded_ts = -1), deleted
//   IF EXISTS. No nulls are bound: uploaded_ts is -1 while pending, unused_expires_ts -1 once
//   complete, absent content type / upload name / size / sha256 read as null.
// - Quota and the pending limit are judged on one LWT-guarded row per user (media_users: byte
//   usage, pending IDs with their expiry, and a revision every change bumps). The reservation is
//   made first (CAS on the revision), then the media row; if the media row cannot be written
//   (taken ID, already completed), the reservation is handed back. Concurrent uploads on any
//   number of instances therefore never overshoot the quota; a crash between the two steps can
//   leave usage reserved for an upload that never landed (too strict, never too lenient).
// - Writes of one user run one at a time on this instance (local mutex), so only instances race
//   in those CAS loops.
// - media_by_user (plain rows) lists a user's media oldest first; listExpiredPending is a
//   global range query served by an SAI index on unused_expires_ts.
// - The thumbnail cap is checked against the thumbnails present when the thumbnail is written
//   (one writer per media ID on this instance); two instances thumbnailing the same media at once
//   may exceed it by one.
// - Remote media: ./remote-media.ts (its own invariants).

import type cassandra from 'cassandra-driver';
import { StoreConflictError } from '../types.js';
import type { CompleteUpload, DoomedRemoteMedia, MediaMetaStore, MediaRecord, RemoteMediaRecord, RemoteThumbnailRecord, ThumbnailRecord, UploadOutcome } from '../media-types.js';
import { applied, num, numOrNull, type CassandraContext } from './context.js';
import { SERIAL_READ } from './e2ee-common.js';
import { KeyedChain } from '../../keyed-chain.js';
import { opt, THUMB_COLUMNS, toThumb } from './media-rows.js';
import { CassandraRemoteMedia } from './remote-media.js';

const MEDIA_COLUMNS = 'media_id, user_id, content_type, upload_name, size, sha256, created_ts, uploaded_ts, unused_expires_ts';

interface UserState {
  exists: boolean;
  rev: number;
  bytes: number;
  pending: Map<string, number>;
}

function toMedia(r: cassandra.types.Row): MediaRecord {
  const uploaded = num(r['uploaded_ts']);
  const expires = num(r['unused_expires_ts']);
  return {
    mediaId: r['media_id'] as string,
    userId: r['user_id'] as string,
    contentType: (r['content_type'] as string | null) ?? null,
    uploadName: (r['upload_name'] as string | null) ?? null,
    size: numOrNull(r['size']),
    sha256: (r['sha256'] as string | null) ?? null,
    createdTs: num(r['created_ts']),
    uploadedTs: uploaded < 0 ? null : uploaded,
    unusedExpiresTs: expires < 0 ? null : expires,
  };
}

export class CassandraMediaStore implements MediaMetaStore {
  private readonly userLocks = new KeyedChain();
  private readonly mediaLocks = new KeyedChain();
  private readonly remote: CassandraRemoteMedia;

  constructor(private readonly ctx: CassandraContext) {
    this.remote = new CassandraRemoteMedia(ctx);
  }

  async insertMedia(record: MediaRecord & CompleteUpload, quotaBytes: number | null): Promise<'ok' | 'quota'> {
    this.ctx.checkOpen();
    const r = { ...record };
    return this.userLocks.run(r.userId, async () => {
      // A taken ID is a conflict before any quota question, as on SQLite (the LWT below is
      // what makes it exact; this only orders the answers).
      await this.assertFree(r.mediaId);
      if (!(await this.reserve(r.userId, (s) => (quotaBytes !== null && s.bytes + r.size > quotaBytes ? null : { bytes: s.bytes + r.size })))) {
        return 'quota';
      }
      const rs = await this.ctx.execute(
        `INSERT INTO media (${MEDIA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
        [r.mediaId, r.userId, opt(r.contentType), opt(r.uploadName), r.size, r.sha256, r.createdTs, r.uploadedTs, -1],
      );
      if (!applied(rs)) {
        await this.reserve(r.userId, (s) => ({ bytes: Math.max(0, s.bytes - r.size) }));
        throw new StoreConflictError(`media ID ${r.mediaId} is taken`);
      }
      await this.ctx.execute('INSERT INTO media_by_user (user_id, created_ts, media_id) VALUES (?, ?, ?)', [r.userId, r.createdTs, r.mediaId]);
      return 'ok';
    });
  }

  async createPending(record: { mediaId: string; userId: string; createdTs: number; unusedExpiresTs: number }, maxPending: number, now: number): Promise<boolean> {
    this.ctx.checkOpen();
    const r = { ...record };
    return this.userLocks.run(r.userId, async () => {
      await this.assertFree(r.mediaId);
      const ok = await this.reserve(r.userId, (s) => {
        let live = 0;
        for (const exp of s.pending.values()) if (exp > now) live++;
        return live >= maxPending ? null : { addPending: [r.mediaId, r.unusedExpiresTs] };
      });
      if (!ok) return false;
      const rs = await this.ctx.execute(
        `INSERT INTO media (media_id, user_id, created_ts, uploaded_ts, unused_expires_ts) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
        [r.mediaId, r.userId, r.createdTs, -1, r.unusedExpiresTs],
      );
      if (!applied(rs)) {
        await this.reserve(r.userId, () => ({ removePending: r.mediaId }));
        throw new StoreConflictError(`media ID ${r.mediaId} is taken`);
      }
      await this.ctx.execute('INSERT INTO media_by_user (user_id, created_ts, media_id) VALUES (?, ?, ?)', [r.userId, r.createdTs, r.mediaId]);
      return true;
    });
  }

  async completePending(mediaId: string, userId: string, upload: CompleteUpload, quotaBytes: number | null): Promise<UploadOutcome> {
    this.ctx.checkOpen();
    const u = { ...upload };
    return this.userLocks.run(userId, async (): Promise<UploadOutcome> => {
      const row = (await this.ctx.execute(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`, [mediaId], SERIAL_READ)).first();
      if (row === null) return 'not_found';
      const m = toMedia(row);
      if (m.userId !== userId) return 'forbidden';
      if (m.uploadedTs !== null) return 'exists';
      if (m.unusedExpiresTs !== null && m.unusedExpiresTs <= u.uploadedTs) return 'expired';
      const ok = await this.reserve(userId, (s) =>
        quotaBytes !== null && s.bytes + u.size > quotaBytes ? null : { bytes: s.bytes + u.size, removePending: mediaId },
      );
      if (!ok) return 'quota';
      const rs = await this.ctx.execute(
        `UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?, uploaded_ts = ?, unused_expires_ts = ?
         WHERE media_id = ? IF uploaded_ts = ?`,
        [opt(u.contentType), opt(u.uploadName), u.size, u.sha256, u.uploadedTs, -1, mediaId, -1],
      );
      if (applied(rs)) return 'ok';
      // Completed (or deleted) by another instance since the read: hand the bytes back.
      await this.reserve(userId, (s) => ({ bytes: Math.max(0, s.bytes - u.size) }));
      return rs.first()?.['uploaded_ts'] === undefined || rs.first()?.['uploaded_ts'] === null ? 'not_found' : 'exists';
    });
  }

  async getMedia(mediaId: string): Promise<MediaRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`, [mediaId])).first();
    return row === null ? null : toMedia(row);
  }

  async usage(userId: string): Promise<number> {
    this.ctx.checkOpen();
    return (await this.userState(userId, false)).bytes;
  }

  async listUserMedia(userId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT media_id FROM media_by_user WHERE user_id = ?', [userId]);
    return rows.map((r) => r['media_id'] as string);
  }

  async listExpiredPending(now: number, limit: number): Promise<string[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    // The index answers in token order, not by expiry: any `n` expired IDs are a correct answer
    // (the sweep comes back for the rest); sorted so the result reads like SQLite's.
    const rows = await this.ctx.all('SELECT media_id, unused_expires_ts FROM media WHERE unused_expires_ts > ? AND unused_expires_ts <= ? LIMIT ?', [-1, now, n]);
    return rows
      .map((r) => ({ id: r['media_id'] as string, exp: num(r['unused_expires_ts']) }))
      .sort((a, b) => a.exp - b.exp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((r) => r.id);
  }

  async deleteMedia(mediaId: string): Promise<{ media: MediaRecord; thumbnails: ThumbnailRecord[] } | null> {
    this.ctx.checkOpen();
    const owner = (await this.ctx.execute('SELECT user_id FROM media WHERE media_id = ?', [mediaId])).first();
    if (owner === null) return null;
    return this.userLocks.run(owner['user_id'] as string, () =>
      this.mediaLocks.run(mediaId, async () => {
        // Re-read under the owner's lock: a completion just before changes what is handed back.
        const row = (await this.ctx.execute(`SELECT ${MEDIA_COLUMNS} FROM media WHERE media_id = ?`, [mediaId], SERIAL_READ)).first();
        if (row === null) return null;
        const media = toMedia(row);
        const rs = await this.ctx.execute('DELETE FROM media WHERE media_id = ? IF EXISTS', [mediaId]);
        if (!applied(rs)) return null;
        const thumbs = (await this.ctx.all(`SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ?`, [mediaId])).map(toThumb);
        await this.ctx.batch([
          { query: 'DELETE FROM media_thumbnails WHERE media_id = ?', params: [mediaId] },
          { query: 'DELETE FROM media_by_user WHERE user_id = ? AND created_ts = ? AND media_id = ?', params: [media.userId, media.createdTs, mediaId] },
        ]);
        const size = media.uploadedTs !== null ? (media.size ?? 0) : 0;
        await this.reserve(media.userId, (s) => ({ bytes: Math.max(0, s.bytes - size), removePending: mediaId }));
        return { media, thumbnails: thumbs };
      }),
    );
  }

  async getThumbnail(mediaId: string, reqWidth: number, reqHeight: number, method: 'crop' | 'scale', animated: boolean): Promise<ThumbnailRecord | null> {
    this.ctx.checkOpen();
    const row = (
      await this.ctx.execute(
        `SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ? AND req_width = ? AND req_height = ? AND method = ? AND animated = ?`,
        [mediaId, reqWidth, reqHeight, method, animated],
      )
    ).first();
    return row === null ? null : toThumb(row);
  }

  async putThumbnail(record: ThumbnailRecord, maxPerMedia: number): Promise<boolean> {
    this.ctx.checkOpen();
    const t = { ...record };
    return this.mediaLocks.run(t.mediaId, async () => {
      if ((await this.ctx.execute('SELECT media_id FROM media WHERE media_id = ?', [t.mediaId])).first() === null) return false;
      const existing = await this.ctx.all('SELECT req_width, req_height, method, animated FROM media_thumbnails WHERE media_id = ?', [t.mediaId]);
      const same = existing.some(
        (r) => r['req_width'] === t.reqWidth && r['req_height'] === t.reqHeight && r['method'] === t.method && r['animated'] === t.animated,
      );
      if (same) return true; // first one kept, as SQLite's ON CONFLICT DO NOTHING
      if (existing.length >= maxPerMedia) return false;
      await this.ctx.execute(
        `INSERT INTO media_thumbnails (${THUMB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [t.mediaId, t.reqWidth, t.reqHeight, t.method, t.animated, t.width, t.height, t.contentType, t.size, t.createdTs],
      );
      return true;
    });
  }

  async listThumbnails(mediaId: string): Promise<ThumbnailRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all(`SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE media_id = ?`, [mediaId]);
    return rows.map(toThumb);
  }

  // ---- remote media (./remote-media.ts) ------------------------------------------------------

  getRemoteMedia(origin: string, mediaId: string): Promise<RemoteMediaRecord | null> {
    return this.remote.getRemoteMedia(origin, mediaId);
  }

  putRemoteMedia(record: RemoteMediaRecord): Promise<RemoteMediaRecord> {
    return this.remote.putRemoteMedia(record);
  }

  getRemoteThumbnail(origin: string, mediaId: string, generation: string, reqWidth: number, reqHeight: number, method: 'crop' | 'scale', animated: boolean): Promise<RemoteThumbnailRecord | null> {
    return this.remote.getRemoteThumbnail(origin, mediaId, generation, reqWidth, reqHeight, method, animated);
  }

  putRemoteThumbnail(record: RemoteThumbnailRecord, maxPerMedia: number): Promise<boolean> {
    return this.remote.putRemoteThumbnail(record, maxPerMedia);
  }

  touchRemoteMedia(origin: string, mediaId: string, ts: number): Promise<void> {
    return this.remote.touchRemoteMedia(origin, mediaId, ts);
  }

  listRemoteMediaBefore(beforeTs: number, limit: number): Promise<RemoteMediaRecord[]> {
    return this.remote.listRemoteMediaBefore(beforeTs, limit);
  }

  listRemoteMediaOverCap(capBytes: number, limit: number): Promise<RemoteMediaRecord[]> {
    return this.remote.listRemoteMediaOverCap(capBytes, limit);
  }

  evictRemoteMedia(origin: string, mediaId: string, generation: string, dueTs: number): Promise<boolean> {
    return this.remote.evictRemoteMedia(origin, mediaId, generation, dueTs);
  }

  listDoomedRemoteMedia(now: number, limit: number): Promise<DoomedRemoteMedia[]> {
    return this.remote.listDoomedRemoteMedia(now, limit);
  }

  forgetDoomedRemoteMedia(doomed: DoomedRemoteMedia): Promise<void> {
    return this.remote.forgetDoomedRemoteMedia(doomed);
  }

  private async assertFree(mediaId: string): Promise<void> {
    const row = (await this.ctx.execute('SELECT media_id FROM media WHERE media_id = ?', [mediaId])).first();
    if (row !== null) throw new StoreConflictError(`media ID ${mediaId} is taken`);
  }

  // ---- the per-user quota row --------------------------------------------------------------

  private async userState(userId: string, serial: boolean): Promise<UserState> {
    const row = (await this.ctx.execute('SELECT rev, bytes, pending FROM media_users WHERE user_id = ?', [userId], serial ? SERIAL_READ : undefined)).first();
    if (row === null) return { exists: false, rev: 0, bytes: 0, pending: new Map() };
    const pending = new Map<string, number>();
    const map = (row['pending'] ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(map)) pending.set(k, num(v));
    return { exists: true, rev: num(row['rev']), bytes: num(row['bytes']), pending };
  }

  /**
   * Applies `decide(state)` to the user's row by CAS on its revision, retrying when another
   * instance got there first. `decide` returns null to refuse (nothing written): false then.
   */
  private async reserve(
    userId: string,
    decide: (s: UserState) => { bytes?: number; addPending?: [string, number]; removePending?: string } | null,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const s = await this.userState(userId, true);
      const d = decide(s);
      if (d === null) return false;
      const bytes = d.bytes ?? s.bytes;
      let rs: cassandra.types.ResultSet;
      if (!s.exists) {
        // An INSERT of a map also writes a tombstone for its old contents: leave it unset when empty.
        const pending = d.addPending ? { [d.addPending[0]]: d.addPending[1] } : undefined;
        rs = await this.ctx.execute('INSERT INTO media_users (user_id, rev, bytes, pending) VALUES (?, ?, ?, ?) IF NOT EXISTS', [userId, 1, bytes, pending]);
      } else {
        const sets = ['rev = ?', 'bytes = ?'];
        const params: unknown[] = [s.rev + 1, bytes];
        if (d.addPending) {
          sets.push('pending[?] = ?');
          params.push(d.addPending[0], d.addPending[1]);
        }
        if (d.removePending !== undefined && s.pending.has(d.removePending)) {
          sets.push('pending = pending - ?');
          params.push([d.removePending]);
        }
        rs = await this.ctx.execute(`UPDATE media_users SET ${sets.join(', ')} WHERE user_id = ? IF rev = ?`, [...params, userId, s.rev]);
      }
      if (applied(rs)) return true;
    }
    throw new Error('media quota row kept racing other instances');
  }
}
