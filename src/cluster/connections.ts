// Which users are connected to any process of a cluster (for push-when-offline). Each process
// keeps its own ConnectionTracker and announces, per user, until when it counts that user as
// connected: a sorted set per user in Redis, one member per process (its node id), scored by
// that time in ms. A user is connected elsewhere while any member's score is in the future.
//
// Invariants:
// - A process announces a change as it happens and re-announces its open connections every
//   refreshMs; an open connection is announced as connected for leaseMs (> refreshMs), so a
//   process that dies stops counting within leaseMs, with no clean-up needed.
// - Every write sets the key's TTL to the same ttlMs (>= leaseMs and the recent window), so a
//   write never shortens another process's claim; an abandoned key disappears on its own.
// - A Redis failure answers "not connected": the user gets a push they might not have needed,
//   never a missing one.

import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ConnectionTracker } from '../sync/connections.js';

export interface ConnectionRegistryOptions {
  client: Redis;
  prefix: string;
  nodeId: string;
  tracker: ConnectionTracker;
  /** The tracker's recent-poll window (push.connected_window_ms). */
  recentMs: number;
  refreshMs?: number;
  logger: Logger;
  now?: () => number;
}

export class RedisConnectionRegistry {
  private readonly live = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private readonly refreshMs: number;
  private readonly leaseMs: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: ConnectionRegistryOptions) {
    this.refreshMs = opts.refreshMs ?? 10_000;
    this.leaseMs = this.refreshMs * 3;
    this.ttlMs = Math.max(this.leaseMs, opts.recentMs) + 1000;
    this.now = opts.now ?? Date.now;
    opts.tracker.watch((userId) => void this.announce([userId]));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.announce([...this.live]), this.refreshMs);
    this.timer.unref();
  }

  /** Stops refreshing and withdraws this process's announcements (best-effort). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const users = [...this.live];
    this.live.clear();
    if (users.length === 0) return;
    const m = this.opts.client.multi();
    for (const u of users) m.zrem(this.key(u), this.opts.nodeId);
    await m.exec().catch((err: unknown) => this.opts.logger.warn({ err }, 'connection registry: withdrawing failed'));
  }

  /** Whether `userId` is connected to this or any other live process. */
  async isConnected(userId: string): Promise<boolean> {
    if (this.opts.tracker.isConnected(userId)) return true;
    try {
      return (await this.opts.client.zcount(this.key(userId), `(${this.now()}`, '+inf')) > 0;
    } catch (err) {
      this.opts.logger.warn({ err }, 'connection registry: lookup failed; treating the user as offline');
      return false;
    }
  }

  private async announce(users: string[]): Promise<void> {
    if (users.length === 0) return;
    const now = this.now();
    const m = this.opts.client.multi();
    for (const u of users) {
      const until = this.opts.tracker.connectedUntil(u);
      const key = this.key(u);
      if (until === Number.POSITIVE_INFINITY) {
        this.live.add(u);
        m.zadd(key, now + this.leaseMs, this.opts.nodeId);
      } else {
        this.live.delete(u);
        if (until > now) m.zadd(key, until, this.opts.nodeId);
        else m.zrem(key, this.opts.nodeId);
      }
      m.pexpire(key, this.ttlMs);
    }
    try {
      await m.exec();
    } catch (err) {
      this.opts.logger.warn({ err }, 'connection registry: announcing failed');
    }
  }

  private key(userId: string): string {
    return `${this.opts.prefix}conn:${userId}`;
  }
}
