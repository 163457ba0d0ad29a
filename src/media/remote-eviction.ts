// Eviction of cached remote media (media.remote_media_lifetime_ms, media.max_remote_media_bytes,
// and the admin purge POST /_synapse/admin/v1/purge_media_cache): records last accessed too long
// ago, or the least recently accessed past the size cap, are removed, their bytes later. Local
// uploads are never touched (they are not in remote_media).
//
// Why it is safe in a cluster, where any worker may evict while another re-fetches or reads:
// - Keys are per fetch (remote-cache.ts: <id>.<generation>, a fresh random generation each
//   fetch), so a re-fetch after an eviction writes other keys than the evicted bytes'; the
//   write-once key can no longer hand a re-fetch the old bytes just before they go, and deleting
//   the old bytes can never hit the new ones. No record ever names an evicted generation again.
// - Eviction is two steps. evictRemoteMedia removes the record only if it still names the
//   generation the sweep saw (a conditional delete: LWT on Cassandra, one transaction on
//   SQLite), and notes the generation as doomed, due GRACE_MS later. From then on no reader finds
//   the record (a download re-fetches); a reader that found it just before holds the old
//   generation and reads its bytes, which stay whole until the grace ends: a download that
//   started before the eviction is never cut short or answered from missing bytes unless it
//   takes longer than GRACE_MS.
// - Only a due generation's bytes are deleted (the media's, and its thumbnails', whose keys carry
//   the generation too), and the store never lists a generation a record still names. The
//   doomed note is forgotten only after its bytes are gone (a failed delete is retried by the
//   next sweep; deleting missing bytes is not an error), so a crash leaves work, not garbage.
// - Every worker sweeps (each minute); the steps are idempotent, so two sweeps racing over one
//   item evict it once (the second conditional delete does not apply) and delete its bytes
//   once or twice, harmlessly.
// - stop() resolves only once no sweep or purge is running (each ends at its next store call),
//   so the store and the byte store can be closed right after it; a sweep asked for after stop
//   does nothing.
// - The counts (stats(): records evicted and their sizes, as the records gave them) grow by what
//   this process evicted: a conditional delete that did not apply is not counted.

import type { Logger } from 'pino';
import type { DoomedRemoteMedia, MediaMetaStore, RemoteMediaRecord } from '../store/media-types.js';
import type { MediaStore } from './media-store.js';
import { remoteKey, remoteThumbnailKey } from './remote-cache.js';

/** How long an evicted generation's bytes outlive its record: longer than any read of them. */
export const GRACE_MS = 3_600_000;
const SWEEP_EVERY_MS = 60_000;
/** The size cap is judged every this many timer sweeps (on Cassandra it scans remote_media). */
const CAP_EVERY_SWEEPS = 10;
/** Records evicted or generations deleted per store call. */
const BATCH = 500;

/** What this process has evicted so far (monotonic). */
export interface EvictionStats {
  /** Records evicted (each one generation of one remote item). */
  files: number;
  /** Their sizes as recorded (the originals; thumbnails not counted). */
  bytes: number;
}

