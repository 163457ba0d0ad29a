// Load shedding: past capacity, refuse new work early and cheaply instead of letting every
// request slow down together. Two kinds of new work are admitted here:
// - sends (client events through RoomService.send): refused with 429 M_LIMIT_EXCEEDED and a
//   jittered `retry_after_ms` when more are in flight than the send limit (below), when the
//   oldest one in flight has waited longer than `maxSendDelayMs` (a stall: nothing drains), or
//   when the event loop is late;
// - catch-ups (every /sync long-poll until it has its answer or parks waiting, and every
//   socket's catch-up sync, first or resumed): refused with 503 and a jittered `retry_after_ms`
//   when too many are being built at once or the event loop is late.
//
// The send limit is measured, not configured as a rate (send-limit.ts): while the sends'
// in-server time (admission to answer) stays above `sendTargetMs` for a whole interval (a
// standing queue, CoDel's test: the interval's fastest send was slow), the number in flight is
// capped at what the measured completion rate serves within the target (Little's law); once an
// interval's fastest send is under target again the cap is lifted step by step. Admitted sends
// so wait about the target, not for a queue that grows with the offer.
//
// The event loop's lateness is read two ways (LoopLag): smoothed over the timer's recent
// samples, and right now: how long since the lag timer last ran. The second catches a long
// poll phase (thousands of requests readable at once, each waiting its turn in the kernel) while
// it happens: requests read late in it are refused, which shortens it, instead of being admitted
// on the word of a timer that has not run since before it began. Both count only the time the
// server itself was on the CPU (a busy machine delays the timer too, and shedding cannot help
// that), and the smoothed one has hysteresis: late from `maxLagMs`, on time again under half.
//
// Pacing: node reads every readable connection in one poll phase, so a burst of sends or of
// re-issued long-polls (every client woken by the same event comes back at once) all run their
// first steps in the same loop turn, and a cheap request read after them (/versions) waits for
// all of it. Once a turn has spent `paceTurnMs` on the CPU (default `maxLagMs / 2`), a
// shed-class request that passes the precheck is not refused but deferred: it waits in one FIFO
// queue, which is drained from a timer (the next turns' timers phase), `paceTurnMs` of work per
// turn, so poll phases with the cheap requests in them come in between and a turn stays near
// twice that (paced work, direct work, the commit batch). The pacing budget is separate from
// the refusal threshold: a short turn for cheap requests does not need an early refusal. While anything waits, new ones queue behind it (no
// overtaking). A queue whose oldest has waited 4 × `maxLagMs` refuses new ones (its requests
// would only wait longer), and one that waited 8 × `maxLagMs` by the time the drain reaches it
// is refused then (a starved process drains slowly: the queue must not hold seconds of work); a deferred send's wait is outside its measured send time (it takes its
// slot after), so this bound, not the send limit, keeps the queue short. Both count only a wait
// behind paced work (a drain pass ran out of budget since the request was queued): under a
// normal load a request deferred just before one long turn (a GC pause) waited for that turn
// alone, the drain resumes the short queue at once, and refusing it would shed a load far
// under capacity.
//
// Every refusal is counted by kind and reason (stats().shedBy, /metrics), so a refusal seen by
// a client can be traced to the rule that made it.
//
// Invariants: admitted work is never cancelled by shedding; a deferred request is always resumed
// or refused (by the drain, or resumed by close); pacing only ever delays, the handler's enter* still decides; every `enter*` that returns a
// release function is balanced by exactly one effective call of it (extra calls are ignored);
// `force` (tests, operators) only ever adds refusals; a refusal allocates nothing (shared
// error objects, only ever rendered, never changed: building an Error captures a stack, a good part of what a refusal
// would cost at thousands a second).

import { MatrixError } from '../errors.js';
import { LoopLag } from './loop-lag.js';
import { SendLimit } from './send-limit.js';

