// The Redis-backed SharedState and rate-limit backend (ioredis), for several hearth processes
// serving one server name. See shared-state.ts for the contract both implementations keep.
//
// Invariants:
// - Every key and channel starts with the configured prefix; nothing else in Redis is touched.
// - Expiry is Redis's own (SET PX), so a map needs no sweeping and survives any one process.
// - take() is GETDEL: atomic on the server, so a nonce is spent once across every process.
// - Pub/sub needs a connection of its own (a subscribed connection can issue no commands); it is
//   opened on the first subscribe. Messages published while a process is disconnected are lost:
//   pub/sub is for wake-ups and revocations that are also checked against durable state.
// - A map operation that cannot reach Redis fails as 503 M_UNKNOWN (the client retries), never
//   as a 500.
// - Rate limits fall back to per-process counting while Redis is unreachable (an insurance
//   limiter), so losing Redis loosens limits instead of failing requests.

import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { limiterBackend, type RateLimitBackendFactory } from '../admission/rate-limit.js';
import type { Broadcast, BroadcastHandler, ExpiringMap, SharedState } from './shared-state.js';

export interface RedisOptions {
  url: string;
  keyPrefix: string;
  logger: Logger;
}

/** Connects (failing start-up loudly if Redis is not there) and returns the shared state. */
export async function openRedisSharedState(opts: RedisOptions): Promise<RedisSharedState> {
  const client = new Redis(opts.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  client.on('error', (err: unknown) => opts.logger.warn({ err }, 'redis: connection error'));
  try {
    await client.connect();
  } catch (err) {
    client.disconnect(); // else it keeps reconnecting in the background
    const where = new URL(opts.url);
    where.username = where.password = ''; // never log a password
    throw new Error(`cannot connect to Redis (cluster.redis.url) at ${where.host}: ${(err as Error).message}`, { cause: err });
  }
  return new RedisSharedState(client, opts.keyPrefix, opts.logger);
}

export class RedisSharedState implements SharedState {
  readonly kind = 'redis' as const;
  readonly broadcast: Broadcast;

  constructor(
    readonly client: Redis,
    readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.broadcast = new RedisBroadcast(client, prefix + 'bc:', logger);
  }

  /**
   * Another connection with the same options (for blocking reads), with its errors logged: an
   * ioredis connection without an 'error' listener reports every failed reconnect while Redis is
   * down as an unhandled error event on stderr.
   */
  duplicate(purpose: string): Redis {
    const conn = this.client.duplicate();
    conn.on('error', (err: unknown) => this.logger.warn({ err, purpose }, 'redis: connection error'));
    return conn;
  }

  map(name: string): ExpiringMap {
    return new RedisExpiringMap(this.client, `${this.prefix}map:${name}:`);
  }

  /** Rate limits counted in Redis, so every process spends from one bucket per key. */
  rateLimits(): RateLimitBackendFactory {
    return (name, rule) => {
      // Redis expiries are whole seconds here (the library floors them): a window under a second
      // would never expire, so it is at least one.
      const duration = Math.max(1, Math.round(rule.burst / rule.per_second));
      const limiter = new RateLimiterRedis({
        storeClient: this.client,
        keyPrefix: `${this.prefix}rl:${name}`,
        points: rule.burst,
        duration,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix: name, points: rule.burst, duration }),
      });
      return limiterBackend(limiter);
    };
  }

  async close(): Promise<void> {
    await (this.broadcast as RedisBroadcast).close();
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

class RedisExpiringMap implements ExpiringMap {
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
  ) {}

  async get(key: string): Promise<string | undefined> {
    return (await unavailable(this.client.get(this.prefix + key))) ?? undefined;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    await unavailable(this.client.set(this.prefix + key, value, 'PX', Math.max(1, Math.ceil(ttlMs))));
  }

  async take(key: string): Promise<string | undefined> {
    return (await unavailable(this.client.getdel(this.prefix + key))) ?? undefined;
  }

  async delete(key: string): Promise<void> {
    await unavailable(this.client.del(this.prefix + key));
  }
}

/** Redis unreachable is the server's temporary trouble, not a bug: 503, with the cause kept. */
async function unavailable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = new MatrixError('M_UNKNOWN', 'Shared state is unavailable; try again', {}, 503);
    (e as Error).cause = err;
    throw e;
  }
}

class RedisBroadcast implements Broadcast {
  private sub: Redis | undefined;
  private readonly handlers = new Map<string, BroadcastHandler[]>();

  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(this.prefix + channel, message);
  }

  async subscribe(channel: string, handler: BroadcastHandler): Promise<void> {
    const full = this.prefix + channel;
    const list = this.handlers.get(full);
    if (list) {
      list.push(handler);
      return;
    }
    this.handlers.set(full, [handler]);
    if (!this.sub) {
      const sub = this.client.duplicate();
      this.sub = sub;
      sub.on('error', (err: unknown) => this.logger.warn({ err }, 'redis: subscriber connection error'));
      sub.on('message', (ch: string, message: string) => {
        for (const h of this.handlers.get(ch) ?? []) {
          try {
            h(message);
          } catch (err) {
            this.logger.warn({ err, channel: ch }, 'redis: broadcast handler failed');
          }
        }
      });
    }
    // Resolves once Redis confirms, so a publish after this returns is seen here.
    await this.sub.subscribe(full);
  }

  async close(): Promise<void> {
    if (!this.sub) return;
    await this.sub.quit().catch(() => this.sub?.disconnect());
  }
}
