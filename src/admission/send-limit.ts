// The measured send limit (see admission.ts): how many sends may be in flight, from how long
// they take in the server and how fast they complete.
//
// Time is cut into intervals. An interval whose fastest completed send took longer than the
// target has a standing queue: not a burst, which the interval's early sends would have gone
// through fast. After such an interval the limit is what the completion rate just measured
// serves within the target (Little's law: in flight = rate × time), but at most halved per
// interval and never below `floor`. While not limiting, the first such interval after a stall
// (an interval without completions, or a gap of several) does not start it: the sends completed
// then (a GC pause, a slow fsync under a normal load) all carry that stall while its backlog
// drains; one interval of them is not a standing queue, and limiting on it refused sends of a
// load far under capacity. A second one in a row does. (Nor does the count admitted in that
// interval tell an overload's onset from a stall's backlog: a loop stall hands the poll phase
// after it every send that arrived meanwhile at once.) An interval in which no send completed measures no rate (a
// stall): if sends have waited past the target meanwhile, the limit is held at the number in
// flight, while limiting or while sends still arrive faster than twice the last interval with
// completions completed (an overload meeting a stall); a normal load's arrivals through a stall
// are left to max_send_delay_ms (refusing them would not shorten the stall). After an interval
// under target the limit grows by a quarter, until it stops limiting (Infinity).
// The target must be well above a send's unloaded time (a commit and its fsync): sends that
// can never be faster than it would drive the limit down to the floor, where throughput is
// `floor` per send time.
//
// Invariants: `current` and `completed` are O(1) and allocate nothing; the limit only moves at
// interval boundaries; it is never below `floor` and never above `max` (Infinity stands for max).

export interface SendLimitOptions {
  targetMs: number;
  intervalMs: number;
  /** The configured hard cap (max_inflight_sends). */
  max: number;
  /** The limit never goes below this. */
  floor?: number;
}

export class SendLimit {
  private limit = Number.POSITIVE_INFINITY;
  private windowStart = Number.NEGATIVE_INFINITY;
  private windowMin = Number.POSITIVE_INFINITY;
  private windowDone = 0;
  /** Sends admitted in this interval (admitted()). */
  private windowAdmitted = 0;
  /** Sends completed in the last interval that had any. */
  private lastDone = 0;
  /** Set by a stall (no completions in an interval, or a gap); cleared by the next interval with completions. */
  private afterStall = false;
  private readonly floor: number;

  constructor(private readonly opts: SendLimitOptions) {
    this.floor = Math.min(opts.max, opts.floor ?? 16);
  }

  /** The limit now, with `inflight` sends in flight, the oldest of them `oldestMs` old. */
  current(now: number, inflight: number, oldestMs: number): number {
    if (now - this.windowStart >= this.opts.intervalMs) this.roll(now, inflight, oldestMs);
    return this.limit;
  }

  /** A send was admitted (after current() allowed it). */
  admitted(): void {
    this.windowAdmitted++;
  }

  /** A send finished after `tookMs` in the server; `inflight` are still in flight. */
  completed(tookMs: number, now: number, inflight: number, oldestMs: number): void {
    if (now - this.windowStart >= this.opts.intervalMs) this.roll(now, inflight, oldestMs);
    this.windowDone++;
    if (tookMs < this.windowMin) this.windowMin = tookMs;
  }

  private roll(now: number, inflight: number, oldestMs: number): void {
    const elapsed = now - this.windowStart;
    // The first call, or after a quiet spell of several intervals: nothing measured to act on.
    if (elapsed < 2 * this.opts.intervalMs) this.adjust(elapsed, inflight, oldestMs);
    else {
      this.afterStall = true;
      if (this.windowDone === 0 && inflight === 0) this.limit = Number.POSITIVE_INFINITY;
    }
    this.windowStart = now;
    this.windowMin = Number.POSITIVE_INFINITY;
    this.windowDone = 0;
    this.windowAdmitted = 0;
  }

  private adjust(elapsed: number, inflight: number, oldestMs: number): void {
    const target = this.opts.targetMs;
    if (this.windowDone === 0) {
      // No send completed: a stall (the loop, the disk) measures no rate, but in an overload
      // sends waiting longer than the target must not be joined by more until something drains.
      const overloaded = Number.isFinite(this.limit) || this.windowAdmitted > 2 * Math.max(this.floor, this.lastDone);
      if (oldestMs > target && overloaded) this.limit = Math.min(this.limit, Math.max(this.floor, inflight));
      this.afterStall = true;
      return;
    }
    this.lastDone = this.windowDone;
    const standing = this.windowMin > target;
    const backlog = this.afterStall;
    this.afterStall = false;
    if (standing && !Number.isFinite(this.limit) && backlog) return;
    if (standing) {
      const served = Math.ceil((this.windowDone / elapsed) * target);
      // At most halved per interval: an interval cut short by a descheduling or a GC pause
      // measures a low rate, and one such interval must not throttle the next hundred.
      const halved = Math.floor(Math.min(this.limit, inflight) / 2);
      this.limit = Math.min(this.opts.max, Math.max(this.floor, served, halved));
    } else if (Number.isFinite(this.limit)) {
      const grown = Math.ceil(this.limit * 1.25);
      this.limit = grown >= this.opts.max ? Number.POSITIVE_INFINITY : grown;
    }
  }
}
