// Per-room owner leases in Redis, so each room has one writer at a time across worker processes
// (src/cluster/room-owner.ts uses them, and forwards the calls of rooms held elsewhere).
//
// Invariants:
// - A room's lease is one key, `<prefix>ro:lease:<room>`, set with SET NX PX; its value is the
//   holder's token `<node>:<epoch>`. The epoch comes from INCR on `<prefix>ro:epoch:<room>` in the
//   same Lua script as the SET, so every acquisition of a room has a strictly greater epoch than
//   the one before, and a token names exactly one acquisition. No clock is read: worker clocks
//   may differ by any amount. A Redis that lost its data hands out epochs again from 1, which
//   the store refuses (it records a new epoch only strictly above the last: room-fence.ts);
//   the owner then takes one above the recorded epoch under the lease it still holds
//   (regainAbove), so it is never locked out, and an owner that lost its lease cannot.
// - Renewal (PEXPIRE) and release (DEL) happen only while the key still holds our token (Lua), so
//   a worker never extends or drops a lease that expired and was taken by someone else.
// - A lease is held while the worker has work for the room, plus `lingerMs` of idleness (so a
//   busy conversation does not change hands between messages), and renewed every leaseMs/3.
//   A renewal that finds another token means the lease was lost: the room is dropped here
//   (onLost), and writes still in flight carry the old epoch, which the store refuses once the
//   new owner has written (the fence, PersistEventInput.fence).
// - `epochOf(room)` is the epoch of the last acquisition this worker made, held or lost: a stale
//   writer keeps presenting its old epoch, never none.
// - A worker that does not acquire now (no room_writer role, or its store lease was revoked)
//   takes no room: it only reads who holds it. One whose store lease was revoked gives up the
//   rooms it holds at the next renewal tick (giveUpAll), so others need not wait for the TTL.

import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { RELEASE } from './leases.js';
import { reachable } from './room-owner-redis.js';

const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local token = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
  return {1, token}
end
return {0, redis.call('GET', KEYS[1]) or ''}`;

// While KEYS[1] still holds our token ARGV[1]: a new epoch above both the counter and the
// store's recorded epoch ARGV[3] (as a decimal string: epochs recorded under the old clock
// seeding are ~2^41, past what Lua formats exactly with tostring).
const REGAIN = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local e = redis.call('INCR', KEYS[2])
if e <= tonumber(ARGV[3]) then
  e = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[2], string.format('%d', e))
end
local token = ARGV[2] .. ':' .. string.format('%d', e)
redis.call('SET', KEYS[1], token, 'PX', ARGV[4])
return token`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

export interface RoomLeaseOptions {
  redis: Redis;
  prefix: string;
  nodeId: string;
  leaseMs: number;
  lingerMs: number;
  /** Called once this worker has acquired a room (before any work for it runs here). */
  onAcquired?: (roomId: string, epoch: number) => void;
  /** Called when a renewal finds the lease taken by someone else. */
  onLost?: (roomId: string) => void;
  logger: { warn: (obj: object, msg: string) => void };
}

export interface Held {
  token: string;
  epoch: number;
  active: number;
  idle: NodeJS.Timeout | null;
}

export class RoomLeases {
  private readonly held = new Map<string, Held>();
  // Bounded: a room held long ago has no write in flight that a fence would need to stop.
  private readonly lastEpoch = new LRUCache<string, number>({ max: 100_000 });
  private readonly acquiring = new Map<string, Promise<Held | string>>();
  private readonly regaining = new Map<string, Promise<boolean>>();

  /** `acquires`: whether this worker takes rooms now (see the header). */
  constructor(
    private readonly opts: RoomLeaseOptions,
    private readonly stats: { acquired: number },
    private readonly acquires: () => boolean,
  ) {}

  /** The epoch of this worker's latest acquisition of the room (held or since lost). */
  epochOf(roomId: string): number | undefined {
    return this.held.get(roomId)?.epoch ?? this.lastEpoch.get(roomId);
  }

  /** Whether this worker holds the room's lease now. */
  holds(roomId: string): boolean {
    return this.held.has(roomId);
  }

  /** The token of whoever holds the room's lease, null if nobody does. */
  holder(roomId: string): Promise<string | null> {
    return reachable(this.opts.redis.get(this.key(roomId)));
  }

  /** Marks the room's lease as lost here (the store fenced one of our writes). */
  dropLost(roomId: string): void {
    const h = this.held.get(roomId);
    if (!h) return;
    if (h.idle) clearTimeout(h.idle);
    this.held.delete(roomId);
    this.opts.onLost?.(roomId);
  }

  /** Runs `local` holding the room `h`, which is kept for `lingerMs` after its last work ends. */
  async within<T>(roomId: string, h: Held, local: () => Promise<T>): Promise<T> {
    h.active++;
    if (h.idle) {
      clearTimeout(h.idle);
      h.idle = null;
    }
    try {
      return await local();
    } finally {
      h.active--;
      if (h.active === 0 && this.held.get(roomId) === h) {
        h.idle = setTimeout(() => {
          if (h.active === 0 && this.held.get(roomId) === h) void this.release(roomId, h);
        }, this.opts.lingerMs);
        h.idle.unref();
      }
    }
  }

