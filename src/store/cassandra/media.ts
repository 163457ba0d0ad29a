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
// - Remote media rows are written IF NOT EXISTS (the first record is kept, as on SQLite); their
//   thumbnails follow the same cap rule as local ones.
// - Eviction (migration 0023): remote_media and remote_media_thumbnails rows are written and
//   deleted by LWT only. A generation '' (media fetched before generations) is a null column.
//   evictRemoteMedia notes the doomed generation (remote_media_doomed, by the UTC day its grace
//   ends, one row per attempt) before the conditional delete of the record, so a crash between
//   leaves a note and never unreferenced bytes. An attempt whose delete did not apply removes
//   its own note; one left behind (a crash, an LWT timeout that did not commit) is harmless, as
//   listDoomedRemoteMedia leaves out any generation a serial read finds the record naming, and a
//   generation not named once is never named again (each fetch draws a fresh one).
// - Thumbnail rows of a doomed generation stay until it is forgotten (no cross-partition
//   transaction removes them with the record); a row of another generation keeps its size from
//   being cached again until then, and a row written just after the eviction by a thumbnailer
//   that checked the record before it is still found when the generation is due.
// - last_access_ts is null on rows from before 0023: the first sweep listing of this process
//   fills it from fetched_ts (a scan of remote_media, LWT per null row), so the SAI range sees
//   every row.

import { randomBytes } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { StoreConflictError } from '../types.js';
import type { CompleteUpload, DoomedRemoteMedia, MediaMetaStore, MediaRecord, RemoteMediaRecord, RemoteThumbnailRecord, ThumbnailRecord, UploadOutcome } from '../media-types.js';
import { applied, num, numOrNull, type CassandraContext } from './context.js';
import { SERIAL_READ } from './e2ee-common.js';
import { KeyedMutex } from './keyed-mutex.js';

const MEDIA_COLUMNS = 'media_id, user_id, content_type, upload_name, size, sha256, created_ts, uploaded_ts, unused_expires_ts';
const THUMB_COLUMNS = 'media_id, req_width, req_height, method, animated, width, height, content_type, size, created_ts';

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

function toThumb(r: cassandra.types.Row): ThumbnailRecord {
  return {
    mediaId: r['media_id'] as string,
    reqWidth: r['req_width'] as number,
    reqHeight: r['req_height'] as number,
    method: r['method'] as 'crop' | 'scale',
    animated: r['animated'] === true,
    width: r['width'] as number,
    height: r['height'] as number,
    contentType: r['content_type'] as string,
    size: num(r['size']),
    createdTs: num(r['created_ts']),
  };
}

const REMOTE_COLUMNS = 'origin, media_id, content_type, upload_name, size, sha256, fetched_ts, generation, last_access_ts';
const DAY_MS = 86_400_000;
/** remote_media_doomed rows live 14 days (migration 0023): the days a listing reads. */
const DOOMED_DAYS = 14;

function toRemote(r: cassandra.types.Row): RemoteMediaRecord {
  return {
    origin: r['origin'] as string,
    mediaId: r['media_id'] as string,
    contentType: (r['content_type'] as string | null) ?? null,
    uploadName: (r['upload_name'] as string | null) ?? null,
    size: num(r['size']),
    sha256: r['sha256'] as string,
    fetchedTs: num(r['fetched_ts']),
    generation: (r['generation'] as string | null) ?? '',
    lastAccessTs: numOrNull(r['last_access_ts']) ?? num(r['fetched_ts']),
  };
}

/** A condition on a remote media generation ('' is the null column of rows from before 0023). */
const genIf = (generation: string): { cql: string; params: unknown[] } =>
  generation === '' ? { cql: 'generation = null', params: [] } : { cql: 'generation = ?', params: [generation] };

/** Optional text: undefined (unset, no tombstone) for null. */
const opt = (s: string | null): string | undefined => (s === null ? undefined : s);

export class CassandraMediaStore implements MediaMetaStore {
  private readonly userLocks = new KeyedMutex();
  private readonly mediaLocks = new KeyedMutex();
  private accessBackfilled = false;

  constructor(private readonly ctx: CassandraContext) {}

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

