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
// write at positions another instance may also use. It may then rejoin (reclaim(): called by
// src/cluster/replication.ts) as a new registration: once every write it had in flight under the
// old lease has finished, it claims a new lease (a new token, and the lowest suitable free worker
// ID, rarely the old one, which the revocation's placeholder holds for the TTL) and starts above
// that ID's mark; writes stay refused until admit() (the cluster has learnt the new worker ID).
// Nothing is ever written under the old token again: its renewals are over and its positions
// all finished before the new claim.
//
// Marks and successors: a clean close lowers the mark to the last position actually handed out,
// and a claim without a fixed worker ID prefers free IDs whose mark is behind the clock, so a
// restarted instance does not start with positions ahead of the clock (its writes would wait in
// the cluster watermark until the clock caught up with them). Only an instance whose free IDs
// all have marks ahead (holders that crashed, or a fixed `workerId`) starts ahead, by at most
// HIGH_AHEAD_MS.
//
// Freshness (what lets the cluster stop waiting for a silent worker within seconds, see
// src/cluster/replication.ts): the instance writes (reserve(), and confirm() before each event
// batch) only while its last applied renewal was *sent* at most STALE_MS ago by its own
// monotonic clock; past that it renews first, inline, and a renewal not applied fences it. So
// once another instance has revoked the lease (revokeWorkerLease: an LWT that replaces the owner,
// ordered after every renewal that was applied) and then waited STALE_MS by its own clock, the
// revoked instance can start no further write, paused or not. What that cannot stop is a write
// already past confirm() when the instance froze (the same check-then-act gap as the room fence).

import { performance } from 'node:perf_hooks';
import type cassandra from 'cassandra-driver';
import { StreamIdGenerator } from '../stream-id.js';
import { applied, num } from './context.js';
import { workerLeaseOwner } from './data-format.js';

export const WORKER_IDS = 64;
const TICKS_PER_MS = 64;
const EPOCH_MS = Date.UTC(2025, 0, 1);
const LEASE_TTL_S = 10;
const RENEW_MS = 1_000;
/** How old (monotonic ms since it was sent) the last applied renewal may be for a write to start. */
export const STALE_MS = 2_000;
/**
 * How far ahead of the position in use the persisted high-water mark is written (a write of the
 * mark every HIGH_AHEAD_MS - 1 s of activity; the most a crashed holder's successor on the same
 * fixed ID can start ahead of the clock).
 */