export interface AdmissionOptions {
  /** Catch-ups built at once (HTTP and socket together) before new ones get 503. */
  maxCatchups: number;
  /** Sends in flight before new ones get 429, whatever the measured limit. */
  maxInflightSends: number;
  /** Age of the oldest send in flight above which new ones get 429; 0: off. */
  maxSendDelayMs?: number;
  /** Target of a send's in-server time for the measured send limit; 0: off (maxInflightSends only). */
  sendTargetMs?: number;
  /** How long the sends' time must stay above target before the limit applies (and how often it moves). */
  sendIntervalMs?: number;
  /** Event-loop lag (smoothed, CPU share) above which new sends and catch-ups are refused until it is under half; 0: off. */
  maxLagMs: number;
  /** Base retry_after_ms for a refused send; up to half as much again is added as jitter. */
  sendRetryMs: number;
  /** Base retry_after_ms for a refused catch-up; up to the same again is added as jitter. */
  catchupRetryMs: number;
  /**
   * CPU time a loop turn may spend on shed-class work before the rest is deferred (pacing), and
   * the drain's work per turn; default `maxLagMs / 2`. A cheap request waits about one turn,
   * so this bounds its latency under overload without moving the refusal threshold.
   */
  paceTurnMs?: number;
  /** How often the event-loop lag is sampled. */
  lagSampleMs?: number;
  random?: () => number;
  now?: () => number;
  /** The process's CPU clock in ms (LoopLag: lateness counts only the server's own CPU share). */
  cpuMs?: () => number;
}

/**
 * Why a request was refused: 'forced'; 'full' (maxInflightSends / maxCatchups); 'lag' (the
 * smoothed loop lag); 'stall' (a flood read in one overlong turn); 'limit' (the measured send
 * limit); 'delay' (the oldest send past maxSendDelayMs); 'queue' (the pacing queue's oldest past
 * 4 × maxLagMs); 'stale' (waited 8 × maxLagMs in the pacing queue).
 */
export type ShedReason = 'forced' | 'full' | 'lag' | 'stall' | 'limit' | 'delay' | 'queue' | 'stale';
export const SHED_REASONS: readonly ShedReason[] = ['forced', 'full', 'lag', 'stall', 'limit', 'delay', 'queue', 'stale'];

export interface AdmissionStats {
  catchups: number;
  sends: number;
  lagMs: number;
  shedSends: number;
  shedCatchups: number;
  /** The measured send limit now (Infinity: not limiting). */
  sendLimit: number;
  /** Requests deferred to a later loop turn so far, and waiting now. */
  paced: number;
  pacing: number;
  /** Deferred requests skipped because their client had gone when their turn came. */
  pacedGone: number;
  /** Refusals so far by kind and reason (each kind's sum is shedSends / shedCatchups). */
  shedBy: { send: Record<ShedReason, number>; catchup: Record<ShedReason, number> };
}

interface Paced {
  at: number;
  /** Drain passes cut short by their budget before this one was queued (see `cut`). */
  cut: number;
  kind: 'send' | 'catchup';
  go: () => void;
  no: (refusal: MatrixError) => void;
}

/** Fills a drained queue slot, so the queue holds no resolver once it has run. */
const DONE: Paced = { at: 0, cut: 0, kind: 'send', go: () => {}, no: () => {} };

/** Distinct refusals kept per kind: enough spread for the retries, no allocation per refusal. */
const JITTER_STEPS = 16;

export class Admission {
  private catchups = 0;
  private sends = 0;
  /** Start times of the sends in flight, oldest first (Map keeps insertion order). */
  private readonly sendStarts = new Map<number, number>();
  private nextSend = 0;
  private shedSends = 0;
  private shedCatchups = 0;
  /** Deferred shed-class requests (pacing), oldest first from pacedHead. */
  private readonly paced: Paced[] = [];
  private pacedHead = 0;
  private pacedTotal = 0;
  private pacedGone = 0;
  /**
   * Drain passes so far that stopped on their budget with requests left. A request queued
   * before such a pass has waited behind paced work (the queue is longer than a turn's worth);
   * one queued after the last of them has waited only for the drain's timer, and a long wait
   * then is one long turn (a GC pause, a slow task), not a queue: it is resumed, not refused.
   */
  private cut = 0;
  private readonly shedBy = { send: zeroReasons(), catchup: zeroReasons() };
  private drainTimer: NodeJS.Timeout | null = null;
  private forced = false;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly lag: LoopLag | null;
  private readonly limit: SendLimit | null;
  private readonly paceMs: number;
  private readonly sendRefusals: MatrixError[];
  private readonly catchupRefusals: MatrixError[];