  async getRemoteMedia(origin: string, mediaId: string): Promise<RemoteMediaRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`, [origin, mediaId])).first();
    return row === null ? null : toRemote(row);
  }

  async putRemoteMedia(record: RemoteMediaRecord): Promise<RemoteMediaRecord> {
    this.ctx.checkOpen();
    const r = { ...record };
    const rs = await this.ctx.execute(
      `INSERT INTO remote_media (${REMOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
      [r.origin, r.mediaId, opt(r.contentType), opt(r.uploadName), r.size, r.sha256, r.fetchedTs, r.generation === '' ? undefined : r.generation, r.lastAccessTs],
    );
    if (applied(rs)) return r;
    const row = (await this.ctx.execute(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`, [r.origin, r.mediaId], SERIAL_READ)).first();
    return row === null ? r : toRemote(row);
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
    const row = (
      await this.ctx.execute(
        `SELECT ${THUMB_COLUMNS}, generation FROM remote_media_thumbnails WHERE origin = ? AND media_id = ? AND req_width = ? AND req_height = ? AND method = ? AND animated = ?`,
        [origin, mediaId, reqWidth, reqHeight, method, animated],
      )
    ).first();
    if (row === null || ((row['generation'] as string | null) ?? '') !== generation) return null;
    return { ...toThumb(row), origin, generation };
  }

  async putRemoteThumbnail(record: RemoteThumbnailRecord, maxPerMedia: number): Promise<boolean> {
    this.ctx.checkOpen();
    const t = { ...record };
    return this.mediaLocks.run(`${t.origin}/${t.mediaId}`, async () => {
      const media = (await this.ctx.execute('SELECT generation FROM remote_media WHERE origin = ? AND media_id = ?', [t.origin, t.mediaId])).first();
      if (media === null || ((media['generation'] as string | null) ?? '') !== t.generation) return false;
      const existing = await this.ctx.all('SELECT req_width, req_height, method, animated, generation FROM remote_media_thumbnails WHERE origin = ? AND media_id = ?', [
        t.origin,
        t.mediaId,
      ]);
      const same = existing.find((r) => r['req_width'] === t.reqWidth && r['req_height'] === t.reqHeight && r['method'] === t.method && r['animated'] === t.animated);
      // A row of an evicted generation holds the size until that generation is forgotten.
      if (same) return ((same['generation'] as string | null) ?? '') === t.generation;
      if (existing.length >= maxPerMedia) return false;
      const rs = await this.ctx.execute(
        `INSERT INTO remote_media_thumbnails (origin, ${THUMB_COLUMNS}, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
        [t.origin, t.mediaId, t.reqWidth, t.reqHeight, t.method, t.animated, t.width, t.height, t.contentType, t.size, t.createdTs, t.generation === '' ? undefined : t.generation],
      );
      return applied(rs) || ((rs.first()?.['generation'] as string | null | undefined) ?? '') === t.generation;
    });
  }

  async touchRemoteMedia(origin: string, mediaId: string, ts: number): Promise<void> {
    this.ctx.checkOpen();
    // LWT (never an upsert): a touch racing an eviction must not bring back a partial row.
    const rs = await this.ctx.execute('UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? IF last_access_ts < ?', [ts, origin, mediaId, ts]);
    const row = rs.first();
    if (!applied(rs) && row && 'last_access_ts' in row && row['last_access_ts'] === null) {
      await this.ctx.execute('UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? IF last_access_ts = null', [ts, origin, mediaId]);
    }
  }