export class RemoteMediaEvictor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private ticks = 0;
  private stopped = false;
  /** Purges in progress (the admin's, and the sweeps'), for stop() to wait on. */
  private readonly purging = new Set<Promise<number>>();
  private readonly counts: EvictionStats = { files: 0, bytes: 0 };

  constructor(
    private readonly deps: {
      meta: MediaMetaStore;
      blobs: MediaStore;
      /** Records last accessed longer ago are evicted by the sweep; null: kept for ever. */
      lifetimeMs: number | null;
      /** Past this total size the least recently accessed are evicted; null: no cap. */
      maxBytes: number | null;
      logger: Logger;
      now: () => number;
    },
  ) {}

  start(): void {
    // A timer sweep is skipped while another still runs (a slow store must not pile them up).
    this.timer = setInterval(() => void (this.running ? undefined : this.sweep(this.deps.now(), this.ticks++ % CAP_EVERY_SWEEPS === 0)), SWEEP_EVERY_MS);
    this.timer.unref();
  }

  /** No new sweep starts; resolves once the running sweep and purges have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // Neither rejects (sweeps log their errors); allSettled in case a purge's store call threw.
    await Promise.allSettled([this.running, ...this.purging]);
  }

  stats(): EvictionStats {
    return { ...this.counts };
  }

  /**
   * One sweep, after any still running: deletes the bytes of generations due by `now` (a test's
   * clock, or the real one), then evicts what was not accessed within the lifetime as of `now`,
   * and (`withCap`) the least recently accessed past the size cap. Grace periods of new
   * evictions count from the real clock. Errors are logged, not thrown.
   */
  sweep(now = this.deps.now(), withCap = true): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const run = (this.running ?? Promise.resolve()).then(() => this.sweepOnce(now, withCap));
    this.running = run;
    void run.finally(() => {
      if (this.running === run) this.running = undefined;
    });
    return run;
  }

  /** Evicts every record last accessed before `beforeTs` (the admin purge): how many (fewer once stopping). */
  purge(beforeTs: number): Promise<number> {
    const run = this.purgeBefore(beforeTs);
    this.purging.add(run);
    const forget = () => void this.purging.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async purgeBefore(beforeTs: number): Promise<number> {
    let evicted = 0;
    while (!this.stopped) {
      const batch = await this.deps.meta.listRemoteMediaBefore(beforeTs, BATCH);
      const n = await this.evict(batch);
      evicted += n;
      // A batch with nothing evicted was all raced away (touched or evicted by another worker
      // since the listing): stop rather than list the same rows again.
      if (batch.length < BATCH || n === 0) break;
    }
    return evicted;
  }

  /** Evicts the records (each only if it still names the generation listed): how many were. */
  private async evict(records: RemoteMediaRecord[]): Promise<number> {
    let n = 0;
    for (const rec of records) {
      if (this.stopped) break;
      if (await this.deps.meta.evictRemoteMedia(rec.origin, rec.mediaId, rec.generation, this.deps.now() + GRACE_MS)) {
        n++;
        this.counts.files++;
        this.counts.bytes += rec.size;
      }
    }
    return n;
  }

  /** Due bytes first, so a sweep never deletes what it evicted itself, whatever clock it was given. */
  private async sweepOnce(now: number, withCap: boolean): Promise<void> {
    try {
      while (!this.stopped) {
        const due = await this.deps.meta.listDoomedRemoteMedia(now, BATCH);
        for (const d of due) {
          if (this.stopped) break;
          await this.drop(d);
        }
        if (due.length < BATCH) break;
      }
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not delete the bytes of evicted remote media; the next sweep tries again');
    }
    try {
      if (this.deps.lifetimeMs !== null) {
        const n = await this.purge(now - this.deps.lifetimeMs);
        if (n > 0) this.deps.logger.info({ evicted: n }, 'evicted remote media not accessed within media.remote_media_lifetime_ms');
      }
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not evict old remote media; the next sweep tries again');
    }
    const cap = this.deps.maxBytes;
    if (cap === null || !withCap || this.stopped) return;
    try {
      let evicted = 0;
      while (!this.stopped) {
        const over = await this.deps.meta.listRemoteMediaOverCap(cap, BATCH);
        const n = await this.evict(over);
        evicted += n;
        if (over.length < BATCH || n === 0) break;
      }
      if (evicted > 0) this.deps.logger.info({ evicted }, 'evicted the least recently used remote media past media.max_remote_media_bytes');
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not evict remote media past the size cap; the next sweep tries again');
    }
  }

  /** Deletes a due generation's bytes, then forgets it (not before: a failure is retried). */
  private async drop(d: DoomedRemoteMedia): Promise<void> {
    for (const t of d.thumbnails) await this.deps.blobs.delete(remoteThumbnailKey(d.origin, d.generation, t));
    await this.deps.blobs.delete(remoteKey(d.origin, d.mediaId, d.generation));
    await this.deps.meta.forgetDoomedRemoteMedia(d);
  }
}
