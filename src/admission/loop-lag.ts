// How late the event loop is, for admission (admission.ts). A timer runs every `everyMs`; its
// lateness is smoothed (about five samples: one long task must not shed, a sustained backlog
// must). Between two runs, the time since the last one shows a stall while it lasts: in one long
// poll phase (thousands of requests readable at once) the timer cannot run, so its smoothed
// figure is stale exactly when it matters, while `now - lastRun` grows with every request read.
// A stall refuses only once it has seen a flood of requests (FLOOD): one request read after a
// GC pause or a descheduling has waited behind nobody.
//
// Invariants: reading is cheap (a subtraction; called on every shed-class request); the timer is
// unref'd and stopped by close().

/** Checks (shed-class requests) in one stall past which the stall counts as a flood. */
const FLOOD = 64;

export class LoopLag {
  private smoothed = 0;
  /** Checks since the timer last ran. */
  private asked = 0;
  private lastRun: number;
  private timer: NodeJS.Timeout | null;

  /**
   * `maxMs`: smoothed lateness above which the loop counts as late; a stall counts from twice
   * that (a single GC pause or long task should not refuse work, a poll phase of that length has
   * kept every request in it waiting as long).
   */
  constructor(
    private readonly maxMs: number,
    private readonly everyMs: number,
    private readonly now: () => number,
  ) {
    this.lastRun = now();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  /** Whether new work should be refused now; each call counts as one request asking. */
  late(now: number): boolean {
    if (this.smoothed > this.maxMs) return true;
    // A stall with few requests in it is a GC pause or the machine busy elsewhere: the request
    // read after it has not waited behind others. Many requests in one stall are a flood.
    return ++this.asked > FLOOD && now - this.lastRun - this.everyMs > 2 * this.maxMs;
  }

  /** The larger of the smoothed lateness and the current stall, in ms. */
  lateness(now: number): number {
    return Math.max(this.smoothed, now - this.lastRun - this.everyMs);
  }

  private sample(): void {
    const now = this.now();
    const late = Math.max(0, now - this.lastRun - this.everyMs);
    this.lastRun = now;
    this.asked = 0;
    this.smoothed = 0.8 * this.smoothed + 0.2 * late;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