const HIGH_AHEAD_MS = 10_000;
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
  constructor(worker: number, why = 'was lost; this instance must not write') {
    super(`cassandra store: the lease on worker ID ${worker} ${why}`);
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
  /** Positions go above this (the current worker ID's mark when it was claimed by a rejoin). */
  private floor = 0;
  /** Rejoined, but not admitted yet: writes are refused (see admit()). */
  private joining = false;
  private readonly lostListeners = new Set<() => void>();
  private chain: Promise<unknown> = Promise.resolve();
  private renewTimer: NodeJS.Timeout | null = null;
  private lost: LeaseLostError | null = null;
  private closed = false;
  /** performance.now() when the last renewal that was applied (or the claim) was sent. */
  private renewedAt = performance.now();
  private renewing: Promise<void> | null = null;

  private constructor(
    private readonly client: cassandra.Client,
    private currentId: number,
    private owner: string,
    initial: number,
    private readonly opts: PositionOptions,
  ) {
    const now = opts.now ?? Date.now;
    this.persistedHigh = initial;
    this.gen = new StreamIdGenerator(initial, {
      onListenerError: opts.onListenerError,
      next: (last) =>
        Math.max(Math.floor(last / WORKER_IDS) + 1, Math.floor(this.floor / WORKER_IDS) + 1, (now() - EPOCH_MS) * TICKS_PER_MS) * WORKER_IDS + this.currentId,
    });
  }

  /** The worker ID this instance holds (it changes only by a rejoin). */
  get workerId(): number {
    return this.currentId;
  }

  static async open(client: cassandra.Client, opts: PositionOptions = {}): Promise<PositionAllocator> {
    const owner = workerLeaseOwner();
    const claimedAt = performance.now();
    const now = (opts.now ?? Date.now)();
    const { id: workerId, high: stored } = await claimWorkerId(client, owner, opts.workerId, positionAt(now, 0));
    try {
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
      const upcoming = Math.max(this.gen.maxReserved(), this.floor, positionAt(now, this.workerId));
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

  /** Whether this instance may write: the worker lease is held (and, after a rejoin, admitted). */
  get healthy(): boolean {
    return this.lost === null && !this.joining;
  }

  /** Calls `listener` each time the lease is found lost (see reclaim). */
  onLost(listener: () => void): void {
    this.lostListeners.add(listener);
  }

  /**
   * After the lease was lost: waits until every position handed out under it has finished
   * (completed or abandoned), then claims a new lease. Writes stay refused until admit(). Throws
   * when no lease could be claimed (Cassandra unreachable, no free ID): the caller tries again.
   */
  async reclaim(): Promise<void> {
    if (!this.lost || this.closed) return;
    await this.chain;
    while (this.gen.inFlightCount() > 0 || this.waiting > 0) await new Promise((r) => setTimeout(r, 20));
    const owner = workerLeaseOwner();
    const claimedAt = performance.now();
    const { id, high } = await claimWorkerId(this.client, owner, this.opts.workerId, positionAt((this.opts.now ?? Date.now)(), 0));
    if (this.closed) {
      await releaseWorkerId(this.client, id, owner).catch(() => undefined);
      return;
    }
    this.currentId = id;
    this.owner = owner;
    this.floor = high;
    this.persistedHigh = high; // the next reserve() persists a new mark above the floor first
    this.renewedAt = claimedAt;
    this.joining = true;
    this.lost = null;
    this.renewTimer = setInterval(() => void this.renew(), RENEW_MS);
    this.renewTimer.unref();
  }

  /** Writes are allowed again after a reclaim (the cluster knows the new worker ID). */
  admit(): void {
    this.joining = false;
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
    if (this.joining) throw new LeaseLostError(this.currentId, 'was claimed by a rejoin not yet announced to the cluster; no write yet');
    if (performance.now() - this.renewedAt <= STALE_MS) return;
    await this.renewNow(true);
    if (this.lost) throw this.lost;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    await this.chain;
    if (!this.lost) {
      // Nothing above the last position handed out was used: the next holder of this ID starts
      // from there rather than from a mark ahead of the clock. Still ours to write (we hold the
      // lease until the release below), and a failure only leaves the higher mark.
      if (this.gen.maxReserved() > 0 && workerOf(this.gen.maxReserved()) === this.currentId) {
        await this.client
          .execute(`UPDATE worker_clock SET high = ? WHERE id = ?`, [this.gen.maxReserved(), this.currentId], { prepare: true })
          .catch(() => undefined);
      }
      await releaseWorkerId(this.client, this.workerId, this.owner).catch(() => undefined);
    }
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
    for (const l of this.lostListeners) l();
  }
}

/**
 * Claims a worker ID's lease for `owner` and returns it with the ID's persisted mark. Without a
 * wanted ID: the lowest free one whose mark is behind `nowPos` (the clock as a worker-0
 * position), else the free one with the lowest mark (see the header: a mark ahead of the clock
 * stalls the instance's first writes).
 */
async function claimWorkerId(client: cassandra.Client, owner: string, wanted: number | undefined, nowPos: number): Promise<{ id: number; high: number }> {
  if (wanted !== undefined && (!Number.isInteger(wanted) || wanted < 0 || wanted >= WORKER_IDS)) {
    throw new RangeError(`worker ID must be an integer in [0, ${WORKER_IDS})`);
  }
  // The marks before the claim: a mark only moves while its ID is leased, so a free ID's mark
  // read here is still its mark once we hold it (re-read below for the one we get anyway).
  const marks = new Map<number, number>();
  for (const row of (await client.execute(`SELECT id, high FROM worker_clock`, [], { prepare: true })).rows) {
    if (row['high'] != null) marks.set(num(row['id']), num(row['high']));
  }
  const mark = (id: number) => marks.get(id) ?? 0;
  const candidates =
    wanted === undefined
      ? [...Array(WORKER_IDS).keys()].sort((a, b) => {
          const aheadA = mark(a) - (nowPos + a) >= 0;
          const aheadB = mark(b) - (nowPos + b) >= 0;
          if (aheadA !== aheadB) return aheadA ? 1 : -1;
          return aheadA ? mark(a) - mark(b) || a - b : a - b;
        })
      : [wanted];
  for (const id of candidates) {
    const rs = await client.execute(`INSERT INTO worker_leases (id, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ${LEASE_TTL_S}`, [id, owner], {
      prepare: true,
      serialConsistency: LOCAL_SERIAL,
    });
    if (!applied(rs)) continue;
    try {
      const row = (await client.execute(`SELECT high FROM worker_clock WHERE id = ?`, [id], { prepare: true })).first();
      return { id, high: row && row['high'] != null ? num(row['high']) : 0 };
    } catch (err) {
      await releaseWorkerId(client, id, owner).catch(() => undefined);
      throw err;
    }
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
