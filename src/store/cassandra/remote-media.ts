// Remote media metadata on Cassandra (MediaMetaStore's remote part, src/store/media-types.ts),
// for CassandraMediaStore (./media.ts), which delegates here. Same results as ../sqlite/media.ts.
//
// Invariants and why:
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
//   every row. No conditional write here holds for a missing row (UNTOUCHED_ROW), so none
//   brings back a row an eviction removed.

import { randomBytes } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import type { DoomedRemoteMedia, RemoteMediaRecord, RemoteThumbnailRecord } from '../media-types.js';
import { applied, num, numOrNull, type CassandraContext } from './context.js';
import { SERIAL_READ } from './e2ee-common.js';
import { KeyedChain } from '../../keyed-chain.js';
import { opt, THUMB_COLUMNS, toThumb } from './media-rows.js';

const REMOTE_COLUMNS = 'origin, media_id, content_type, upload_name, size, sha256, fetched_ts, generation, last_access_ts';
const DAY_MS = 86_400_000;
/** Attempts of putRemoteMedia to either record or read the record (see there). */
const PUT_ROUNDS = 5;
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

/**
 * The condition of filling a row's missing last access. `last_access_ts = null` alone also
 * holds for a row that does not exist (Cassandra reads its columns as null), and the UPDATE would
 * then write a row of just the last access: a record without size, hash or bytes, served as 404
 * and never fetched again, if an eviction removed the row since it was read. sha256 is set on
 * every real row.
 */
const UNTOUCHED_ROW = 'last_access_ts = null AND sha256 != null';

/** A condition on a remote media generation ('' is the null column of rows from before 0023). */
const genIf = (generation: string): { cql: string; params: unknown[] } =>
  generation === '' ? { cql: 'generation = null', params: [] } : { cql: 'generation = ?', params: [generation] };

export class CassandraRemoteMedia {
  private readonly mediaLocks = new KeyedChain();
  private accessBackfilled = false;

  constructor(private readonly ctx: CassandraContext) {}

  async getRemoteMedia(origin: string, mediaId: string): Promise<RemoteMediaRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`, [origin, mediaId])).first();
    return row === null ? null : toRemote(row);
  }

  async putRemoteMedia(record: RemoteMediaRecord): Promise<RemoteMediaRecord> {
    this.ctx.checkOpen();
    const r = { ...record };
    // The record kept is ours or the one in the way. One in the way that is gone by the time it
    // is read (evicted meanwhile) is no answer: returning ours then would hand the caller a
    // record that was never stored (its bytes named by nothing), so ours is tried again. Each
    // round needs another worker to record the item and evict it in between: a few suffice.
    for (let round = 0; round < PUT_ROUNDS; round++) {
      const rs = await this.ctx.execute(
        `INSERT INTO remote_media (${REMOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
        [r.origin, r.mediaId, opt(r.contentType), opt(r.uploadName), r.size, r.sha256, r.fetchedTs, r.generation === '' ? undefined : r.generation, r.lastAccessTs],
      );
      if (applied(rs)) return r;
      const row = (await this.ctx.execute(`SELECT ${REMOTE_COLUMNS} FROM remote_media WHERE origin = ? AND media_id = ?`, [r.origin, r.mediaId], SERIAL_READ)).first();
      if (row !== null) return toRemote(row);
    }
    throw new Error(`remote media ${r.origin}/${r.mediaId}: recorded and evicted by others ${PUT_ROUNDS} times while this fetch tried to record it`);
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
      await this.ctx.execute(`UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? IF ${UNTOUCHED_ROW}`, [ts, origin, mediaId]);
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
        await this.ctx.execute(`UPDATE remote_media SET last_access_ts = ? WHERE origin = ? AND media_id = ? IF ${UNTOUCHED_ROW}`, [num(r['fetched_ts']), r['origin'], r['media_id']]);
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
    // sha256 != null: `generation = null` alone holds for a missing row, and an attempt on a
    // record another worker evicted first would count as an eviction and keep a second note.
    const rs = await this.ctx.execute(`DELETE FROM remote_media WHERE origin = ? AND media_id = ? IF ${g.cql} AND sha256 != null`, [origin, mediaId, ...g.params]);
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
}
