// Load shedding: past capacity, refuse new work early and cheaply instead of letting every
// request slow down together. Two kinds of new work are admitted here:
// - sends (client events through RoomService.send): refused with 429 M_LIMIT_EXCEEDED and
//   `retry_after_ms` when too many are in flight (queued in room input or committing), when the
//   oldest one in flight has waited longer than `maxSendDelayMs` (the queue is growing faster
//   than it drains: more would only wait longer), or when the event loop is lagging;
// - catch-ups (every /sync long-poll until it has its answer or parks waiting, and every
//   socket's catch-up sync, first or resumed): refused with 503 and a jittered `retry_after_ms`
//   when too many are being built at once or the event loop is lagging.
// Capacity is measured, not configured as a rate: a slot frees when a catch-up finishes, so a
// reconnect storm is admitted exactly as fast as the server serves it, and the jitter spreads
// the refused clients' retries instead of bringing them back in one wave.
//
// Invariants: admitted work is never cancelled by shedding; every `enter*` that returns a
// release function is balanced by exactly one effective call of it (extra calls are ignored);
// `force` (tests, operators) only ever adds refusals.

import { MatrixError } from '../errors.js';

export interface AdmissionOptions {
  /** Catch-ups built at once (HTTP and socket together) before new ones get 503. */
  maxCatchups: number;
  /** Sends in flight before new ones get 429. */
  maxInflightSends: number;
  /** Age of the oldest send in flight above which new ones get 429; 0: off. */
  maxSendDelayMs?: number;
  /** Event-loop lag (smoothed) above which new sends and catch-ups are refused; 0: off. */
  maxLagMs: number;
  /** retry_after_ms for a refused send. */
  sendRetryMs: number;
  /** Base retry_after_ms for a refused catch-up; up to the same again is added as jitter. */
  catchupRetryMs: number;
  /** How often the event-loop lag is sampled. */
  lagSampleMs?: number;
  random?: () => number;
}

export interface AdmissionStats {
  catchups: number;
  sends: number;
  lagMs: number;
  shedSends: number;
  shedCatchups: number;
}

export class Admission {
  private catchups = 0;
  private sends = 0;
  /** Start times of the sends in flight, oldest first (Map keeps insertion order). */
  private readonly sendStarts = new Map<number, number>();
  private nextSend = 0;
  private lagMs = 0;
  private shedSends = 0;
  private shedCatchups = 0;
  private forced = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly random: () => number;

  constructor(private readonly opts: AdmissionOptions) {
    this.random = opts.random ?? Math.random;
    if (opts.maxLagMs > 0) this.startLagMonitor(opts.lagSampleMs ?? 50);
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
    this.sendStarts.set(id, performance.now());
    return this.once(() => {
      this.sends--;
      this.sendStarts.delete(id);
    });
  }

  private sendAvailable(): boolean {
    return !this.forced && this.sends < this.opts.maxInflightSends && !this.sendsBacklogged() && !this.lagging();
  }

  private refuseSend(): never {
    this.shedSends++;
    // One error for every refused send: building an Error captures a stack trace, a good part
    // of what a refusal would cost at thousands a second. It is only ever rendered, never changed.
    throw (this.sendRefusal ??= new MatrixError('M_LIMIT_EXCEEDED', 'Server busy, retry later', Object.freeze({ retry_after_ms: this.opts.sendRetryMs }), 429));
  }

  private sendRefusal: MatrixError | undefined;

  private refuseCatchup(): never {
    this.shedCatchups++;
    throw new MatrixError('M_LIMIT_EXCEEDED', 'Server busy, retry later', { retry_after_ms: this.catchupRetryAfter() }, 503);
  }

  private sendsBacklogged(): boolean {
    const max = this.opts.maxSendDelayMs ?? 0;
    if (max <= 0 || this.sendStarts.size === 0) return false;
    const oldest = this.sendStarts.values().next().value as number;
    return performance.now() - oldest > max;
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
    return Math.round(this.opts.catchupRetryMs * (1 + this.random()));
  }

  stats(): AdmissionStats {
    return { catchups: this.catchups, sends: this.sends, lagMs: Math.round(this.lagMs), shedSends: this.shedSends, shedCatchups: this.shedCatchups };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private lagging(): boolean {
    return this.opts.maxLagMs > 0 && this.lagMs > this.opts.maxLagMs;
  }

  private once(fn: () => void): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      fn();
    };
  }

  /** The timer's lateness, smoothed: how long a new request waits before the loop reaches it. */
  private startLagMonitor(everyMs: number): void {
    let expected = performance.now() + everyMs;
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - expected);
      expected = now + everyMs;
      // Smoothed over about five samples: one long task must not shed, a sustained backlog must.
      this.lagMs = 0.8 * this.lagMs + 0.2 * late;
    }, everyMs);
    this.timer.unref();
  }
}
