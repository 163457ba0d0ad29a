// How late the event loop is, for admission (admission.ts). A timer runs every `everyMs`; its
// lateness is smoothed (about five samples: one long task must not shed, a sustained backlog
// must). Between two runs, the time since the last one shows a stall while it lasts: in one long
// poll phase (thousands of requests readable at once) the timer cannot run, so its smoothed
// figure is stale exactly when it matters, while `now - lastRun` grows with every request read.
// A stall refuses only once a flood of requests (FLOOD) has been read after it passed its budget:
// one request read after a GC pause or a descheduling has waited behind nobody. One sample's
// lateness is capped (3 × max), so one long turn alone never turns the loop late: a normal load
// has the odd long turn (a major GC), and refusing the requests it delayed sheds nothing the
// server could not do.
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
// clock is read only while a stall already exceeds the budget in wall time, and then at most
// once per millisecond); the timer is
// unref'd and stopped by close().

/** Checks (shed-class requests) in one stall past which the stall counts as a flood. */
const FLOOD = 64;

/** Wall time over which one CPU clock reading serves the checks of a turn (turnCpu). */
const CPU_READ_MS = 1;

/** A sample's lateness counts at most this many times `maxMs` (see sample()). */
const SAMPLE_CAP = 3;

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
  /** The last CPU clock reading within a turn and its wall time (turnCpu). */
  private cpuRead = 0;
  private cpuReadAt = Number.NEGATIVE_INFINITY;
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
    return this.lateReason(now) !== null;
  }

  /**
   * Why new work should be refused now: 'lag' (the smoothed lateness, with hysteresis), 'stall'
   * (a flood read in one overlong turn), or null. Each call past the stall budget counts as one
   * request read in the stall.
   */
  lateReason(now: number): 'lag' | 'stall' | null {
    if (this.shedding) return 'lag';
    const budget = 2 * this.maxMs;
    const stall = now - this.lastRun - this.everyMs;
    if (stall <= budget) return null;
    // Only requests read once the turn is already past the budget count towards the flood: a
    // GC pause or one long task in the middle of an ordinary poll phase is followed by the few
    // requests left in its batch, not by a flood (the backlog it built up is read in the next
    // poll phase, after the timer has run). Many requests read past the budget are a flood.
    if (++this.asked <= FLOOD) return null;
    // The CPU spent in this turn is at most its wall time: only read the clock when it matters.
    return this.turnCpu(now) - this.lastCpu > budget ? 'stall' : null;
  }

  /**
   * Whether this loop turn has already spent `budgetMs` on the CPU since the timer last ran (no
   * request counted). In a busy loop the timer runs at the start of every turn; in an idle one
   * up to `everyMs` earlier, but idle time is no CPU time. Wall time first: CPU time is at most
   * that, and reading it is a syscall.
   */
  turnSpent(now: number, budgetMs: number): boolean {
    return now - this.lastRun > budgetMs && this.turnCpu(now) - this.lastCpu > budgetMs;
  }

  /**
   * The CPU clock for the checks within a turn, read at most once per CPU_READ_MS of wall time:
   * in a long turn every shed-class request asks (pacing, the flood), and each read is a
   * getrusage syscall summing every thread of the process (a profile of the overload scenario
   * had ~5 % of the server's samples in it, loaded). Its error is at most CPU_READ_MS of CPU.
   */
  private turnCpu(now: number): number {
    if (now - this.cpuReadAt >= CPU_READ_MS || now < this.cpuReadAt) {
      this.cpuRead = this.cpuMs();
      this.cpuReadAt = now;
    }
    return this.cpuRead;
  }

  /** The larger of the smoothed lateness and the current stall (wall time), in ms. */
  lateness(now: number): number {
    return Math.max(this.smoothed, now - this.lastRun - this.everyMs);
  }

  /** One timer run: the timer calls it every `everyMs` (tests may drive it with a fake clock). */
  sample(): void {
    const now = this.now();
    const cpu = this.cpuMs();
    this.cpuRead = cpu;
    this.cpuReadAt = now;
    const wall = now - this.lastRun;
    // One sample is one loop turn however long it was: capped, so that a single long turn (a
    // GC pause, one slow task under a normal load) cannot turn the loop late on its own (0.2 ×
    // 3 × max is under max); a second long turn soon after does, and so does a run of late ones.
    const late = Math.min(Math.max(0, wall - this.everyMs), SAMPLE_CAP * this.maxMs);
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
