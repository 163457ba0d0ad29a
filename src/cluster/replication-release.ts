// What the replication stream's listeners get as the cluster watermark advances: change records
// (local and remote) held until the watermark passes them, and the resets that stand for records
// the feed may have lost (src/cluster/replication.ts has the mechanism as a whole).
//
// Invariants:
// - Records are handed out in position order, each once, only when the watermark has passed it:
//   a reader bounded by the watermark never skips a write still in flight on another worker.
// - Records are hints for caches (see src/store/change-types.ts): when the feed may have lost
//   some (Redis restarted, the stream was trimmed past us, a worker was dropped, the buffer
//   overflowed), listeners get a `reset` record instead and fall back to the store.
// - A reset must reach past every record it stands for. Lost records lie above the watermark
//   when the loss is seen (their worker's promise covered none of them yet) but may lie above the
//   next watermark too, and a reset at a lower position would leave caches claiming nothing
//   changed there once the watermark passes them. So the reset names the horizon, how far up
//   the lost records may lie (consumers hold nothing from memory at or below it: they read those
//   positions from the store, the resync), and a second reset once the watermark reaches the
//   horizon wakes every reader, whose lost writes just became readable.
// - A buffer past `maxBuffered` records is dropped for a reset whose horizon covers them.

import type { ChangeRecord } from '../store/change-types.js';

export class RecordRelease {
  private buffer: ChangeRecord[] = [];
  private pendingReset = false;
  /** How far up the records the pending reset stands for may lie (see the header). */
  private resetHorizon = -Infinity;
  /** A reset named this horizon above the watermark: wake every reader once it is reached. */
  private wakeAt: number | null = null;

  constructor(private readonly maxBuffered: number) {}

  /** Records (or a reset) wait for the watermark to pass them. */
  get pending(): boolean {
    return this.buffer.length > 0 || this.pendingReset || this.wakeAt !== null;
  }

  /** This worker's own records: they need no round trip, and come at the pace of its writes. */
  keep(records: ChangeRecord[]): void {
    for (const c of records) this.buffer.push(c);
  }

  /** Records read from another worker; past `maxBuffered` the buffer makes way for a reset. */
  receive(records: ChangeRecord[]): void {
    for (const c of records) this.buffer.push(c);
    if (this.buffer.length > this.maxBuffered) {
      for (const c of this.buffer) this.resetHorizon = Math.max(this.resetHorizon, c.stream);
      this.buffer = [];
      this.pendingReset = true;
    }
  }

  /** Records may have been lost below the next watermark: reset when it advances. */
  reset(): void {
    this.pendingReset = true;
  }

  /** Records were lost up to `horizon` (see the header); returns the pending reset's horizon. */
  lost(horizon: number): number {
    this.pendingReset = true;
    this.resetHorizon = Math.max(this.resetHorizon, horizon);
    return this.resetHorizon;
  }

  /** What listeners get now that the watermark advanced to `next`. */
  release(next: number): ChangeRecord[] {
    const ready: ChangeRecord[] = [];
    if (this.buffer.length > 0) {
      this.buffer.sort((a, b) => a.stream - b.stream);
      let i = 0;
      while (i < this.buffer.length && this.buffer[i]!.stream <= next) i++;
      ready.push(...this.buffer.splice(0, i));
    }
    if (this.pendingReset) {
      // Records lost up to the horizon may still be above the watermark: the reset covers them,
      // and the readers are woken again when they become readable.
      this.pendingReset = false;
      ready.length = 0;
      ready.push({ kind: 'reset', stream: Math.max(next, this.resetHorizon) });
      if (this.wakeAt !== null && next >= this.wakeAt) this.wakeAt = null;
      if (this.resetHorizon > next) this.wakeAt = Math.max(this.wakeAt ?? -Infinity, this.resetHorizon);
      this.resetHorizon = -Infinity;
    } else if (this.wakeAt !== null && next >= this.wakeAt) {
      this.wakeAt = null;
      ready.length = 0;
      ready.push({ kind: 'reset', stream: next });
    }
    return ready;
  }
}