  /** The room held here, or the token of whoever else holds it ('' if none was readable). */
  acquire(roomId: string): Promise<Held | string> {
    const mine = this.held.get(roomId);
    if (mine) return Promise.resolve(mine);
    const inflight = this.acquiring.get(roomId);
    if (inflight) return inflight;
    const p = (async (): Promise<Held | string> => {
      const { redis, nodeId, leaseMs } = this.opts;
      if (!this.acquires()) return (await this.holder(roomId)) ?? '';
      const [ok, token] = (await reachable(redis.eval(ACQUIRE, 2, this.key(roomId), this.epochKey(roomId), nodeId, String(leaseMs)))) as [number, string];
      if (ok !== 1) return token;
      const h: Held = { token, epoch: tokenEpoch(token), active: 0, idle: null };
      this.held.set(roomId, h);
      this.stats.acquired++;
      this.lastEpoch.set(roomId, h.epoch);
      this.opts.onAcquired?.(roomId, h.epoch);
      return h;
    })();
    return oneAtATime(this.acquiring, roomId, p);
  }

  /**
   * The store refused our epoch for the room because it records `recorded`, at or above it. If
   * our lease is still ours in Redis, nobody can have acquired the room since we did: Redis lost
   * the counter (a restart without persistence, a failover to a replica behind), not a newer
   * owner took over. We then take an epoch above `recorded` under the same lease and answer
   * true (the caller retries); else false (the room is another's: the caller drops it).
   */
  regainAbove(roomId: string, recorded: number): Promise<boolean> {
    const h = this.held.get(roomId);
    if (!h) return Promise.resolve(false);
    // Another call refused at the same epoch already took a higher one.
    if (h.epoch > recorded) return Promise.resolve(true);
    const inflight = this.regaining.get(roomId);
    if (inflight) return inflight.then(() => this.held.get(roomId) === h && h.epoch > recorded);
    const p = (async (): Promise<boolean> => {
      const { redis, nodeId, leaseMs } = this.opts;
      const token = (await reachable(redis.eval(REGAIN, 2, this.key(roomId), this.epochKey(roomId), h.token, nodeId, String(recorded), String(leaseMs)))) as string | null;
      if (typeof token !== 'string' || this.held.get(roomId) !== h) return false;
      h.token = token;
      h.epoch = tokenEpoch(token);
      this.lastEpoch.set(roomId, h.epoch);
      this.opts.logger.warn({ roomId, recorded, epoch: h.epoch }, 'room owner: the store records a room epoch at or above the one Redis gave us (Redis lost its data?); took one above it');
      this.opts.onAcquired?.(roomId, h.epoch);
      return true;
    })();
    return oneAtATime(this.regaining, roomId, p);
  }

  /** Renews every lease held here; one found taken by someone else is dropped as lost. */
  async renewAll(): Promise<void> {
    await Promise.all(
      [...this.held.entries()].map(async ([roomId, h]) => {
        const token = h.token;
        try {
          const ok = (await this.opts.redis.eval(RENEW, 1, this.key(roomId), token, String(this.opts.leaseMs))) as number;
          // A token replaced meanwhile by regainAbove is still our lease.
          if (ok !== 1 && this.held.get(roomId) === h && h.token === token) this.dropLost(roomId);
        } catch (err) {
          // Unrenewed, it expires at its TTL and someone else takes over; our late writes are fenced.
          this.opts.logger.warn({ err, roomId }, 'room owner: lease renewal failed');
        }
      }),
    );
  }

  /** Our writes would all be refused: drops every room as lost and lets others take it now. */
  async giveUpAll(): Promise<void> {
    for (const [roomId, h] of [...this.held]) {
      if (h.idle) clearTimeout(h.idle);
      this.dropLost(roomId);
      await this.release(roomId, h);
    }
  }

  /** At stop (no work for any room runs here any more): releases every lease. */
  async releaseAll(): Promise<void> {
    for (const h of this.held.values()) if (h.idle) clearTimeout(h.idle);
    await Promise.all([...this.held.entries()].map(([room, h]) => this.release(room, h)));
  }

  private async release(roomId: string, h: Held): Promise<void> {
    if (this.held.get(roomId) === h) this.held.delete(roomId);
    try {
      await this.opts.redis.eval(RELEASE, 1, this.key(roomId), h.token);
    } catch (err) {
      // It expires on its own; until then others wait for it.
      this.opts.logger.warn({ err, roomId }, 'room owner: lease release failed');
    }
  }

  private key(roomId: string): string {
    return `${this.opts.prefix}ro:lease:${roomId}`;
  }

  private epochKey(roomId: string): string {
    return `${this.opts.prefix}ro:epoch:${roomId}`;
  }
}

/** A lease token is `<node>:<epoch>`. */
function tokenEpoch(token: string): number {
  return Number(token.slice(token.lastIndexOf(':') + 1));
}

/** Keeps `p` as the room's call in flight until it settles, so concurrent callers share it. */
function oneAtATime<T>(inflight: Map<string, Promise<T>>, roomId: string, p: Promise<T>): Promise<T> {
  inflight.set(roomId, p);
  const clear = () => inflight.delete(roomId);
  p.then(clear, clear);
  return p;
}
