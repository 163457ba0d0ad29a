// What application-service delivery needs from a cluster so that each AS has one deliverer at a
// time (the implementation: src/cluster/appservice-leases.ts). On a single node there is no gate
// and the process delivers to every AS, as it always did.
//
// Invariants:
// - A sender delivers only while acquire() keeps answering true for its AS; it asks before every
//   transaction attempt, and stops as soon as the answer is false or the lease is reported lost.
//   Right before sending it checks validMs() (renewing first when it ran out, as after a freeze),
//   and a request still in flight when the lease stops being sure is aborted.
// - Before a transaction is sent for the first time it is saved (saveInFlight), so a worker that
//   takes over after the deliverer died sends that same transaction (same ID, same events) if
//   the store does not record it as acknowledged: the AS, which deduplicates by ID, then sees a
//   retry, never a different transaction under an ID it already acknowledged.

import type { ClientEvent } from '../room/client-event.js';

export interface InFlightTransaction {
  id: number;
  events: ClientEvent[];
  /** The stream position of its last event. */
  lastStream: number;
}

export interface DeliveryGate {
  /** Takes or renews the AS's lease: true when this worker may deliver to it now. */
  acquire(appServiceId: string): Promise<boolean>;
  /**
   * How long this worker's lease is sure to last without a renewal (monotonic clock, so a frozen
   * process wakes with it run out). Checked right before each send and watched while it is in
   * flight.
   */
  validMs(appServiceId: string): number;
  /** This worker stops delivering to the AS (shutdown). */
  release(appServiceId: string): Promise<void>;
  /** Registers the listener told when a held lease was lost (taken, or not renewable). */
  onLost(listener: (appServiceId: string) => void): void;
  /** How often a worker not delivering to an AS tries to take its lease. */
  readonly retryMs: number;
  saveInFlight(appServiceId: string, txn: InFlightTransaction): Promise<void>;
  loadInFlight(appServiceId: string): Promise<InFlightTransaction | null>;
  /** Releases every lease held and stops renewing. */
  close(): Promise<void>;
}
