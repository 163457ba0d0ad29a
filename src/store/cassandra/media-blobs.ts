// Media bytes on Cassandra: the MediaStore (src/media/media-store.ts) for a cluster, so a file
// uploaded through one worker is downloaded and thumbnailed through any other. Tables: migration
// 0017 (media_blobs: key -> blob; media_chunks: one blob per partition, numbered chunks).
//
// Invariants and why:
// - Every put() writes its chunks under a fresh blob ID, then commits the key with an LWT
//   (IF NOT EXISTS). A key is written once: of two processes putting one key at once (two
//   workers thumbnailing the same size, a racing PUT to one pending media ID), the first commit
//   wins, the other drops its own chunks and reports the winner's size and hash, so whatever the
//   caller records matches the bytes a reader gets. Readers follow the key to its blob only, so
//   chunks being written are never seen (all or nothing).
// - A put that fails (source error, over the limit, Cassandra error) deletes its blob's
//   partition, but never one its key may name: when the committing LWT itself fails (a timeout
//   may still commit it), a serial read of the key decides first; if that fails too, the chunks
//   are left to the sweep. A process killed mid-put leaves an unreferenced partition that nothing reads; each
//   put first notes (hour, blob, key) in media_uploads (TTL 3 days, never deleted), and the sweep
//   (at open and hourly, on every worker: idempotent) drops the chunks of noted blobs from hours
//   at least SWEEP_AFTER_MS old that their key does not name. No put lasts that long (uploads
//   end within limits.http.request_timeout_ms), so a live put is never swept.
// - media_blobs rows are written and deleted by LWT only (never mixed with plain writes).
// - No null is ever bound; a body is held a chunk at a time (media.chunk_bytes, 64 KiB–1 MiB),
//   and a read pages through the partition about 1 MiB at a time.
// - A read checks the chunk sequence and the total size against the key's row: a blob deleted
//   while it is streamed ends the stream with an error instead of short, silent data.

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type cassandra from 'cassandra-driver';
import { BlobTooLargeError, checkMediaKey, type MediaStore, type OpenedBlob, type StoredBlob } from '../../media/media-store.js';
import { applied, num, type CassandraContext } from './context.js';
import { SERIAL_READ } from './e2ee-common.js';

const READ_PAGE_BYTES = 1024 * 1024;
const HOUR_MS = 3_600_000;
/** A noted put this old is finished or dead. */
const SWEEP_AFTER_MS = 24 * HOUR_MS;
/** media_uploads rows live 3 days: the sweep looks at the hours it can still see. */
const SWEEP_HOURS = 47;

export class CassandraMediaBlobs implements MediaStore {
  constructor(
    private readonly ctx: Pick<CassandraContext, 'execute'>,
    private readonly chunkBytes: number,
    private readonly logger?: { warn: (obj: object, msg: string) => void },
    private readonly now: () => number = Date.now,
  ) {}

  private sweeper: NodeJS.Timeout | undefined;
  /** Blobs of dead puts dropped by sweeps (tests, metrics). */
  swept = 0;

