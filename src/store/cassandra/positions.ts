// Stream positions for the Cassandra backend: per-worker clocks in one integer.
//
//   position = tick × 64 + worker,   tick = (ms since 2025-01-01) × 64 + a sub-millisecond count
//
// - Unique across instances without coordination per write: each live instance holds one worker
//   ID (0..63) as a lease (an LWT-claimed, TTL'd row renewed every few seconds), and its positions
//   carry that ID in the low bits.
// - Strictly increasing per instance: a tick is max(last tick + 1, now), so the clock may run
//   ahead of wall time under bursts (> 64 per ms) but never backwards.
// - Never reused: before handing out a position above the persisted high-water mark of its
//   worker ID, the instance persists a new mark a minute ahead; a restart (or a successor with
//   the same ID) starts above it.
// - Positions of different instances interleave by wall time, so an idle instance never holds
//   readers back: the cluster watermark (src/cluster) is the minimum over live instances of
//   "just below my lowest in-flight position, else now".
// - Locally, StreamIdGenerator keeps the watermark rule of ../stream-id.ts for this instance's
//   own writes. 2^53 / (64 × 64) ms leaves ~69 years from the 2025 epoch.
//
// A lease that cannot be renewed (the instance was paused past the TTL, lost Cassandra, or
// another instance revoked it) fences the instance: reserve() fails from then on, so it cannot
// write at positions another instance may also use.
//
// Freshness (what lets the cluster stop waiting for a silent worker within seconds, see
// src/cluster/replication.ts): the instance writes (reserve(), and confirm() before each event
// batch) only while its last applied renewal was *sent* at most STALE_MS ago by its own
// monotonic clock; past that it renews first, inline, and a renewal not applied fences it. So
// once another instance has revoked the lease (revokeWorkerLease: an LWT that replaces the owner,
// ordered after every renewal that was applied) and then waited STALE_MS by its own clock, the
// revoked instance can start no further write, paused or not. What that cannot stop is a write
// already past confirm() when the instance froze (the same check-then-act gap as the room fence).

import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type cassandra from 'cassandra-driver';
import { StreamIdGenerator } from '../stream-id.js';
import { applied, num } from './context.js';

export const WORKER_IDS = 64;
const TICKS_PER_MS = 64;
const EPOCH_MS = Date.UTC(2025, 0, 1);
const LEASE_TTL_S = 10;
const RENEW_MS = 1_000;
/** How old (monotonic ms since it was sent) the last applied renewal may be for a write to start. */
export const STALE_MS = 2_000;
/** How far ahead of the position in use the persisted high-water mark is written. */
const HIGH_AHEAD_MS = 60_000;
const LOCAL_SERIAL = 0x0009;

export function positionAt(ms: number, worker: number, sub = 0): number {
  return ((ms - EPOCH_MS) * TICKS_PER_MS + sub) * WORKER_IDS + worker;
}

/** The worker ID a position was written by. */
export function workerOf(pos: number): number {
  return ((pos % WORKER_IDS) + WORKER_IDS) % WORKER_IDS;
}

/** Wall-clock milliseconds a position's tick stands for (approximate under bursts). */
export function positionMs(pos: number): number {
  return Math.floor(Math.floor(pos / WORKER_IDS) / TICKS_PER_MS) + EPOCH_MS;
}

export class LeaseLostError extends Error {
  constructor(worker: number) {
    super(`cassandra store: the lease on worker ID ${worker} was lost; this instance must not write`);
    this.name = 'LeaseLostError';
  }
}

export interface PositionOptions {
  /** Claim this worker ID (else the lowest free one). */
  workerId?: number;
  now?: () => number;
  onListenerError?: (err: unknown) => void;
  onLeaseLost?: (err: LeaseLostError) => void;
}

export class PositionAllocator {
  readonly gen: StreamIdGenerator;
  private persistedHigh: number;
  private chain: Promise<unknown> = Promise.resolve();
  private renewTimer: NodeJS.Timeout | null = null;
  private lost: LeaseLostError | null = null;
  private closed = false;
  /** performance.now() when the last renewal that was applied (or the claim) was sent. */
  private renewedAt = performance.now();
  private renewing: Promise<void> | null = null;