  constructor(private readonly opts: AdmissionOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    this.lag = opts.maxLagMs > 0 ? new LoopLag(opts.maxLagMs, opts.lagSampleMs ?? 10, this.now, opts.cpuMs) : null;
    const target = opts.sendTargetMs ?? 0;
    this.limit = target > 0 ? new SendLimit({ targetMs: target, intervalMs: opts.sendIntervalMs ?? 100, max: opts.maxInflightSends }) : null;
    this.paceMs = opts.paceTurnMs && opts.paceTurnMs > 0 ? opts.paceTurnMs : opts.maxLagMs / 2;
    this.sendRefusals = refusals(opts.sendRetryMs, 0.5, 429);
    this.catchupRefusals = refusals(opts.catchupRetryMs, 1, 503);
  }

  /** Refuse every new send and catch-up (true) until set back (false). */
  force(overloaded: boolean): void {
    this.forced = overloaded;
  }

  /**
   * The same refusal as enterSend/enterCatchup, without taking a slot: the route table asks
   * before it reads a body or checks a token, so a refused request costs next to nothing.
   * The handler's enter* still decides (the state may change while the body is read).
   * Returns a promise when the request is paced (see the header): go on once it resolves.
   */
  precheck(kind: 'send' | 'catchup'): Promise<void> | undefined {
    const why = kind === 'send' ? this.sendRefusal() : this.catchupRefusal();
    if (why !== null) throw this.refusal(kind, why);
    return this.pace(kind);
  }

  private pace(kind: 'send' | 'catchup'): Promise<void> | undefined {
    if (this.lag === null) return undefined;
    const now = this.now();
    const waiting = this.paced.length > this.pacedHead;
    if (!waiting && !this.lag.turnSpent(now, this.paceMs)) return undefined;
    if (waiting) {
      // Refused only when the oldest has waited behind paced work (a drain pass ran out of
      // budget since it was queued), not when one long turn kept the drain's timer waiting.
      const oldest = this.paced[this.pacedHead];
      if (now - oldest.at > 4 * this.opts.maxLagMs && oldest.cut < this.cut) throw this.refusal(kind, 'queue');
    }
    this.pacedTotal++;
    const cut = this.cut;
    return new Promise((go, no) => {
      this.paced.push({ at: now, cut, kind, go, no });
      this.scheduleDrain();
    });
  }

  private scheduleDrain(): void {
    if (this.drainTimer === null) this.drainTimer = setTimeout(this.drain, 0);
  }

  /**
   * Resumes deferred requests oldest first for up to half the lag budget. One at a time through
   * the microtask queue: each resumed request runs its synchronous steps before the clock is
   * read again, so the budget counts their work, not just the resolving.
   */
  private readonly drain = (): void => {
    this.drainTimer = null;
    // Under sustained pacing the queue may never run empty (the only point it is reset): drop
    // the resumed slots once they are half the array, or it grows by a slot per request paced.
    if (this.pacedHead > 0 && this.pacedHead >= this.paced.length - this.pacedHead) {
      this.paced.splice(0, this.pacedHead);
      this.pacedHead = 0;
    }
    const until = this.now() + this.paceMs;
    const stale = 8 * this.opts.maxLagMs;
    const step = (): void => {
      if (this.pacedHead >= this.paced.length) {
        this.paced.length = 0;
        this.pacedHead = 0;
        return;
      }
      const now = this.now();
      if (now > until) {
        this.cut++;
        return this.scheduleDrain();
      }
      const next = this.paced[this.pacedHead];
      this.paced[this.pacedHead++] = DONE;
      // Stale only behind a queue (see `cut`): a request deferred just before one long turn has
      // waited for that turn, and refusing it now would only make its client wait again.
      if (now - next.at > stale && next.cut < this.cut) next.no(this.refusal(next.kind, 'stale'));
      else next.go();
      queueMicrotask(step);
    };
    step();
  };

  /** Counts a deferred request that was skipped once resumed: its client had gone meanwhile. */
  abandoned(): void {
    this.pacedGone++;
  }

  /** Admits a send or throws 429 with retry_after_ms; call the result once the send settles. */
  enterSend(): () => void {
    const why = this.sendRefusal();
    if (why !== null) throw this.refusal('send', why);
    this.sends++;
    this.limit?.admitted();
    const id = this.nextSend++;
    const start = this.now();
    this.sendStarts.set(id, start);
    return this.once(() => {
      this.sends--;
      this.sendStarts.delete(id);
      if (this.limit) {
        const now = this.now();
        this.limit.completed(now - start, now, this.sends, this.oldestSendAge(now));
      }
    });
  }

