// Rate limiting. Handlers see only RateLimiter.consume(key); the counting lives behind
// RateLimitBackend so a Redis backend (shared by several hearth processes) can replace the
// in-memory one without touching callers. rate-limiter-flexible provides both.
//
// Config gives each limit as a token bucket (per_second, burst). rate-limiter-flexible counts in
// fixed windows, so a bucket maps to `burst` points per `burst / per_second` seconds: the same
// average rate and the same burst, though a client straddling a window edge may get up to two
// bursts back to back.

import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { HearthConfig } from '../config/schema.js';
import { MatrixError } from './errors.js';

export interface RateLimitRule {
  per_second: number;
  burst: number;
}

export interface RateLimitBackend {
  /** Spends one unit for `key`. Resolves to 0 if allowed, else to the milliseconds until a retry can succeed. */
  consume(key: string): Promise<number>;
}

export type RateLimitBackendFactory = (name: string, rule: RateLimitRule) => RateLimitBackend;

/** Per-process counting; right for a single hearth process. */
export const memoryBackend: RateLimitBackendFactory = (name, rule) => {
  const limiter = new RateLimiterMemory({ keyPrefix: name, points: rule.burst, duration: rule.burst / rule.per_second });
  return {
    async consume(key) {
      try {
        await limiter.consume(key);
        return 0;
      } catch (err) {
        // The library rejects with a RateLimiterRes when the limit is hit and with an Error when
        // the store fails; only the former is a client's fault.
        if (err instanceof RateLimiterRes) return Math.max(1, Math.ceil(err.msBeforeNext));
        throw err;
      }
    },
  };
};

export class RateLimiter {
  /** A null backend means this limit is switched off. */
  constructor(
    readonly name: string,
    private readonly backend: RateLimitBackend | null,
  ) {}

  /** Throws M_LIMIT_EXCEEDED (429, with retry_after_ms) once `key` has used up its allowance. */
  async consume(key: string): Promise<void> {
    if (this.backend === null) return;
    const retryAfterMs = await this.backend.consume(key);
    if (retryAfterMs > 0) {
      throw new MatrixError('M_LIMIT_EXCEEDED', 'Too many requests', { retry_after_ms: retryAfterMs });
    }
  }
}

export type RateLimitName = 'login' | 'registration' | 'message';
export type RateLimiters = Record<RateLimitName, RateLimiter>;

/** The limiters of `limits.rate_limits`; with `enabled: false` they all allow everything. */
export function createRateLimiters(
  config: HearthConfig['limits']['rate_limits'],
  backend: RateLimitBackendFactory = memoryBackend,
): RateLimiters {
  const make = (name: RateLimitName): RateLimiter => new RateLimiter(name, config.enabled ? backend(name, config[name]) : null);
  return { login: make('login'), registration: make('registration'), message: make('message') };
}
