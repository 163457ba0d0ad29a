// Outbound federation across workers: one sender per destination at a time. Every worker that
// sends transactions (federation_out, and any worker relaying EDUs it produced) takes the
// destination's lease in Redis before each transaction and keeps it while its queue for that
// destination is not empty; another worker with something for the same destination waits for
// the lease. So a destination sees one transaction in flight from this server at a time, as the
// server-server spec expects of one origin, however many workers send.
//
// Invariants:
// - A lease is one key `<prefix>fed:dest:<server>` holding the holder's node ID, taken, renewed
//   and released by the shared rules of src/cluster/leases.ts; a worker that dies loses its
//   leases at the TTL, after which another federation_out worker sends from the shared queue
//   (the store's federationQueue), resuming the dead worker's transaction in flight with its txnId.
// - Redis unreachable: no lease, nothing is sent (the shared queue keeps everything),
//   and sending resumes when Redis is back. Failing closed keeps the one-at-a-time rule.

import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RedisLeases } from './leases.js';
import type { RedisSharedState } from './redis.js';

/** What FederationSender asks before each transaction (src/federation/sender.ts). */
export interface DestinationGate {
  /** True when this worker holds (took or renewed) the destination's lease. */
  acquire(destination: string): Promise<boolean>;
  /** This worker has nothing queued for the destination now. */
  release(destination: string): Promise<void>;
  /** Releases every lease held. */
  close(): Promise<void>;
}

/** One lease per destination, `<prefix>fed:dest:<server>` (the lease rules: src/cluster/leases.ts). */
export class DestinationLeases extends RedisLeases implements DestinationGate {
  constructor(opts: { redis: Redis; prefix: string; nodeId: string; leaseMs?: number; logger: Logger }) {
    super({ ...opts, namespace: 'fed:dest:', leaseMs: opts.leaseMs ?? 30_000, what: 'federation' });
  }
}

/** The sender's cluster options: leases on the shared Redis, and a node ID for transaction IDs. */
export function destinationLeases(redis: RedisSharedState, logger: Logger, leaseMs?: number): { gate: DestinationGate; nodeId: string } {
  const nodeId = randomBytes(6).toString('hex');
  return { gate: new DestinationLeases({ redis: redis.client, prefix: redis.prefix, nodeId, leaseMs, logger }), nodeId };
}
