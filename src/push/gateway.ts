// The worker that delivers queued push notifications to push gateways (POST {notification} to
// the pusher's data.url, Push Gateway API /_matrix/push/v1/notify). The queue lives in the store,
// so pending pushes survive a restart; this worker only holds what is in flight.
//
// It runs beside request handling, never in its path: sends and syncs only enqueue (see
// dispatcher.ts). In-flight requests are capped, and each pusher has at most one request in
// flight so a badge reset cannot overtake the notification it resets.
//
// Several workers (processes) may share one queue: a job is claimed in the store before it is
// sent (claimPush), with a lease longer than a request can take, so each is delivered by one
// worker; a worker that dies mid-request leaves its jobs due again when their leases end.
//
// Requests go through the injected OutboundHttp (src/net/outbound-guard.ts): a gateway whose
// address is refused by the outbound IP policy (loopback, private, link-local, ...; checked after
// DNS resolution) is never contacted, and that push is dropped, not retried. Redirects are never
// followed: a 3xx answer is a failed delivery like any other 4xx.

import type { Logger } from 'pino';
import { isOutboundRefused, type OutboundHttp } from '../net/outbound-guard.js';
import type { PushJob, PusherStore } from '../store/types.js';

export interface PushGatewayOptions {
  pushers: PusherStore;
  /** Outbound HTTP with the SSRF guard; created once in app.ts. */
  http: OutboundHttp;
  logger: Logger;
  requestTimeoutMs: number;
  maxConcurrent: number;
  /** First retry delay; doubles per failed attempt up to maxBackoffMs. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Attempts (the first included) after which a failing push is dropped. */
  maxAttempts: number;
  now?: () => number;
}

type Outcome =
  | { kind: 'delivered'; rejected: string[] }
  | { kind: 'drop'; why: string }
  | { kind: 'refused'; err: unknown }
  /** `err`: what was thrown, when the request failed without an answer (logged whole). */
  | { kind: 'retry'; why: string; err?: unknown };

interface InFlight {
  pusherKey: string;
  abort: AbortController;
  done: Promise<void>;
}

// Bigger bodies from a gateway are not a Push Gateway API answer; don't buffer them.
const MAX_RESPONSE_BYTES = 64 * 1024;

export class PushGateway {
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private scheduled: NodeJS.Immediate | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private readonly inFlight = new Map<number, InFlight>();
  private readonly now: () => number;

  constructor(private readonly opts: PushGatewayOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.running = true;
    this.wake();
  }