  private constructor(
    private readonly client: cassandra.Client,
    readonly workerId: number,
    private readonly owner: string,
    initial: number,
    private readonly opts: PositionOptions,
  ) {
    const now = opts.now ?? Date.now;
    this.persistedHigh = initial;
    this.gen = new StreamIdGenerator(initial, {
      onListenerError: opts.onListenerError,
      next: (last) => Math.max(Math.floor(last / WORKER_IDS) + 1, (now() - EPOCH_MS) * TICKS_PER_MS) * WORKER_IDS + workerId,
    });
  }

  static async open(client: cassandra.Client, opts: PositionOptions = {}): Promise<PositionAllocator> {
    const owner = randomUUID();
    const claimedAt = performance.now();
    const workerId = await claimWorkerId(client, owner, opts.workerId);
    try {
      const rs = await client.execute(`SELECT high FROM worker_clock WHERE id = ?`, [workerId], { prepare: true });
      const row = rs.first();
      const stored = row && row['high'] != null ? num(row['high']) : 0;
      const now = (opts.now ?? Date.now)();
      // Start just below "now" for this worker, or above everything it ever handed out.
      const initial = Math.max(stored, positionAt(now, workerId) - WORKER_IDS);
      const alloc = new PositionAllocator(client, workerId, owner, initial, opts);
      alloc.renewedAt = claimedAt;
      alloc.renewTimer = setInterval(() => void alloc.renew(), RENEW_MS);
      alloc.renewTimer.unref();
      return alloc;
    } catch (err) {
      await releaseWorkerId(client, workerId, owner).catch(() => undefined);
      throw err;
    }
  }

  /** Reservations asked for and not yet handed out (they may still get a position). */
  private waiting = 0;

  /** Whether a reserve() is waiting for its position (see CassandraStore.promise). */
  get reserving(): boolean {
    return this.waiting > 0;
  }

