// The set of live room writers, for workers that may not take a room themselves
// (src/cluster/room-owner.ts): which writer serves a room nobody holds.
//
// Invariants:
// - Writers announce themselves in the sorted set `<prefix>ro:writers` (score: the time their
//   entry expires, renewed with the leases); an entry past its time is dead. A worker that does
//   not acquire now (no room_writer role, or its store lease was revoked) does not announce
//   itself, and its entry lapses after one lease period.
// - A room nobody holds goes to the live writer chosen by rendezvous hash of the room ID (stable,
//   so one room's callers agree), which takes the lease when it serves it.
// - No live writer: a retryable 503 at once, never a wait or a 500.

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MatrixError } from '../errors.js';
import { reachable } from './room-owner-redis.js';

export interface WriterSetOptions {
  redis: Redis;
  prefix: string;
  nodeId: string;
  /** How long an announcement lasts. */
  leaseMs: number;
  logger: { warn: (obj: object, msg: string) => void };
}

export class WriterSet {
  /** `acquires`: whether this worker takes rooms now; `running`: whether it has started and not stopped. */
  constructor(
    private readonly opts: WriterSetOptions,
    private readonly acquires: () => boolean,
    private readonly running: () => boolean,
  ) {}

  /** Writers whose announcement has not expired, sorted. */
  async live(): Promise<string[]> {
    const all = await reachable(this.opts.redis.zrangebyscore(this.key, Date.now(), '+inf'));
    return all.sort();
  }

  /** Rendezvous hash: the live writer with the highest hash of (writer, key). */
  async pick(key: string): Promise<string> {
    const writers = (await this.live()).filter((w) => w !== this.opts.nodeId || this.acquires());
    if (writers.length === 0) {
      throw new MatrixError('M_UNKNOWN', 'No room writer is running; try again', { retry_after_ms: 1000 }, 503);
    }
    let best = writers[0]!;
    let bestScore = '';
    for (const w of writers) {
      const score = createHash('sha256').update(`${w}\u0000${key}`).digest('hex');
      if (score > bestScore) [best, bestScore] = [w, score];
    }
    return best;
  }

  /** A writer's entry in the writer set, valid for one lease period (renewed with the leases). */
  async announce(): Promise<void> {
    if (!this.acquires() || !this.running()) return;
    try {
      const { redis, leaseMs, nodeId } = this.opts;
      const now = Date.now();
      // Expired entries are dropped on the way: the set holds live writers and the recently dead.
      await redis.multi().zadd(this.key, now + leaseMs, nodeId).zremrangebyscore(this.key, '-inf', now - 60_000).exec();
    } catch (err) {
      this.opts.logger.warn({ err }, 'room owner: could not announce this writer');
    }
  }

  /** Takes this worker's entry out of the set; rejects if Redis did not answer. */
  async leave(): Promise<void> {
    await this.opts.redis.zrem(this.key, this.opts.nodeId);
  }

  private get key(): string {
    return `${this.opts.prefix}ro:writers`;
  }
}
