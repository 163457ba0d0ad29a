// Hands out global stream positions and tracks the "persisted up to" watermark.
//
// Positions are reserved before a write starts and finished (completed or abandoned) once the
// write is durable or has definitely failed. Writes can finish out of order (a small batch may
// commit before a big one that reserved earlier positions), so the watermark must stop at the
// lowest unfinished position: a sync that read `current()` and then saw position N+2 must never
// later miss position N+1 (the "Conduit trap"). Abandoned positions count as finished because
// nothing was, or ever will be, written there.
//
// Backend-independent: SQLite drives it from its write queue; other backends can do the same.
//
// Positions need not be dense: with a `next` function (the Cassandra backend's per-worker clock,
// see cassandra/positions.ts) reserve() hands out any strictly increasing sequence, and the
// watermark is "just below the lowest unfinished position, else the last reserved one", which for
// dense positions is the same rule.
//
// It is also the one completion hook: a position may be completed with a change record saying
// what it wrote, and `onChanges` listeners receive those records in position order exactly when
// the watermark passes them (records above a gap are held back with their positions). Listeners
// run synchronously before anything else sees the new watermark, so a cache fed here is never
// behind a reader bounded by `current()`.

import type { ChangeRecord } from './change-types.js';

export type AdvanceListener = (current: number) => void;
export type ChangeListener = (changes: ChangeRecord[], current: number) => void;

export class StreamIdGenerator {
  private lastReserved: number;
  private watermark: number;
  /** Reserved but not yet finished. */
  private readonly inFlight = new Set<number>();
  /** Every position reserved and not yet passed by the watermark, in reservation (= numeric) order. */
  private pending: number[] = [];
  private pendingHead = 0;
  private readonly next: (last: number) => number;
  private readonly listeners = new Set<AdvanceListener>();
  private readonly changeListeners = new Set<ChangeListener>();
  /** Change records of finished positions the watermark has not passed yet. */
  private readonly heldChanges = new Map<number, ChangeRecord>();
  private waiters: { pos: number; resolve: () => void }[] = [];

  private readonly onListenerError: (err: unknown) => void;

  /** `initial` is the highest position already durable; the first reservation is `initial + 1`. */
  /**
   * `next(last)` returns the position to hand out after `last` (default last + 1); it must be
   * strictly greater than `last`.
   */
  constructor(initial: number, opts: { onListenerError?: (err: unknown) => void; next?: (last: number) => number } = {}) {
    // A throwing listener must not stop the others or the caller that finished the position
    // (typically the write queue, which still has promises to settle).
    this.onListenerError = opts.onListenerError ?? ((err) => console.error('stream listener failed', err));
    if (!Number.isSafeInteger(initial) || initial < 0) {
      throw new RangeError(`invalid initial stream position: ${initial}`);
    }
    this.lastReserved = initial;
    this.watermark = initial;
    this.next = opts.next ?? ((last) => last + 1);
  }

  reserve(): number {
    const pos = this.next(this.lastReserved);
    if (!Number.isSafeInteger(pos) || pos <= this.lastReserved) {
      throw new RangeError(`stream position ${pos} does not follow ${this.lastReserved}`);
    }
    this.lastReserved = pos;
    this.inFlight.add(pos);
    this.pending.push(pos);
    return pos;
  }

  /** The write at `pos` is durable and visible to readers; `change` says what it wrote. */
  complete(pos: number, change?: ChangeRecord | null): void {
    if (change && this.inFlight.has(pos)) this.heldChanges.set(pos, change);
    this.finish(pos);
  }

  /** The write at `pos` failed; nothing was written there. */
  abandon(pos: number): void {
    this.finish(pos);
  }

  /**
   * complete() / abandon() for several positions at once (a committed batch): every position is
   * finished first, then the watermark passes them and the listeners run once with all of their
   * records, as if one call had finished the last of them. Positions are checked before any is
   * finished, so a bad one changes nothing.
   */
  finishAll(entries: ReadonlyArray<{ pos: number; change: ChangeRecord | null; ok: boolean }>): void {
    for (const e of entries) {
      if (!this.inFlight.has(e.pos)) throw new Error(`stream position ${e.pos} is not in flight`);
    }
    if (new Set(entries.map((e) => e.pos)).size !== entries.length) throw new Error('a stream position is finished twice');
    for (const e of entries) {
      if (e.ok && e.change) this.heldChanges.set(e.pos, e.change);
      this.inFlight.delete(e.pos);
    }
    this.advance();
  }

  /** Highest P such that every position <= P is finished. */
  current(): number {
    return this.watermark;
  }

  /** Highest position handed out so far (finished or not). */
  maxReserved(): number {
    return this.lastReserved;
  }

  /** Number of reserved positions not yet finished. */
  inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Called synchronously whenever the watermark advances. Returns an unsubscribe function. */
  onAdvance(listener: AdvanceListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Called synchronously, before advance listeners, with the change records of every position
   * the watermark just passed (in order). Returns an unsubscribe function.
   */
  onChanges(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => {
      this.changeListeners.delete(listener);
    };
  }

  /** Resolves once `current() >= pos` (immediately if it already is). */
  waitFor(pos: number): Promise<void> {
    if (this.watermark >= pos) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ pos, resolve });
    });
  }

  private finish(pos: number): void {
    if (!this.inFlight.delete(pos)) {
      // Finishing twice, or a position never handed out, means the caller's bookkeeping is
      // broken; advancing anyway could publish a position whose data is not there.
      throw new Error(`stream position ${pos} is not in flight`);
    }
    this.advance();
  }

  /** Moves the watermark over every finished position at the front and tells the listeners. */
  private advance(): void {
    const before = this.watermark;
    // Pass every finished position at the front; stop at the first one still in flight.
    const passed: number[] = [];
    while (this.pendingHead < this.pending.length && !this.inFlight.has(this.pending[this.pendingHead]!)) {
      passed.push(this.pending[this.pendingHead++]!);
    }
    if (this.pendingHead === this.pending.length) {
      this.pending = [];
      this.pendingHead = 0;
    } else if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead);
      this.pendingHead = 0;
    }
    if (passed.length === 0) return;
    this.watermark = passed[passed.length - 1]!;
    const now = this.watermark;
    if (now === before) return;
    if (this.heldChanges.size > 0 || this.changeListeners.size > 0) {
      const changes: ChangeRecord[] = [];
      for (const p of passed) {
        if (this.heldChanges.size === 0) break;
        const c = this.heldChanges.get(p);
        if (c === undefined) continue;
        this.heldChanges.delete(p);
        changes.push(c);
      }
      for (const listener of [...this.changeListeners]) {
        try {
          listener(changes, now);
        } catch (err) {
          this.onListenerError(err);
        }
      }
    }
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.pos <= now);
      if (ready.length > 0) {
        this.waiters = this.waiters.filter((w) => w.pos > now);
        for (const w of ready) w.resolve();
      }
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(now);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }
}
