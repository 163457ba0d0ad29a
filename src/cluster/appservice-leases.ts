// Application-service delivery across workers: one deliverer per AS at a time, through a lease
// per AS in Redis (`<prefix>as:lease:<id>`, the shared rules of src/cluster/leases.ts). Every
// worker with app_service_delivery.enabled contends; the holder delivers from the position the
// store records, and when it dies its lease lapses and another worker continues from there.
//
// Invariants:
// - The transaction being sent is kept in `<prefix>as:txn:<id>` (its ID, events and last stream
//   position) before its first attempt; a successor resends exactly it when the store's
//   lastTxnId is the one before it. Kept for a day, far past any lease.
// - Redis unreachable: no lease is taken or renewed, so nobody delivers; delivery resumes (from
//   the stored position) once Redis answers.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { DeliveryGate, InFlightTransaction } from '../appservice/gate.js';
import { parseTrustedJson } from '../protocol/canonical-json.js';
import { RedisLeases } from './leases.js';
import type { RedisSharedState } from './redis.js';

const IN_FLIGHT_TTL_S = 86_400;

export class AppServiceLeases implements DeliveryGate {
  private readonly leases: RedisLeases;
  private readonly lostListeners: Array<(id: string) => void> = [];
  readonly retryMs: number;

  constructor(private readonly redis: RedisSharedState, opts: { leaseMs: number; logger: Logger; nodeId?: string }) {
    this.retryMs = Math.max(1, Math.floor(opts.leaseMs / 3));
    this.leases = new RedisLeases({
      redis: redis.client,
      prefix: redis.prefix,
      namespace: 'as:lease:',
      nodeId: opts.nodeId ?? randomBytes(6).toString('hex'),
      leaseMs: opts.leaseMs,
      logger: opts.logger,
      what: 'app service delivery',
      onLost: (id) => {
        for (const l of this.lostListeners) l(id);
      },
    });
  }

  get nodeId(): string {
    return this.leases.nodeId;
  }

  acquire(appServiceId: string): Promise<boolean> {
    return this.leases.acquire(appServiceId);
  }

  validMs(appServiceId: string): number {
    return this.leases.validMs(appServiceId);
  }

  release(appServiceId: string): Promise<void> {
    return this.leases.release(appServiceId);
  }

  onLost(listener: (appServiceId: string) => void): void {
    this.lostListeners.push(listener);
  }

  async saveInFlight(appServiceId: string, txn: InFlightTransaction): Promise<void> {
    await this.redis.client.set(this.txnKey(appServiceId), JSON.stringify(txn), 'EX', IN_FLIGHT_TTL_S);
  }

  async loadInFlight(appServiceId: string): Promise<InFlightTransaction | null> {
    const text = await this.redis.client.get(this.txnKey(appServiceId));
    if (text === null) return null;
    const t = parseTrustedJson<InFlightTransaction>(text);
    if (!Number.isSafeInteger(t.id) || !Number.isSafeInteger(t.lastStream) || !Array.isArray(t.events)) return null;
    return t;
  }

  close(): Promise<void> {
    return this.leases.close();
  }

  private txnKey(appServiceId: string): string {
    return `${this.redis.prefix}as:txn:${appServiceId}`;
  }
}
