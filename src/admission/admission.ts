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
// Invariants: admitted work is never cancelled by shedding; every `enter*` that returns a
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
  /** How often the event-loop lag is sampled. */
  lagSampleMs?: number;
  random?: () => number;
  now?: () => number;
  /** The process's CPU clock in ms (LoopLag: lateness counts only the server's own CPU share). */
  cpuMs?: () => number;
}

export interface AdmissionStats {
  catchups: number;
  sends: number;
  lagMs: number;
  shedSends: number;
  shedCatchups: number;
  /** The measured send limit now (Infinity: not limiting). */
  sendLimit: number;
}

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
  private forced = false;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly lag: LoopLag | null;
  private readonly limit: SendLimit | null;
  private readonly sendRefusals: MatrixError[];
  private readonly catchupRefusals: MatrixError[];

  constructor(private readonly opts: AdmissionOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    this.lag = opts.maxLagMs > 0 ? new LoopLag(opts.maxLagMs, opts.lagSampleMs ?? 10, this.now, opts.cpuMs) : null;
    const target = opts.sendTargetMs ?? 0;
    this.limit = target > 0 ? new SendLimit({ targetMs: target, intervalMs: opts.sendIntervalMs ?? 100, max: opts.maxInflightSends }) : null;
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
   */
  precheck(kind: 'send' | 'catchup'): void {
    if (kind === 'send') {
      if (!this.sendAvailable()) this.refuseSend();
    } else if (!this.catchupAvailable()) this.refuseCatchup();
  }

  /** Admits a send or throws 429 with retry_after_ms; call the result once the send settles. */
  enterSend(): () => void {
    if (!this.sendAvailable()) this.refuseSend();
    this.sends++;
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

  private sendAvailable(): boolean {
    if (this.forced || this.sends >= this.opts.maxInflightSends || this.lagging()) return false;
    const now = this.now();
    if (this.limit && this.sends >= this.limit.current(now, this.sends, this.oldestSendAge(now))) return false;
    const max = this.opts.maxSendDelayMs ?? 0;
    return max <= 0 || this.oldestSendAge(now) <= max;
  }

  private oldestSendAge(now: number): number {
    if (this.sendStarts.size === 0) return 0;
    return now - (this.sendStarts.values().next().value as number);
  }

  private refuseSend(): never {
    this.shedSends++;
    throw this.sendRefusals[Math.floor(this.random() * JITTER_STEPS)];
  }

  private refuseCatchup(): never {
    this.shedCatchups++;
    throw this.catchupRefusals[Math.floor(this.random() * JITTER_STEPS)];
  }

  /** Whether a new catch-up would be admitted now (a socket checks before its upgrade). */
  catchupAvailable(): boolean {
    return !this.forced && this.catchups < this.opts.maxCatchups && !this.lagging();
  }

  /** Admits a catch-up or throws 503 with a jittered retry_after_ms; release when it is answered or parks. */
  enterCatchup(): () => void {
    if (!this.catchupAvailable()) this.refuseCatchup();
    return this.admitCatchup();
  }

  /** Counts a catch-up already admitted elsewhere (a socket accepted at its upgrade). */
  admitCatchup(): () => void {
    this.catchups++;
    return this.once(() => this.catchups--);
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
    };
  }

  close(): void {
    this.lag?.close();
  }

  private lagging(): boolean {
    return this.lag !== null && this.lag.late(this.now());
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

/** JITTER_STEPS frozen refusals, retry_after_ms spread evenly over [base, base × (1 + spread)). */
function refusals(base: number, spread: number, status: number): MatrixError[] {
  return Array.from({ length: JITTER_STEPS }, (_, i) =>
    new MatrixError('M_LIMIT_EXCEEDED', 'Server busy, retry later', Object.freeze({ retry_after_ms: Math.round(base * (1 + (spread * i) / JITTER_STEPS)) }), status),
  );
}