  async listRemoteMediaBefore(beforeTs: number, limit: number): Promise<RemoteMediaRecord[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    if (!this.accessBackfilled) {
      await this.backfillAccess();
      this.accessBackfilled = true;
    }
    const rows = await this.ctx.all(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE last_access_ts < ? LIMIT ?`, [beforeTs, n]);
    return rows.map(toRemote).sort((a, b) => a.lastAccessTs - b.lastAccessTs);
  }

  async listRemoteMediaOverCap(capBytes: number, limit: number): Promise<RemoteMediaRecord[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    // No index orders by last access or sums sizes: one scan, keeping the n oldest seen.
    let total = 0;
    let oldest: RemoteMediaRecord[] = [];
    const byAccess = (x: RemoteMediaRecord, y: RemoteMediaRecord) => x.lastAccessTs - y.lastAccessTs;
    let pageState: string | undefined;
    do {
      const page = await this.ctx.execute(`SELECT ${REMOTE_COLUMNS} FROM remote_media`, [], { fetchSize: 1000, pageState });
      for (const r of page.rows) {
        const rec = toRemote(r);
        total += rec.size;
        oldest.push(rec);
      }
      if (oldest.length > 2 * n) oldest = oldest.sort(byAccess).slice(0, n);
      pageState = page.pageState ?? undefined;
    } while (pageState);
    let excess = total - capBytes;
    const out: RemoteMediaRecord[] = [];
    for (const rec of oldest.sort(byAccess)) {
      if (excess <= 0 || out.length >= n) break;
      out.push(rec);
      excess -= rec.size;
    }
    return out;
  }

  /** Gives rows from before migration 0023 a last access (their fetch), once per process. */
  private async backfillAccess(): Promise<void> {
    let pageState: string | undefined;
    do {
      const page = await this.ctx.execute('SELECT origin, media_id, fetched_ts, last_access_ts FROM remote_media', [], { fetchSize: 500, pageState });
      for (const r of page.rows) {
        if (r['last_access_ts'] !== null) continue;
        await this.ctx.execute('UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? IF last_access_ts = null', [num(r['fetched_ts']), r['origin'], r['media_id']]);
      }
      pageState = page.pageState ?? undefined;
    } while (pageState);
  }

  async evictRemoteMedia(origin: string, mediaId: string, generation: string, dueTs: number): Promise<boolean> {
    this.ctx.checkOpen();
    const note = [Math.floor(dueTs / DAY_MS), origin, mediaId, generation, randomBytes(8).toString('hex')];
    // The note first: once the record is gone, only the note leads to the bytes.
    await this.ctx.execute('INSERT INTO remote_media_doomed (day, origin, media_id, generation, note, due_ts) VALUES (?, ?, ?, ?, ?, ?)', [...note, dueTs]);
    const g = genIf(generation);
    const rs = await this.ctx.execute(`DELETE FROM remote_media WHERE origin = ? AND media_id = ? IF ${g.cql}`, [origin, mediaId, ...g.params]);
    if (applied(rs)) return true;
    await this.ctx.execute('DELETE FROM remote_media_doomed WHERE day = ? AND origin = ? AND media_id = ? AND generation = ? AND note = ?', note);
    return false;
  }

  async listDoomedRemoteMedia(now: number, limit: number): Promise<DoomedRemoteMedia[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    const out: DoomedRemoteMedia[] = [];
    if (!(n > 0)) return out;
    const seen = new Set<string>();
    const today = Math.floor(now / DAY_MS);
    for (let day = today - DOOMED_DAYS; day <= today && out.length < n; day++) {
      for (const r of await this.ctx.all('SELECT origin, media_id, generation, due_ts FROM remote_media_doomed WHERE day = ?', [day])) {
        if (out.length >= n) break;
        const d = { origin: r['origin'] as string, mediaId: r['media_id'] as string, generation: r['generation'] as string, dueTs: num(r['due_ts']) };
        const k = JSON.stringify([day, d.origin, d.mediaId, d.generation]);
        if (d.dueTs > now || seen.has(k)) continue;
        seen.add(k);
        // A note left by an attempt that did not apply (a crash, an LWT timeout that did not
        // commit): the record still names the generation, so it is not doomed.
        const rec = (await this.ctx.execute('SELECT generation FROM remote_media WHERE origin = ? AND media_id = ?', [d.origin, d.mediaId], SERIAL_READ)).first();
        if (rec !== null && ((rec['generation'] as string | null) ?? '') === d.generation) continue;
        const thumbs = await this.ctx.all(`SELECT ${THUMB_COLUMNS}, generation FROM remote_media_thumbnails WHERE origin = ? AND media_id = ?`, [d.origin, d.mediaId]);
        out.push({ ...d, thumbnails: thumbs.filter((t) => ((t['generation'] as string | null) ?? '') === d.generation).map(toThumb) });
      }
    }
    return out;
  }

  async forgetDoomedRemoteMedia(doomed: DoomedRemoteMedia): Promise<void> {
    this.ctx.checkOpen();
    const d = { ...doomed, thumbnails: [...doomed.thumbnails] };
    const g = genIf(d.generation);
    for (const t of d.thumbnails) {
      await this.ctx.execute(
        `DELETE FROM remote_media_thumbnails WHERE origin = ? AND media_id = ? AND req_width = ? AND req_height = ? AND method = ? AND animated = ? IF ${g.cql}`,
        [d.origin, d.mediaId, t.reqWidth, t.reqHeight, t.method, t.animated, ...g.params],
      );
    }
    // Every note of the generation that day (a prefix of the clustering key).
    await this.ctx.execute('DELETE FROM remote_media_doomed WHERE day = ? AND origin = ? AND media_id = ? AND generation = ?', [
      Math.floor(d.dueTs / DAY_MS),
      d.origin,
      d.mediaId,
      d.generation,
    ]);
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
