// Per-room owner leases in Redis, so each room has one writer at a time across worker processes,
// and the forwarding of a room's writes from any worker to its owner.
//
// Invariants:
// - A room's lease is one key, `<prefix>ro:lease:<room>`, set with SET NX PX; its value is the
//   holder's token `<node>:<epoch>`. The epoch comes from INCR on `<prefix>ro:epoch:<room>` in the
//   same Lua script as the SET, so every acquisition of a room has a strictly greater epoch than
//   the one before, and a token names exactly one acquisition. The counter is raised to the
//   acquirer's clock (ms) first, so a Redis that lost its data still hands out epochs above
//   those the store recorded (else the room could never be written again); rooms change hands
//   far less often than once a millisecond, so epochs never run ahead of the clock.
// - Renewal (PEXPIRE) and release (DEL) happen only while the key still holds our token (Lua), so
//   a worker never extends or drops a lease that expired and was taken by someone else.
// - A lease is held while the worker has work for the room, plus `lingerMs` of idleness (so a
//   busy conversation does not change hands between messages), and renewed every leaseMs/3.
//   A renewal that finds another token means the lease was lost: the room is dropped here
//   (onLost), and writes still in flight carry the old epoch, which the store refuses once the
//   new owner has written (the fence, PersistEventInput.fence).
// - `epochOf(room)` is the epoch of the last acquisition this worker made, held or lost: a stale
//   writer keeps presenting its old epoch, never none.
// - Forwarding: each worker pops requests from its list `<prefix>ro:req:<node>` and pushes each
//   reply to the caller's list `<prefix>ro:rep:<node>`; one blocking connection pops both. A
//   request carries a deadline and is dropped unexecuted once past it (the caller has given up).
//   A caller whose target's lease changed removes its request from the list (LREM): removed
//   means never executed, so it is re-routed; not removed means it may be running, so the caller
//   waits for the reply until its timeout, and then fails with a retryable 503 (client sends are
//   idempotent by transaction ID, so the retry cannot duplicate).
// - The owner executes a forwarded request only while it holds (or can take) the room's lease;
//   otherwise it answers `notOwner` and the caller re-routes.
// - Redis unreachable: a call fails with a retryable 503 (nothing runs); held leases lapse and
//   are taken over once Redis is back.
// - Roles (src/cluster/roles.ts): a worker with `mayAcquire: false` (no room_writer role) never
//   takes a lease. It forwards every call: to the lease holder, or, when nobody holds the room,
//   to a live writer chosen by rendezvous hash of the room ID (stable, so one room's callers
//   agree), which takes the lease when it serves it. Writers announce themselves in the sorted
//   set `<prefix>ro:writers` (score: the time their entry expires, renewed with the leases); an
//   entry past its time is dead. No live writer: a retryable 503 at once, never a wait or a 500.
// - A worker that may no longer write (`canWrite` false: its store lease was revoked) takes no
//   room, releases those it holds at the next renewal tick and leaves the writer set: it then
//   forwards like a worker without the room_writer role.
// - Errors cross as data: a MatrixError keeps errcode, message, status and extra fields; any other
//   error becomes a plain Error with its message (a 500 at the API, as on one node).

import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import { MatrixError, type Errcode } from '../errors.js';
import { parseTrustedJson } from '../protocol/canonical-json.js';

const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local e = redis.call('INCR', KEYS[2])
  if e < tonumber(ARGV[3]) then
    e = tonumber(ARGV[3])
    redis.call('SET', KEYS[2], ARGV[3])
  end
  local token = ARGV[1] .. ':' .. e
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
  return {1, token}
