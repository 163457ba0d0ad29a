// Outbound federation across workers: one sender per destination at a time. Every worker that
// sends transactions (federation_out, and any worker relaying EDUs it produced) takes the
// destination's lease in Redis before each transaction and keeps it while its queue for that
// destination is not empty; another worker with something for the same destination waits for
// the lease. So a destination sees one transaction in flight from this server at a time, as the
// server-server spec expects of one origin, however many workers send.
//
// Invariants:
// - A lease is one key `<prefix>fed:dest:<server>` holding the holder's node ID, set with NX PX;
//   taking it again while it holds our ID renews it, and release deletes it only if it is ours
//   (Lua), so a worker never extends or drops a lease that lapsed and was taken by another.
// - Held leases are renewed every third of their TTL; a worker that dies loses its leases at the
//   TTL, after which the others send (each from its own queue: see docs/deploy.md, roles).
// - Redis unreachable: no lease, nothing is sent (the queues keep everything, durably for PDUs),
//   and sending resumes when Redis is back. Failing closed keeps the one-at-a-time rule.

import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisSharedState } from './redis.js';

const TAKE = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** What FederationSender asks before each transaction (src/federation/sender.ts). */
export interface DestinationGate {
  /** True when this worker holds (took or renewed) the destination's lease. */
  acquire(destination: string): Promise<boolean>;
  /** This worker has nothing queued for the destination now. */
  release(destination: string): Promise<void>;
  /** Releases every lease held. */
  close(): Promise<void>;
}

export class DestinationLeases implements DestinationGate {
  private readonly held = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly opts: { redis: Redis; prefix: string; nodeId: string; leaseMs?: number; logger: Logger },
  ) {
    this.timer = setInterval(() => void this.renewAll(), Math.floor(this.leaseMs / 3));
    this.timer.unref();
  }

  private get leaseMs(): number {
    return this.opts.leaseMs ?? 30_000;
  }

  private key(destination: string): string {
    return `${this.opts.prefix}fed:dest:${destination}`;
  }

  async acquire(destination: string): Promise<boolean> {
    try {
      const ok = (await this.opts.redis.eval(TAKE, 1, this.key(destination), this.opts.nodeId, String(this.leaseMs))) === 1;
      if (ok) this.held.add(destination);
      else this.held.delete(destination);
      return ok;
    } catch (err) {
      this.opts.logger.warn({ err, destination }, 'federation: could not take the destination lease; sending later');
      return false;
    }
  }

  async release(destination: string): Promise<void> {
    if (!this.held.delete(destination)) return;
    try {
      await this.opts.redis.eval(RELEASE, 1, this.key(destination), this.opts.nodeId);
    } catch (err) {
      // It lapses at its TTL; until then other workers wait for it.
      this.opts.logger.warn({ err, destination }, 'federation: could not release the destination lease');
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.held].map((d) => this.release(d)));
  }

  private async renewAll(): Promise<void> {
    for (const d of [...this.held]) await this.acquire(d);
  }
}

/** The sender's cluster options: leases on the shared Redis, and a node ID for transaction IDs. */
export function destinationLeases(redis: RedisSharedState, logger: Logger): { gate: DestinationGate; nodeId: string } {
  const nodeId = randomBytes(6).toString('hex');
  return { gate: new DestinationLeases({ redis: redis.client, prefix: redis.prefix, nodeId, logger }), nodeId };
}