  /** The next position; persists the high-water mark first when it would be passed. */
  reserve(): Promise<number> {
    this.waiting++;
    const next = this.chain.then(async () => {
      await this.confirm();
      const now = (this.opts.now ?? Date.now)();
      // The next position follows the clock as well as the last one: after an idle minute it is
      // far above the last reservation, and must still be below the persisted mark.
      const upcoming = Math.max(this.gen.maxReserved(), positionAt(now, this.workerId));
      if (upcoming + WORKER_IDS * TICKS_PER_MS * 1000 >= this.persistedHigh) {
        const high = upcoming + HIGH_AHEAD_MS * TICKS_PER_MS * WORKER_IDS;
        await this.client.execute(`UPDATE worker_clock SET high = ? WHERE id = ?`, [high, this.workerId], { prepare: true });
        this.persistedHigh = high;
      }
      const pos = this.gen.reserve();
      if (pos > this.persistedHigh) throw new Error('stream position above the persisted high-water mark');
      return pos;
    });
    void next.finally(() => this.waiting--).catch(() => undefined);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Whether the worker lease is still held (false once renewal failed). */
  get healthy(): boolean {
    return this.lost === null;
  }

  /** This instance's token in worker_leases (what revokeWorkerLease names). */
  get leaseOwner(): string {
    return this.owner;
  }

  /**
   * Resolves while the lease is fresh (see the header), renewing inline when it is not; throws
   * LeaseLostError once fenced, or the renewal's error when Cassandra did not answer.
   */
  async confirm(): Promise<void> {
    if (this.lost) throw this.lost;
    if (performance.now() - this.renewedAt <= STALE_MS) return;
    await this.renewNow(true);
    if (this.lost) throw this.lost;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    await this.chain;
    if (!this.lost) await releaseWorkerId(this.client, this.workerId, this.owner).catch(() => undefined);
  }

  private async renew(): Promise<void> {
    await this.renewNow(false);
  }

  /** One renewal at a time; `strict` rethrows a renewal that got no answer. */
  private renewNow(strict: boolean): Promise<void> {
    if (this.closed || this.lost) return Promise.resolve();
    this.renewing ??= (async () => {
      const sentAt = performance.now();
      try {
        const rs = await this.client.execute(
          `UPDATE worker_leases USING TTL ${LEASE_TTL_S} SET owner = ? WHERE id = ? IF owner = ?`,
          [this.owner, this.workerId, this.owner],
          { prepare: true, serialConsistency: LOCAL_SERIAL },
        );
        if (applied(rs)) this.renewedAt = Math.max(this.renewedAt, sentAt);
        else if (!this.closed) this.fence();
      } finally {
        this.renewing = null;
      }
    })();
    // Unreachable Cassandra on a timed renewal: retry on the next tick; the TTL decides whether
    // the lease survives (and writes wait for a fresh renewal meanwhile).
    return strict ? this.renewing : this.renewing.catch(() => undefined);
  }

  private fence(): void {
    if (this.lost) return;
    this.lost = new LeaseLostError(this.workerId);
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    this.opts.onLeaseLost?.(this.lost);
  }
}

async function claimWorkerId(client: cassandra.Client, owner: string, wanted?: number): Promise<number> {
  const candidates = wanted === undefined ? [...Array(WORKER_IDS).keys()] : [wanted];
  if (wanted !== undefined && (!Number.isInteger(wanted) || wanted < 0 || wanted >= WORKER_IDS)) {
    throw new RangeError(`worker ID must be an integer in [0, ${WORKER_IDS})`);
  }
  for (const id of candidates) {
    const rs = await client.execute(`INSERT INTO worker_leases (id, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ${LEASE_TTL_S}`, [id, owner], {
      prepare: true,
      serialConsistency: LOCAL_SERIAL,
    });
    if (applied(rs)) return id;
  }
  throw new Error(
    wanted === undefined ? `all ${WORKER_IDS} worker IDs are leased by live instances` : `worker ID ${wanted} is leased by another live instance`,
  );
}

/**
 * Takes the worker ID's lease away from `owner` (a silent instance): afterwards none of its
 * renewals applies, so it is fenced at its next one and (see the header) starts no write once
 * STALE_MS has passed. True when `owner` no longer holds the lease (revoked now, expired, or
 * held by another instance); false when Cassandra did not answer.
 */
export async function revokeWorkerLease(client: cassandra.Client, id: number, owner: string): Promise<boolean> {
  try {
    // The placeholder expires like any lease, freeing the ID for a new instance.
    await client.execute(`UPDATE worker_leases USING TTL ${LEASE_TTL_S} SET owner = ? WHERE id = ? IF owner = ?`, [`revoked:${owner}`, id, owner], {
      prepare: true,
      serialConsistency: LOCAL_SERIAL,
    });
    return true;
  } catch {
    return false;
  }
}

async function releaseWorkerId(client: cassandra.Client, id: number, owner: string): Promise<void> {
  await client.execute(`DELETE FROM worker_leases WHERE id = ? IF owner = ?`, [id, owner], { prepare: true, serialConsistency: LOCAL_SERIAL });
}

/** Width of a time bucket for partitioning positioned rows (e.g. a room's events). */
export const BUCKET_MS = 3_600_000;
/** Backfilled positions (negative, dense from -1 down) are bucketed by count instead. */
const BACKFILL_BUCKET = 4096;

/**
 * The partition bucket of a stream position: the hour its tick stands for, or for backfilled
 * history (negative positions) a block of 4,096 below zero. A bucket's rows are bounded by a
 * room's rate over an hour; a quiet room touches few buckets, so readers list a room's non-empty
 * buckets from an index rather than scanning hours.
 */
export function positionBucket(pos: number): number {
  if (pos < 0) return -1 - Math.floor((-pos - 1) / BACKFILL_BUCKET);
  return Math.floor((positionMs(pos) - EPOCH_MS) / BUCKET_MS);
}