  /** The tables come with the store's migrations; starts the sweep of dead puts (background). */
  async open(): Promise<void> {
    const hour = (): number => Math.floor((this.now() - SWEEP_AFTER_MS) / HOUR_MS) - 1;
    let upTo = hour();
    const run = (hours: number[]) =>
      void this.sweep(hours).catch((err: unknown) => this.logger?.warn({ err }, 'media: could not sweep the chunks of dead uploads; the next sweep tries again'));
    run(Array.from({ length: SWEEP_HOURS }, (_, i) => upTo - i));
    this.sweeper = setInterval(() => {
      const next = hour();
      if (next > upTo) run(Array.from({ length: next - upTo }, (_, i) => next - i));
      upTo = Math.max(upTo, next);
    }, HOUR_MS / 4);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /**
   * Drops the chunks of puts noted in `hours` (hour numbers since the epoch) whose key does not
   * name their blob: the put died before committing, or lost the key to another. A failed sweep
   * is logged; the next start's sweep covers the same hours while their rows live.
   */
  async sweep(hours: number[]): Promise<void> {
    for (const h of hours) {
      let pageState: string | undefined;
      do {
        const page = await this.ctx.execute(`SELECT blob_id, key FROM media_uploads WHERE hour = ?`, [h], { fetchSize: 500, pageState });
        for (const r of page.rows) {
          const blobId = r['blob_id'] as string;
          const live = (await this.ctx.execute(`SELECT blob_id FROM media_blobs WHERE key = ?`, [r['key'] as string])).first();
          if (live?.['blob_id'] === blobId) continue;
          await this.dropChunks(blobId);
          this.swept++;
        }
        pageState = page.pageState ?? undefined;
      } while (pageState);
    }
  }

  async put(key: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<StoredBlob> {
    checkMediaKey(key);
    const blobId = randomBytes(16).toString('hex');
    const hash = createHash('sha256');
    let size = 0;
    let chunks = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    // Noted first, so a put that dies from here on is found by the sweep.
    await this.ctx.execute(`INSERT INTO media_uploads (hour, blob_id, key) VALUES (?, ?, ?)`, [Math.floor(this.now() / HOUR_MS), blobId, key]);
    const write = (data: Buffer) => this.ctx.execute(`INSERT INTO media_chunks (blob_id, idx, data) VALUES (?, ?, ?)`, [blobId, chunks++, data]);
    // Writes every full chunk gathered so far; the remainder waits for more of the body.
    const flush = async (): Promise<void> => {
      let all = Buffer.concat(pending, pendingBytes);
      while (all.length >= this.chunkBytes) {
        await write(all.subarray(0, this.chunkBytes));
        all = all.subarray(this.chunkBytes);
      }
      pending = all.length > 0 ? [Buffer.from(all)] : [];
      pendingBytes = all.length;
    };
    let committed = false;
    try {
      for await (const chunk of source) {
        size += chunk.length;
        if (size > limit) throw new BlobTooLargeError(limit);
        hash.update(chunk);
        pending.push(Buffer.from(chunk)); // a copy: the source may reuse its buffer
        pendingBytes += chunk.length;
        if (pendingBytes >= this.chunkBytes) await flush();
      }
      if (pendingBytes > 0) await write(Buffer.concat(pending, pendingBytes));
      const sha256 = hash.digest('hex');
      let rs: cassandra.types.ResultSet;
      try {
        rs = await this.ctx.execute(
          `INSERT INTO media_blobs (key, blob_id, size, sha256, chunks, created_ts) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
          [key, blobId, size, sha256, chunks, this.now()],
        );
      } catch (err) {
        // The outcome of a failed LWT is unknown (a write timeout may still commit).
        const outcome = await this.settleCommit(key, blobId);
        if (outcome === 'ours') {
          committed = true;
          return { size, sha256 };
        }
        if (outcome === 'unknown') committed = true; // chunks kept: the sweep drops them if unused
        throw err;
      }
      if (applied(rs)) {
        committed = true;
        return { size, sha256 };
      }
      // Another process committed this key first: its bytes stay, ours go.
      const row = rs.first();
      return { size: num(row['size']), sha256: row['sha256'] as string };
    } finally {
      if (!committed) {
        await this.dropChunks(blobId).catch((err: unknown) => this.logger?.warn({ err, key, blobId }, 'media: could not drop the chunks of a failed upload; the sweep drops them later'));
      }
    }
  }

  /**
   * Whether the key names our blob after a commit that failed with an unknown outcome. A serial
   * read finishes any Paxos round still in flight, so what it sees stays true: 'ours' (committed
   * after all), 'not-ours' (never will be), or 'unknown' when the read fails too.
   */
  private async settleCommit(key: string, blobId: string): Promise<'ours' | 'not-ours' | 'unknown'> {
    try {
      const row = (await this.ctx.execute(`SELECT blob_id FROM media_blobs WHERE key = ?`, [key], SERIAL_READ)).first();
      return row?.['blob_id'] === blobId ? 'ours' : 'not-ours';
    } catch (err) {
      this.logger?.warn({ err, key, blobId }, 'media: could not learn whether an upload was committed; its chunks are kept');
      return 'unknown';
    }
  }

  async get(key: string): Promise<OpenedBlob | null> {
    checkMediaKey(key);
    const rs = await this.ctx.execute(`SELECT blob_id, size, chunks FROM media_blobs WHERE key = ?`, [key]);
    const row = rs.first();
    if (!row) return null;
    const blobId = row['blob_id'] as string;
    const size = num(row['size']);
    const chunks = row['chunks'] as number;
    const fetchSize = Math.max(1, Math.floor(READ_PAGE_BYTES / this.chunkBytes));
    const ctx = this.ctx;
    async function* read(): AsyncGenerator<Buffer> {
      let pageState: string | undefined;
      let next = 0;
      let bytes = 0;
      if (chunks > 0) {
        do {
          const page: cassandra.types.ResultSet = await ctx.execute(`SELECT idx, data FROM media_chunks WHERE blob_id = ?`, [blobId], { fetchSize, pageState });
          for (const r of page.rows) {
            if ((r['idx'] as number) !== next) throw new Error(`media blob ${key}: chunk ${next} missing`);
            next++;
            const data = r['data'] as Buffer;
            bytes += data.length;
            yield data;
          }
          pageState = page.pageState ?? undefined;
        } while (pageState);
      }
      // Fewer chunks or bytes than the key promised: deleted while we read.
      if (next !== chunks || bytes !== size) throw new Error(`media blob ${key}: ${bytes} of ${size} bytes found`);
    }
    return { stream: Readable.from(read(), { objectMode: false }), size };
  }

  async delete(key: string): Promise<void> {
    checkMediaKey(key);
    const row = (await this.ctx.execute(`SELECT blob_id FROM media_blobs WHERE key = ?`, [key])).first();
    if (!row) return;
    const blobId = row['blob_id'] as string;
    const rs = await this.ctx.execute(`DELETE FROM media_blobs WHERE key = ? IF blob_id = ?`, [key, blobId]);
    // Not applied: already deleted (by another process, which drops the chunks too) or written
    // again with another blob, whose chunks are not ours to drop.
    if (applied(rs) || !rs.first()?.['blob_id']) await this.dropChunks(blobId);
  }

  private async dropChunks(blobId: string): Promise<void> {
    await this.ctx.execute(`DELETE FROM media_chunks WHERE blob_id = ?`, [blobId]);
  }
}
