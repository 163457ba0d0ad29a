// The forwarding of a room's calls from any worker to the worker that owns it
// (src/cluster/room-owner.ts decides where a call goes; this module carries it there and back).
//
// Invariants:
// - Each worker pops requests from its list `<prefix>ro:req:<node>` and pushes each reply to the
//   caller's list `<prefix>ro:rep:<node>`; one blocking connection pops both. A request carries
//   a deadline and is dropped unexecuted once past it (the caller has given up).
// - A caller whose target's lease changed removes its request from the list (LREM): removed
//   means never executed, so it is re-routed; not removed means it may be running, so the caller
//   waits for the reply until its timeout, and then fails with a retryable 503 (client sends are
//   idempotent by transaction ID, so the retry cannot duplicate).
// - The owner executes a forwarded request only while it holds (or can take) the room's lease
//   (src/cluster/room-leases.ts); otherwise it answers `notOwner` and the caller re-routes.
// - Errors cross as data: a MatrixError keeps errcode, message, status and extra fields; any other
//   error becomes a plain Error with its message (a 500 at the API, as on one node).

import type { Redis } from 'ioredis';
import { MatrixError, type Errcode } from '../errors.js';
import { parseTrustedJson } from '../protocol/canonical-json.js';
import type { RoomLeases } from './room-leases.js';
import { reachable, sleep, unavailable } from './room-owner-redis.js';

/** Executes a forwarded operation here (this worker holds the room's lease meanwhile). */
export type ForwardHandler = (op: string, roomId: string, args: unknown[]) => Promise<unknown>;

export interface ForwardingOptions {
  /** Commands. */
  redis: Redis;
  /** A connection of its own for the blocking pop of requests and replies. */
  blocking: Redis;
  prefix: string;
  nodeId: string;
  logger: { warn: (obj: object, msg: string) => void };
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
export const REROUTE = Symbol('reroute');

export class RoomForwarding {
  private readonly pending = new Map<string, Pending>();
  private readonly serving = new Set<Promise<void>>();
  private handler: ForwardHandler | null = null;
  private loop: Promise<void> | null = null;
  private seq = 0;

  constructor(
    private readonly opts: ForwardingOptions,
    private readonly leases: RoomLeases,
    private readonly stats: { forwarded: number; served: number },
    private readonly running: () => boolean,
  ) {}

  /** Starts serving forwarded requests with `handler` (and reading replies). */
  start(handler: ForwardHandler): void {
    this.handler = handler;
    this.loop = this.consume();
  }

  /** Stops popping requests and replies. */
  disconnect(): void {
    this.opts.blocking.disconnect();
  }

  /** Waits for the pop loop to end and for the requests being served. */
  async drain(): Promise<void> {
    await this.loop?.catch(() => undefined);
    await Promise.allSettled([...this.serving]);
  }

  /** Fails every call still waiting for a reply. */
  failPending(why: string): void {
    for (const p of this.pending.values()) p.resolve({ id: '', fail: why });
    this.pending.clear();
  }

  /**
   * Sends `op(args)` to worker `owner` and returns its answer, or REROUTE when `moved` says the
   * room went elsewhere while the request was still queued (so it never ran).
   */
  async forward(roomId: string, owner: string, op: string, args: unknown[], deadline: number, moved: () => Promise<boolean>): Promise<unknown> {
    const { redis, prefix, nodeId } = this.opts;
    const id = `${nodeId}:${++this.seq}`;
    const req: Request = { id, from: nodeId, room: roomId, op, args, deadline };
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

  private unpack(r: Reply): unknown {
    if ('ok' in r) return r.ok;
    if ('notOwner' in r) return REROUTE;
    if ('err' in r) throw new MatrixError(r.err.errcode as Errcode, r.err.message, r.err.extra, r.err.status);
    throw new Error(r.fail);
  }

  private async consume(): Promise<void> {
    const { blocking, prefix, nodeId } = this.opts;
    const reqKey = `${prefix}ro:req:${nodeId}`;
    const repKey = `${prefix}ro:rep:${nodeId}`;
    while (this.running()) {
      let got: [string, string] | null;
      try {
        got = (await blocking.blpop(reqKey, repKey, 1)) as [string, string] | null;
      } catch (err) {
        if (!this.running()) return;
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
      const got = req.room === '' ? null : await this.leases.acquire(req.room);
      if (got === null) {
        this.stats.served++;
        reply = { id: req.id, ok: (await handler(req.op, req.room, req.args)) ?? null };
      } else if (typeof got === 'string') reply = { id: req.id, notOwner: true };
      else {
        this.stats.served++;
        reply = { id: req.id, ok: (await this.leases.within(req.room, got, () => handler(req.op, req.room, req.args))) ?? null };
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