end
return {0, redis.call('GET', KEYS[1]) or ''}`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Executes a forwarded operation here (this worker holds the room's lease meanwhile). */
export type ForwardHandler = (op: string, roomId: string, args: unknown[]) => Promise<unknown>;

export interface RoomOwnerOptions {
  /** Commands. */
  redis: Redis;
  /** A connection of its own for the blocking pop of requests and replies. */
  blocking: Redis;
  prefix: string;
  /** This worker's name in tokens and list keys (default: random). */
  nodeId?: string;
  leaseMs?: number;
  lingerMs?: number;
  /** How long a caller waits for a forwarded request's reply. */
  forwardTimeoutMs?: number;
  /**
   * false: this worker has no room_writer role and never takes a lease (every call is forwarded,
   * runHere refuses). Default true.
   */
  mayAcquire?: boolean;
  /** Called once this worker has acquired a room (before any work for it runs here). */
  onAcquired?: (roomId: string, epoch: number) => void;
  /** Called when a renewal finds the lease taken by someone else. */
  onLost?: (roomId: string) => void;
  /** False once this worker may write nothing (see the header); default always true. */
  canWrite?: () => boolean;
  logger: { warn: (obj: object, msg: string) => void };
}

interface Held {
  token: string;
  epoch: number;
  active: number;
  idle: NodeJS.Timeout | null;
}

interface Request {
  id: string;
  from: string;
  room: string;
  op: string;
  args: unknown[];
  deadline: number;
}

type Reply =
  | { id: string; ok: unknown }
  | { id: string; err: { errcode: string; message: string; status: number; extra: Record<string, unknown> } }
  | { id: string; fail: string }
  | { id: string; notOwner: true };

interface Pending {
  resolve: (r: Reply) => void;
}

/** Signals a forwarded request that must be routed again (the target no longer owns the room). */
const REROUTE = Symbol('reroute');

export class RoomOwner {
  readonly nodeId: string;
  /** Counts since start: calls sent to another owner, calls served for others, acquisitions. */
  readonly stats = { forwarded: 0, served: 0, acquired: 0 };
  /** See RoomOwnerOptions.mayAcquire. */
  readonly mayAcquire: boolean;
  private readonly held = new Map<string, Held>();
  // Bounded: a room held long ago has no write in flight that a fence would need to stop.
  private readonly lastEpoch = new LRUCache<string, number>({ max: 100_000 });
  private readonly acquiring = new Map<string, Promise<Held | string>>();
  private readonly pending = new Map<string, Pending>();
  private readonly leaseMs: number;
  private readonly lingerMs: number;
  private readonly forwardTimeoutMs: number;
  private handler: ForwardHandler | null = null;
  private running = false;
  private loop: Promise<void> | null = null;
  private renewer: NodeJS.Timeout | null = null;
  private seq = 0;
  private readonly serving = new Set<Promise<void>>();

  constructor(private readonly opts: RoomOwnerOptions) {
    this.nodeId = opts.nodeId ?? randomBytes(8).toString('hex');
    this.leaseMs = opts.leaseMs ?? 5_000;
    this.lingerMs = opts.lingerMs ?? 1_000;
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? 10_000;
    this.mayAcquire = opts.mayAcquire ?? true;
  }

  /** Starts serving forwarded requests with `handler`, and renewing held leases. */
  start(handler: ForwardHandler): void {
    this.handler = handler;
    this.running = true;
    this.loop = this.consume();
    void this.announce();
    this.renewer = setInterval(() => void this.renewAll(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.renewer.unref();
  }

  /**
   * Stops taking forwarded requests, waits for those being served, and releases every lease
   * (the caller's own local work must be finished first).
   */
  async stop(): Promise<void> {
    this.running = false;
    if (this.renewer) clearInterval(this.renewer);
    this.opts.blocking.disconnect();
    if (this.mayAcquire) {
      await this.opts.redis.zrem(this.writersKey, this.nodeId).catch((err: unknown) => this.opts.logger.warn({ err }, 'room owner: could not leave the writer set'));
    }
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.serving]);
    for (const h of this.held.values()) if (h.idle) clearTimeout(h.idle);
    await Promise.all([...this.held.entries()].map(([room, h]) => this.release(room, h)));
    for (const p of this.pending.values()) p.resolve({ id: '', fail: 'room owner stopped' });
    this.pending.clear();
  }

  /** The epoch of this worker's latest acquisition of the room (held or since lost). */
  epochOf(roomId: string): number | undefined {
    return this.held.get(roomId)?.epoch ?? this.lastEpoch.get(roomId);
  }

  /** Whether this worker holds the room's lease now. */
  holds(roomId: string): boolean {
    return this.held.has(roomId);
  }

  /** Marks the room's lease as lost here (the store fenced one of our writes). */
  dropLost(roomId: string): void {
    const h = this.held.get(roomId);
    if (!h) return;
    if (h.idle) clearTimeout(h.idle);
    this.held.delete(roomId);
    this.opts.onLost?.(roomId);
  }

  /**
   * Runs `local` here while holding the room (acquiring it when nobody owns it), or forwards
   * `op(args)` to the worker that owns it and returns its answer.
   */
  async run<T>(roomId: string, local: () => Promise<T>, op: string, args: unknown[]): Promise<T> {
    const deadline = Date.now() + this.forwardTimeoutMs;
    for (;;) {
      const got = await this.acquire(roomId);
      if (typeof got !== 'string') return this.within(roomId, got, local);
      const owner = got.slice(0, got.lastIndexOf(':'));
      if (got === '' && !this.acquires()) {
        const r = await this.forwardToWriter(roomId, op, args, deadline);
        if (r !== REROUTE) return r as T;
      } else if (got === '' || owner === this.nodeId) {
        // Expired between SET NX and GET, or our own token that we no longer track (being
        // released, or lost concurrently): try again shortly.
        await sleep(20);
      } else {
        const r = await this.forward(roomId, got, owner, op, args, deadline);
        if (r !== REROUTE) return r as T;
      }
      if (Date.now() > deadline) throw unavailable('the room\'s writer did not answer');
    }
  }

  /**
   * Runs `local` here only, holding the room: acquires it, waiting up to `waitMs` for another
   * owner's lease to be released or to expire. For work that cannot be forwarded (callbacks).
   */
  async runHere<T>(roomId: string, local: () => Promise<T>, waitMs = this.forwardTimeoutMs): Promise<T> {
    if (!this.mayAcquire) {
      throw new MatrixError('M_UNKNOWN', 'This operation runs only on a worker with the room_writer role (cluster.roles)', {}, 501);
    }
    const deadline = Date.now() + waitMs;
    for (;;) {
      const got = await this.acquire(roomId);
      if (typeof got !== 'string') return this.within(roomId, got, local);
      if (Date.now() > deadline) throw unavailable('the room is being written by another worker');
      await sleep(50);
    }
  }

  private async within<T>(roomId: string, h: Held, local: () => Promise<T>): Promise<T> {
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
        }, this.lingerMs);
        h.idle.unref();
      }
    }
  }

  /** The room held here, or the token of whoever else holds it ('' if none was readable). */
  private acquire(roomId: string): Promise<Held | string> {
    const mine = this.held.get(roomId);
    if (mine) return Promise.resolve(mine);
    const inflight = this.acquiring.get(roomId);
    if (inflight) return inflight;
    const p = (async (): Promise<Held | string> => {
      const { redis, prefix } = this.opts;
      if (!this.acquires()) return (await reachable(redis.get(`${prefix}ro:lease:${roomId}`))) ?? '';
      const [ok, token] = (await reachable(redis.eval(ACQUIRE, 2, `${prefix}ro:lease:${roomId}`, `${prefix}ro:epoch:${roomId}`, this.nodeId, String(this.leaseMs), String(Date.now())))) as [number, string];
      if (ok !== 1) return token;
      const h: Held = { token, epoch: Number(token.slice(token.lastIndexOf(':') + 1)), active: 0, idle: null };
      this.held.set(roomId, h);
      this.stats.acquired++;
      this.lastEpoch.set(roomId, h.epoch);
      this.opts.onAcquired?.(roomId, h.epoch);
      return h;
    })();
    this.acquiring.set(roomId, p);
    const clear = () => this.acquiring.delete(roomId);
    p.then(clear, clear);
    return p;
  }

  private async release(roomId: string, h: Held): Promise<void> {
    if (this.held.get(roomId) === h) this.held.delete(roomId);
    try {
      await this.opts.redis.eval(RELEASE, 1, `${this.opts.prefix}ro:lease:${roomId}`, h.token);
    } catch (err) {
      // It expires on its own; until then others wait for it.
      this.opts.logger.warn({ err, roomId }, 'room owner: lease release failed');
    }
  }

  private async renewAll(): Promise<void> {
    const { redis, prefix } = this.opts;
    if (this.opts.canWrite?.() === false) {
      // Our writes would all be refused: let other workers take our rooms now, not at the TTL
      // (and stop announcing this worker as a writer: its entry lapses after one lease period).
      for (const [roomId, h] of [...this.held]) {
        if (h.idle) clearTimeout(h.idle);
        this.dropLost(roomId);
        await this.release(roomId, h);
      }
      await redis.zrem(this.writersKey, this.nodeId).catch(() => undefined);
      return;
    }
    await this.announce();
    await Promise.all(
      [...this.held.entries()].map(async ([roomId, h]) => {
        try {
          const ok = (await redis.eval(RENEW, 1, `${prefix}ro:lease:${roomId}`, h.token, String(this.leaseMs))) as number;
          if (ok !== 1 && this.held.get(roomId) === h) this.dropLost(roomId);
        } catch (err) {
          // Unrenewed, it expires at its TTL and someone else takes over; our late writes are fenced.
          this.opts.logger.warn({ err, roomId }, 'room owner: lease renewal failed');
        }
      }),
    );
  }

  private async forward(
    roomId: string,
    token: string,
    owner: string,
    op: string,
    args: unknown[],
    deadline: number,
    moved: () => Promise<boolean> = async () => (await reachable(this.opts.redis.get(`${this.opts.prefix}ro:lease:${roomId}`))) !== token,
  ): Promise<unknown> {
    const { redis, prefix } = this.opts;
    const id = `${this.nodeId}:${++this.seq}`;
    const req: Request = { id, from: this.nodeId, room: roomId, op, args, deadline };
    const payload = JSON.stringify(req);
    const reqKey = `${prefix}ro:req:${owner}`;
    let resolve!: (r: Reply) => void;
    const replied = new Promise<Reply>((r) => (resolve = r));
    this.pending.set(id, { resolve });
    try {
      await reachable(redis.rpush(reqKey, payload));
      this.stats.forwarded++;
      for (;;) {
        const r = await Promise.race([replied, sleep(Math.min(250, Math.max(1, deadline - Date.now())))]);
        if (r) return this.unpack(r);
        if (Date.now() > deadline) {
          await redis.lrem(reqKey, 1, payload).catch(() => undefined);
          throw unavailable('the room\'s writer did not answer');
        }
        // The target may have died: if its lease is gone and our request is still queued, it
        // never ran and can go elsewhere.
        if ((await moved()) && (await reachable(redis.lrem(reqKey, 1, payload))) === 1) return REROUTE;
      }
    } finally {
      this.pending.delete(id);
    }
  }

  /**
   * From a worker that may not acquire: sends the call to a live writer (which takes the room
   * when it serves it). `roomId` '' is a room-less call (createRoom of a room whose ID the create
   * event decides). Re-routed when the room gets an owner or the writer dies while the request
   * is still queued.
   */
  async forwardToWriter(roomId: string, op: string, args: unknown[], deadline = Date.now() + this.forwardTimeoutMs): Promise<unknown> {
    const writer = await this.pickWriter(roomId === '' ? randomBytes(8).toString('hex') : roomId);
    const lease = `${this.opts.prefix}ro:lease:${roomId}`;
    return this.forward(roomId, '', writer, op, args, deadline, async () => {
      if (roomId !== '' && (await reachable(this.opts.redis.get(lease))) !== null) return true;
      return !(await this.liveWriters()).includes(writer);
    });
  }

  /** Whether this worker takes rooms now: a room writer whose store still lets it write. */
  private acquires(): boolean {
    return this.mayAcquire && this.opts.canWrite?.() !== false;
  }

  /** Writers whose announcement has not expired, sorted. */
  async liveWriters(): Promise<string[]> {
    const all = await reachable(this.opts.redis.zrangebyscore(this.writersKey, Date.now(), '+inf'));
    return all.sort();
  }

  private get writersKey(): string {
    return `${this.opts.prefix}ro:writers`;
  }

  /** Rendezvous hash: the live writer with the highest hash of (writer, key). */
  private async pickWriter(key: string): Promise<string> {
    const writers = (await this.liveWriters()).filter((w) => w !== this.nodeId || this.acquires());
    if (writers.length === 0) {
      throw new MatrixError('M_UNKNOWN', 'No room writer is running; try again', { retry_after_ms: 1000 }, 503);
    }
    let best = writers[0]!;
    let bestScore = '';
    for (const w of writers) {
      const score = createHash('sha256').update(`${w}\u0000${key}`).digest('hex');
      if (score > bestScore) [best, bestScore] = [w, score];
    }
    return best;
  }

  /** A writer's entry in the writer set, valid for one lease period (renewed with the leases). */
  private async announce(): Promise<void> {
    if (!this.acquires() || !this.running) return;
    try {
      const { redis } = this.opts;
      const now = Date.now();
      // Expired entries are dropped on the way: the set holds live writers and the recently dead.
      await redis.multi().zadd(this.writersKey, now + this.leaseMs, this.nodeId).zremrangebyscore(this.writersKey, '-inf', now - 60_000).exec();
    } catch (err) {
      this.opts.logger.warn({ err }, 'room owner: could not announce this writer');
    }
  }

  private unpack(r: Reply): unknown {
    if ('ok' in r) return r.ok;
    if ('notOwner' in r) return REROUTE;
    if ('err' in r) throw new MatrixError(r.err.errcode as Errcode, r.err.message, r.err.extra, r.err.status);
    throw new Error(r.fail);
  }

  private async consume(): Promise<void> {
    const { blocking, prefix } = this.opts;
    const reqKey = `${prefix}ro:req:${this.nodeId}`;
    const repKey = `${prefix}ro:rep:${this.nodeId}`;
    while (this.running) {
      let got: [string, string] | null;
      try {
        got = (await blocking.blpop(reqKey, repKey, 1)) as [string, string] | null;
      } catch (err) {
        if (!this.running) return;
        this.opts.logger.warn({ err }, 'room owner: pop failed');
        await sleep(200);
        continue;
      }
      if (!got) continue;
      const [key, text] = got;
      if (key === repKey) {
        const r = parseTrustedJson<Reply>(text);
        this.pending.get(r.id)?.resolve(r);
      } else {
        const p = this.serve(parseTrustedJson<Request>(text));
        this.serving.add(p);
        void p.finally(() => this.serving.delete(p));
      }
    }
  }

  private async serve(req: Request): Promise<void> {
    if (Date.now() > req.deadline || !this.handler) return;
    const handler = this.handler;
    let reply: Reply;
    try {
      // A room-less request (a room whose ID is not known yet) runs as is; the handler takes
      // the room once it has an ID.
      const got = req.room === '' ? null : await this.acquire(req.room);
      if (got === null) {
        this.stats.served++;
        reply = { id: req.id, ok: (await handler(req.op, req.room, req.args)) ?? null };
      } else if (typeof got === 'string') reply = { id: req.id, notOwner: true };
      else {
        this.stats.served++;
        reply = { id: req.id, ok: (await this.within(req.room, got, () => handler(req.op, req.room, req.args))) ?? null };
      }
    } catch (err) {
      // Not a Matrix error: a bug or an outage the caller will answer as a 500; keep the cause here.
      if (!(err instanceof MatrixError)) this.opts.logger.warn({ err, roomId: req.room, op: req.op }, 'room owner: forwarded operation failed');
      reply =
        err instanceof MatrixError
          ? { id: req.id, err: { errcode: err.errcode, message: err.message, status: err.status, extra: err.extra } }
          : { id: req.id, fail: err instanceof Error ? err.message : String(err) };
    }
    const key = `${this.opts.prefix}ro:rep:${req.from}`;
    try {
      await this.opts.redis.multi().rpush(key, JSON.stringify(reply)).pexpire(key, 60_000).exec();
    } catch (err) {
      this.opts.logger.warn({ err, roomId: req.room }, 'room owner: reply failed');
    }
  }
}

/** Redis unreachable is the cluster's temporary trouble: 503 with the cause kept, never a 500. */
async function reachable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = unavailable('the room\'s writer cannot be reached');
    (e as Error).cause = err;
    throw e;
  }
}

function unavailable(why: string): MatrixError {
  return new MatrixError('M_UNKNOWN', `${why}; try again`, { retry_after_ms: 500 }, 503);
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((r) => setTimeout(() => r(undefined), ms).unref());
}