  /** Something was queued or finished: look at the queue again (coalesced to one pass). */
  wake(): void {
    if (!this.running || this.scheduled !== null) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      this.pump();
    });
  }

  /**
   * Stops the worker and aborts requests in flight; their jobs stay queued (attempt count
   * unchanged) for the next start. Gateways suppress duplicates by event_id.
   */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.scheduled) clearImmediate(this.scheduled);
    this.timer = null;
    this.scheduled = null;
    await this.pumping;
    for (const f of this.inFlight.values()) f.abort.abort();
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  private pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.drainQueue().finally(() => {
      this.pumping = null;
      if (this.again) this.wake();
    });
  }

  private async drainQueue(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.fill();
      } while (this.again && this.running);
    } catch (err) {
      this.opts.logger.warn({ err }, 'push gateway worker: reading the queue failed');
      this.sleep(this.opts.minBackoffMs);
    }
  }

  private async fill(): Promise<void> {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const { pushers, maxConcurrent } = this.opts;
    let free = maxConcurrent - this.inFlight.size;
    if (free > 0) {
      const busy = new Set([...this.inFlight.values()].map((f) => f.pusherKey));
      // Room to look past jobs that are in flight or wait behind their pusher's request.
      const due = await pushers.duePushes(this.now(), (maxConcurrent + this.inFlight.size) * 2);
      for (const job of due) {
        if (free <= 0 || !this.running) break;
        const key = pusherKey(job);
        if (this.inFlight.has(job.id) || busy.has(key)) continue;
        busy.add(key);
        // Another worker may have claimed it since duePushes read it: then it is theirs.
        if (!(await pushers.claimPush(job.id, this.now(), this.now() + this.leaseMs()))) continue;
        this.launch(job, key);
        free--;
      }
    }
    if (!this.running) return;
    const next = await pushers.nextPushDue();
    if (next === null) return; // the dispatcher wakes us on enqueue
    const delay = next - this.now();
    if (delay > 0) this.sleep(delay);
    else if (this.inFlight.size === 0) this.again = true; // became due just now
    // Else something due is in flight or waiting its turn: a completion wakes us. Poll as well,
    // since a retry may fall due behind a slow request.
    else this.sleep(Math.min(this.opts.minBackoffMs, 1000));
  }

  /**
   * How long a claim lasts: past the request timeout (after which the holder has given up on the
   * request) with a margin for its store write, so a live holder always finishes first.
   */
  private leaseMs(): number {
    return this.opts.requestTimeoutMs + 60_000;
  }

  private sleep(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    // setTimeout overflows past 2^31-1 ms.
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wake();
    }, Math.min(Math.max(ms, 0), 2 ** 31 - 1));
    this.timer.unref();
  }

  private launch(job: PushJob, key: string): void {
    const abort = new AbortController();
    const done = this.process(job, abort.signal)
      .catch((err: unknown) => this.opts.logger.warn({ err, job: job.id }, 'push gateway worker: job failed'))
      .finally(() => {
        this.inFlight.delete(job.id);
        this.wake();
      });
    this.inFlight.set(job.id, { pusherKey: key, abort, done });
  }

  private async process(job: PushJob, stopping: AbortSignal): Promise<void> {
    const { pushers, logger } = this.opts;
    const pusher = (await pushers.getPushers(job.userId)).find((p) => p.appId === job.appId && p.pushkey === job.pushkey);
    const url = pusher?.data.url;
    if (typeof url !== 'string') {
      await pushers.deletePush(job.id); // the pusher is gone: nobody to tell
      return;
    }
    const outcome = await this.post(url, job, stopping);
    if (stopping.aborted) {
      // Hand the claim back, due as before, so a restart or another worker sends it at once.
      await pushers.reschedulePush(job.id, job.attempts, job.notBefore);
      return;
    }
    const host = hostOf(url);
    switch (outcome.kind) {
      case 'delivered': {
        await pushers.deletePush(job.id);
        // Only keys this request named: a gateway cannot remove other pushers.
        if (outcome.rejected.includes(job.pushkey)) {
          logger.info({ app_id: job.appId, user_id: job.userId, gateway: host }, 'push gateway rejected the pushkey; pusher removed');
          await pushers.deletePushersByKey(job.appId, job.pushkey);
        }
        return;
      }
      case 'drop':
        logger.warn({ job: job.id, gateway: host, why: outcome.why }, 'push dropped');
        await pushers.deletePush(job.id);
        return;
      case 'refused':
        // Permanent: the same address would be refused on every retry.
        logger.warn(
          { err: outcome.err, job: job.id, user_id: job.userId, app_id: job.appId, gateway: host },
          'push gateway address refused by the outbound IP policy (outbound.ip_range_blacklist); push dropped',
        );
        await pushers.deletePush(job.id);
        return;
      case 'retry': {
        const attempts = job.attempts + 1;
        if (attempts >= this.opts.maxAttempts) {
          logger.warn({ err: outcome.err, job: job.id, gateway: host, why: outcome.why, attempts }, 'push dropped after too many failed attempts');
          await pushers.deletePush(job.id);
          return;
        }
        const delay = this.backoff(attempts);
        logger.debug({ err: outcome.err, job: job.id, gateway: host, why: outcome.why, attempts, delay }, 'push failed; will retry');
        await pushers.reschedulePush(job.id, attempts, this.now() + delay);
      }
    }
  }

  /** Delay before the retry that follows the `failures`-th failed attempt. */
  backoff(failures: number): number {
    const { minBackoffMs, maxBackoffMs } = this.opts;
    return Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 40));
  }

  private async post(url: string, job: PushJob, stopping: AbortSignal): Promise<Outcome> {
    try {
      // Never follows redirects: a gateway that moved is misconfigured, and following it could
      // send pushes anywhere.
      const res = await this.opts.http.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ notification: job.notification }),
        signal: AbortSignal.any([stopping, AbortSignal.timeout(this.opts.requestTimeoutMs)]),
        maxResponseBytes: MAX_RESPONSE_BYTES,
      });
      if (res.status >= 200 && res.status < 300) return { kind: 'delivered', rejected: res.truncated ? [] : rejectedOf(res.body.toString('utf8')) };
      if (res.status >= 500 || res.status === 408 || res.status === 429) return { kind: 'retry', why: `HTTP ${res.status}` };
      return { kind: 'drop', why: `HTTP ${res.status}` };
    } catch (err) {
      if (isOutboundRefused(err)) return { kind: 'refused', err };
      return { kind: 'retry', why: err instanceof Error ? `${err.name}: ${err.message}` : String(err), err };
    }
  }
}

function pusherKey(job: PushJob): string {
  return JSON.stringify([job.userId, job.appId, job.pushkey]);
}

function rejectedOf(body: string): string[] {
  try {
    const parsed: unknown = JSON.parse(body);
    const rejected = (parsed as { rejected?: unknown } | null)?.rejected;
    return Array.isArray(rejected) ? rejected.filter((k): k is string => typeof k === 'string') : [];
  } catch {
    return [];
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid URL)';
  }
}
