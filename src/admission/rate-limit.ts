// Rate limiting. Handlers see only RateLimiter.consume(key); the counting lives behind
// RateLimitBackend so a Redis backend (shared by several hearth processes) can replace the
// in-memory one without touching callers. rate-limiter-flexible provides both.
//
// Config gives each limit as a token bucket (per_second, burst). rate-limiter-flexible counts in
// fixed windows, so a bucket maps to `burst` points per `burst / per_second` seconds: the same
// average rate and the same burst, though a client straddling a window edge may get up to two
// bursts back to back.

import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { HearthConfig } from '../config/schema.js';
import { MatrixError } from '../errors.js';

export interface RateLimitRule {
  per_second: number;
  burst: number;
}

export interface RateLimitBackend {
  /**
   * Spends `points` (default 1) for `key`. Resolves to 0 if allowed, else to the milliseconds
   * until a retry can succeed.
   */
  consume(key: string, points?: number): Promise<number>;
  /** Like consume, but only looks: 0 while `key` has any allowance left. */
  peek?(key: string): Promise<number>;
}

export type RateLimitBackendFactory = (name: string, rule: RateLimitRule) => RateLimitBackend;

/** Per-process counting; right for a single hearth process. */
export const memoryBackend: RateLimitBackendFactory = (name, rule) =>
  limiterBackend(new RateLimiterMemory({ keyPrefix: name, points: rule.burst, duration: rule.burst / rule.per_second }));

/** Adapts any rate-limiter-flexible limiter (memory, Redis) to RateLimitBackend. */
export function limiterBackend(limiter: RateLimiterAbstract): RateLimitBackend {
  return {
    async consume(key, points = 1) {
      try {
        await limiter.consume(key, points);
        return 0;
      } catch (err) {
        // The library rejects with a RateLimiterRes when the limit is hit and with an Error when
        // the store fails; only the former is a client's fault.
        if (err instanceof RateLimiterRes) {
          // The library counts the refused points too; give them back so a refused action costs
          // nothing (as Synapse's limiter) and a large refused cost does not eat what was left.
          await limiter.reward(key, points);
          return Math.max(1, Math.ceil(err.msBeforeNext));
        }
        throw err;
      }
    },
    async peek(key) {
      const res = await limiter.get(key);
      return res && res.remainingPoints <= 0 ? Math.max(1, Math.ceil(res.msBeforeNext)) : 0;
    },
  };
}

export class RateLimiter {
  /** A null backend means this limit is switched off. */
  constructor(
    readonly name: string,
    private readonly backend: RateLimitBackend | null,
    /** The bucket size: a single action costing more is charged this much (see consume). */
    private readonly burst = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Throws M_LIMIT_EXCEEDED (429, with retry_after_ms) once `key` has used up its allowance.
   * `cost` is what the action fans out to (rooms, recipients); one larger than the whole bucket
   * costs the whole bucket, so it can still succeed from full and then waits a full refill.
   */
  async consume(key: string, cost = 1): Promise<void> {
    if (this.backend === null) return;
    limited(await this.backend.consume(key, Math.max(1, Math.min(cost, this.burst))));
  }

  /**
   * The rest of an action's `cost` when `spent` of it was charged already (the route table's
   * point): the whole stays capped at the bucket as with consume, so an action larger than the
   * bucket can still succeed from full.
   */
  async consumeRest(key: string, cost: number, spent: number): Promise<void> {
    if (this.backend === null) return;
    const rest = Math.min(cost + spent, this.burst) - spent;
    if (rest > 0) limited(await this.backend.consume(key, rest));
  }

  /** Throws M_LIMIT_EXCEEDED if `key` has no allowance left; spends nothing (see penalise). */
  async check(key: string): Promise<void> {
    if (this.backend === null || !this.backend.peek) return;
    limited(await this.backend.peek(key));
  }

  /** Spends one unit for `key` without failing: records something that already happened. */
  async penalise(key: string): Promise<void> {
    if (this.backend !== null) await this.backend.consume(key, 1);
  }
}

function limited(retryAfterMs: number): void {
  if (retryAfterMs > 0) throw new MatrixError('M_LIMIT_EXCEEDED', 'Too many requests', { retry_after_ms: retryAfterMs });
}

export const RATE_LIMIT_NAMES = [
  'login',
  'login_failures_per_address',
  'login_failures_per_account_address',
  'registration',
  'message',
  'write',
  'to_device',
  'threepid_request_token',
] as const;
export type RateLimitName = (typeof RATE_LIMIT_NAMES)[number];
export type RateLimiters = Record<RateLimitName, RateLimiter>;

/** The limiters of `limits.rate_limits`; with `enabled: false` they all allow everything. */
export function createRateLimiters(
  config: HearthConfig['limits']['rate_limits'],
  backend: RateLimitBackendFactory = memoryBackend,
): RateLimiters {
  const out = {} as RateLimiters;
  for (const name of RATE_LIMIT_NAMES) {
    out[name] = new RateLimiter(name, config.enabled ? backend(name, config[name]) : null, config[name].burst);
  }
  return out;
}
