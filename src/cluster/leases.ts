// Named leases in Redis: "this worker, and no other, does X for key K" (one federation sender per
// destination, one application-service deliverer per AS). Each user picks a namespace; the rules
// below are the same for all of them.
//
// Invariants:
// - A lease is one key `<prefix><namespace><name>` holding the holder's node ID, set with NX PX;
//   taking it again while it holds our ID renews it, and release deletes it only if it is ours
//   (Lua), so a worker never extends or drops a lease that lapsed and was taken by another.
// - Held leases are renewed every third of their TTL; a worker that dies loses its leases at the
//   TTL, after which another may take them.
// - A renewal that fails (taken by another, or Redis unreachable) drops the lease here and calls
//   `onLost`, so the holder stops the work; Redis unreachable counts as not holding (fail closed:
//   nobody is sure to be alone, so nobody does the work until Redis answers again).
// - validMs() is how long a held lease is sure to last without another renewal: from when the
//   last successful take or renewal was *sent* (Redis starts the TTL later), on the monotonic
//   clock, which keeps running while the process is frozen (SIGSTOP, a long pause). Work that
//   must not outlive the lease checks it right before acting, since a frozen holder wakes with
//   its continuations ahead of its renewal timer.

import type { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';

const TAKE = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

/** Deletes KEYS[1] only while it holds ARGV[1] (also the room leases' release). */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface RedisLeasesOptions {
  redis: Redis;
  /** The cluster's key prefix (cluster.redis.key_prefix). */
  prefix: string;
  /** What the leases are for, in their keys (`fed:dest:`, `as:lease:`). */
  namespace: string;
  nodeId: string;
  leaseMs: number;
  logger: Logger;
  /** For log lines: `federation`, `app service`. */
  what: string;
  /** A held lease was found taken or could not be renewed; it is no longer held here. */
  onLost?: (name: string) => void;
}

export class RedisLeases {
  private readonly held = new Set<string>();
  /** Monotonic time (performance.now) until which each held lease is sure to be ours. */
  private readonly validUntil = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: RedisLeasesOptions) {
    this.timer = setInterval(() => void this.renewAll(), Math.max(1, Math.floor(opts.leaseMs / 3)));
    this.timer.unref();
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  key(name: string): string {
    return `${this.opts.prefix}${this.opts.namespace}${name}`;
  }

  /** True when this worker holds (took or renewed) the lease. */
  async acquire(name: string): Promise<boolean> {
    let ok = false;
    const sent = performance.now();
    try {
      ok = (await this.opts.redis.eval(TAKE, 1, this.key(name), this.opts.nodeId, String(this.opts.leaseMs))) === 1;
    } catch (err) {
      this.opts.logger.warn({ err, lease: name }, `${this.opts.what}: could not take the lease; trying later`);
    }
    const had = this.held.has(name);
    if (ok) {
      this.held.add(name);
      this.validUntil.set(name, sent + this.opts.leaseMs);
    } else if (had) {
      this.held.delete(name);
      this.validUntil.delete(name);
      this.opts.onLost?.(name);
    }
    return ok;
  }

  /** Whether this worker believes it holds the lease (as of the last take or renewal). */
  holds(name: string): boolean {
    return this.held.has(name);
  }

  /** How long the lease is sure to stay ours without a renewal (0: not held, or maybe lapsed). */
  validMs(name: string): number {
    if (!this.held.has(name)) return 0;
    return Math.max(0, (this.validUntil.get(name) ?? 0) - performance.now());
  }

  async release(name: string): Promise<void> {
    this.validUntil.delete(name);
    if (!this.held.delete(name)) return;
    try {
      await this.opts.redis.eval(RELEASE, 1, this.key(name), this.opts.nodeId);
    } catch (err) {
      // It lapses at its TTL; until then the others wait for it.
      this.opts.logger.warn({ err, lease: name }, `${this.opts.what}: could not release the lease`);
    }
  }

  /** Stops renewing and releases every lease held. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.held].map((d) => this.release(d)));
  }

  private async renewAll(): Promise<void> {
    for (const d of [...this.held]) await this.acquire(d);
  }
}
