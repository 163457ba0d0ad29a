// State that several hearth processes serving one server name must share, behind two small
// interfaces: an expiring key-value map (UIA sessions, registration nonces) and a broadcast
// (socket revocation on logout). The local implementations here are the single-node default
// and behave exactly as the old in-process maps and callbacks did; src/cluster/redis.ts has the
// shared ones. Composition (src/app.ts) picks one set from config; nothing else knows which.
//
// Invariants:
// - Values are opaque strings; callers serialise. A key past its TTL is never returned.
// - take() is atomic: of any number of concurrent takers of one key, exactly one gets the value
//   (a nonce is spent once, across every process).
// - A broadcast reaches every subscriber of the channel in every process, the publisher's own
//   included; the local one delivers synchronously, before publish() resolves.

export interface ExpiringMap {
  get(key: string): Promise<string | undefined>;
  /** Sets `key` to `value` for `ttlMs`, replacing any value and TTL it had. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Removes `key` and returns its value if it was there (and still live). */
  take(key: string): Promise<string | undefined>;
  delete(key: string): Promise<void>;
}

export type BroadcastHandler = (message: string) => void;

export interface Broadcast {
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string, handler: BroadcastHandler): Promise<void>;
}

/** What composition hands to services; close() releases connections (Redis) or does nothing. */
export interface SharedState {
  readonly kind: 'local' | 'redis';
  /** A map of its own per `name`, so callers cannot collide. */
  map(name: string): ExpiringMap;
  readonly broadcast: Broadcast;
  close(): Promise<void>;
}

/** One process's map. Expired entries are dropped when met and by a sweep every `sweepEvery` writes. */
export class LocalExpiringMap implements ExpiringMap {
  private readonly entries = new Map<string, { value: string; expires: number }>();
  private writes = 0;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly sweepEvery = 64,
  ) {}

  async get(key: string): Promise<string | undefined> {
    return this.live(key)?.value;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    if (++this.writes % this.sweepEvery === 0) this.sweep();
    this.entries.set(key, { value, expires: this.now() + ttlMs });
  }

  async take(key: string): Promise<string | undefined> {
    const e = this.live(key);
    if (e) this.entries.delete(key);
    return e?.value;
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  /** Entries held, expired ones not yet swept included (for tests). */
  get size(): number {
    return this.entries.size;
  }

  private live(key: string): { value: string; expires: number } | undefined {
    const e = this.entries.get(key);
    if (e && e.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, e] of this.entries) if (e.expires <= now) this.entries.delete(k);
  }
}

export class LocalBroadcast implements Broadcast {
  private readonly handlers = new Map<string, BroadcastHandler[]>();

  async publish(channel: string, message: string): Promise<void> {
    for (const h of this.handlers.get(channel) ?? []) h(message);
  }

  async subscribe(channel: string, handler: BroadcastHandler): Promise<void> {
    const list = this.handlers.get(channel);
    if (list) list.push(handler);
    else this.handlers.set(channel, [handler]);
  }
}

export function localSharedState(now: () => number = Date.now): SharedState {
  const maps = new Map<string, LocalExpiringMap>();
  return {
    kind: 'local',
    map(name) {
      let m = maps.get(name);
      if (!m) maps.set(name, (m = new LocalExpiringMap(now)));
      return m;
    },
    broadcast: new LocalBroadcast(),
    async close() {},
  };
}
