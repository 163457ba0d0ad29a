// How late the event loop is, for admission (admission.ts). A timer runs every `everyMs`; its
// lateness is smoothed (about five samples: one long task must not shed, a sustained backlog
// must). Between two runs, the time since the last one shows a stall while it lasts: in one long
// poll phase (thousands of requests readable at once) the timer cannot run, so its smoothed
// figure is stale exactly when it matters, while `now - lastRun` grows with every request read.
// A stall refuses only once it has seen a flood of requests (FLOOD): one request read after a
// GC pause or a descheduling has waited behind nobody.
//
// Lateness counts only the share of it this process spent on the CPU (process.cpuUsage over the
// same wall time): on a busy machine the timer is also late while the server sits descheduled,
// and refusing work then sheds what the server could have done without shortening anything the
// server controls. What it controls is its own work per loop turn; that is what is measured.
// On a machine with a core to spare the share is ~1 and lateness is wall time.
//
// Hysteresis: once the smoothed lateness passes `maxMs` the loop counts as late until it falls
// under half of it, so shedding does not flap on and off with every sample (each flap admits a
// burst that pushes the loop straight back over).
//
// Invariants: reading is cheap (a subtraction; called on every shed-class request; the CPU
// clock is read only while a stall already exceeds the budget in wall time); the timer is
// unref'd and stopped by close().

/** Checks (shed-class requests) in one stall past which the stall counts as a flood. */
const FLOOD = 64;

/** The process's CPU time (all threads, user + system), in ms. */
export function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export class LoopLag {
  private smoothed = 0;
  /** Checks since the timer last ran. */
  private asked = 0;
  private lastRun: number;
  private lastCpu: number;
  /** Set once smoothed > maxMs, cleared once smoothed < maxMs / 2. */
  private shedding = false;
  private timer: NodeJS.Timeout | null;

  /**
   * `maxMs`: smoothed lateness above which the loop counts as late (until it is under half of
   * it again); a stall counts from twice that (a single GC pause or long task should not refuse
   * work, a poll phase of that length has kept every request in it waiting as long).
   * `cpuMs`: the process's CPU clock (processCpuMs; tests pass a fake one with their `now`).
   */
  constructor(
    private readonly maxMs: number,
    private readonly everyMs: number,
    private readonly now: () => number,
    private readonly cpuMs: () => number = processCpuMs,
  ) {
    this.lastRun = now();
    this.lastCpu = cpuMs();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  /** Whether new work should be refused now; each call counts as one request asking. */
  late(now: number): boolean {
    if (this.shedding) return true;
    // A stall with few requests in it is a GC pause or the machine busy elsewhere: the request
    // read after it has not waited behind others. Many requests in one stall are a flood.
    if (++this.asked <= FLOOD) return false;
    const budget = 2 * this.maxMs;
    const stall = now - this.lastRun - this.everyMs;
    // The CPU spent in this turn is at most its wall time: only read the clock when it matters.
    return stall > budget && this.cpuMs() - this.lastCpu > budget;
  }

  /**
   * Whether this loop turn has already spent `budgetMs` on the CPU since the timer last ran (no
   * request counted). In a busy loop the timer runs at the start of every turn; in an idle one
   * up to `everyMs` earlier, but idle time is no CPU time. Wall time first: CPU time is at most
   * that, and reading it is a syscall.
   */
  turnSpent(now: number, budgetMs: number): boolean {
    return now - this.lastRun > budgetMs && this.cpuMs() - this.lastCpu > budgetMs;
  }

  /** The larger of the smoothed lateness and the current stall (wall time), in ms. */
  lateness(now: number): number {
    return Math.max(this.smoothed, now - this.lastRun - this.everyMs);
  }

  /** One timer run: the timer calls it every `everyMs` (tests may drive it with a fake clock). */
  sample(): void {
    const now = this.now();
    const cpu = this.cpuMs();
    const wall = now - this.lastRun;
    const late = Math.max(0, wall - this.everyMs);
    const share = wall > 0 ? Math.min(1, Math.max(0, cpu - this.lastCpu) / wall) : 1;
    this.lastRun = now;
    this.lastCpu = cpu;
    this.asked = 0;
    this.smoothed = 0.8 * this.smoothed + 0.2 * late * share;
    if (this.smoothed > this.maxMs) this.shedding = true;
    else if (this.smoothed < this.maxMs / 2) this.shedding = false;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