  /** Why a new send would be refused now, or null. */
  private sendRefusal(): ShedReason | null {
    if (this.forced) return 'forced';
    if (this.sends >= this.opts.maxInflightSends) return 'full';
    const now = this.now();
    const lag = this.lag?.lateReason(now) ?? null;
    if (lag !== null) return lag;
    if (this.limit && this.sends >= this.limit.current(now, this.sends, this.oldestSendAge(now))) return 'limit';
    const max = this.opts.maxSendDelayMs ?? 0;
    return max > 0 && this.oldestSendAge(now) > max ? 'delay' : null;
  }

  private oldestSendAge(now: number): number {
    if (this.sendStarts.size === 0) return 0;
    return now - (this.sendStarts.values().next().value as number);
  }

  /** A shared refusal of the kind, counted as shed (by reason too). */
  private refusal(kind: 'send' | 'catchup', why: ShedReason): MatrixError {
    this.shedBy[kind][why]++;
    if (kind === 'send') {
      this.shedSends++;
      return this.sendRefusals[Math.floor(this.random() * JITTER_STEPS)];
    }
    this.shedCatchups++;
    return this.catchupRefusals[Math.floor(this.random() * JITTER_STEPS)];
  }

  /** Whether a new catch-up would be admitted now (a socket checks before its upgrade). */
  catchupAvailable(): boolean {
    return this.catchupRefusal() === null;
  }

  /** Why a new catch-up would be refused now, or null. */
  private catchupRefusal(): ShedReason | null {
    if (this.forced) return 'forced';
    if (this.catchups >= this.opts.maxCatchups) return 'full';
    return this.lag?.lateReason(this.now()) ?? null;
  }

  /** Admits a catch-up or throws 503 with a jittered retry_after_ms; release when it is answered or parks. */
  enterCatchup(): () => void {
    const why = this.catchupRefusal();
    if (why !== null) throw this.refusal('catchup', why);
    return this.admitCatchup();
  }

  /** Counts a catch-up already admitted elsewhere (a socket accepted at its upgrade). */
  admitCatchup(): () => void {
    this.catchups++;
    return this.once(() => this.catchups--);
  }

  /** Refusals so far of one kind for one reason. */
  shedCount(kind: 'send' | 'catchup', why: ShedReason): number {
    return this.shedBy[kind][why];
  }

  /** Jittered, so refused clients come back spread out rather than in one wave. */
  catchupRetryAfter(): number {
    return this.catchupRefusals[Math.floor(this.random() * JITTER_STEPS)].extra.retry_after_ms as number;
  }

  stats(): AdmissionStats {
    const now = this.now();
    return {
      catchups: this.catchups,
      sends: this.sends,
      lagMs: Math.round(this.lag?.lateness(now) ?? 0),
      shedSends: this.shedSends,
      shedCatchups: this.shedCatchups,
      sendLimit: this.limit?.current(now, this.sends, this.oldestSendAge(now)) ?? Number.POSITIVE_INFINITY,
      paced: this.pacedTotal,
      pacing: this.paced.length - this.pacedHead,
      pacedGone: this.pacedGone,
      shedBy: { send: { ...this.shedBy.send }, catchup: { ...this.shedBy.catchup } },
    };
  }

  close(): void {
    this.lag?.close();
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
    // Nothing deferred is left hanging: the requests go on (to be answered or to fail on close).
    for (let i = this.pacedHead; i < this.paced.length; i++) this.paced[i].go();
    this.paced.length = 0;
    this.pacedHead = 0;
  }

  private once(fn: () => void): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      fn();
    };
  }
}

function zeroReasons(): Record<ShedReason, number> {
  return { forced: 0, full: 0, lag: 0, stall: 0, limit: 0, delay: 0, queue: 0, stale: 0 };
}

/** JITTER_STEPS frozen refusals, retry_after_ms spread evenly over [base, base × (1 + spread)). */
function refusals(base: number, spread: number, status: number): MatrixError[] {
  return Array.from({ length: JITTER_STEPS }, (_, i) =>
    new MatrixError('M_LIMIT_EXCEEDED', 'Server busy, retry later', Object.freeze({ retry_after_ms: Math.round(base * (1 + (spread * i) / JITTER_STEPS)) }), status),
  );
}
