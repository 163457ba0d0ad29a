// Each room has one writer at a time across worker processes: a call for a room runs here while
// this worker holds the room's lease (src/cluster/room-leases.ts), or is forwarded to the worker
// that holds it (src/cluster/room-forwarding.ts), or, when nobody holds it and this worker takes
// no rooms, to a live writer (src/cluster/room-writers.ts).
//
// Invariants:
// - A call runs here only while this worker holds the room's lease; a forwarded call that comes
//   back re-routed (the target no longer owns the room, and the call never ran there) is routed
//   again, until the forward timeout, then a retryable 503.
// - Redis unreachable: a call fails with a retryable 503 (nothing runs); held leases lapse and
//   are taken over once Redis is back.
// - Roles (src/cluster/roles.ts): a worker with `mayAcquire: false` (no room_writer role) never
//   takes a lease. It forwards every call: to the lease holder, or, when nobody holds the room,
//   to a live writer (src/cluster/room-writers.ts), which takes the lease when it serves it.
// - A worker that may no longer write (`canWrite` false: its store lease was revoked) takes no
//   room, releases those it holds at the next renewal tick and leaves the writer set: it then
//   forwards like a worker without the room_writer role.

import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MatrixError } from '../errors.js';
import { REROUTE, RoomForwarding, type ForwardHandler } from './room-forwarding.js';
import { RoomLeases } from './room-leases.js';
import { sleep, unavailable } from './room-owner-redis.js';
import { WriterSet } from './room-writers.js';

export type { ForwardHandler } from './room-forwarding.js';

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

export class RoomOwner {
  readonly nodeId: string;
  /** Counts since start: calls sent to another owner, calls served for others, acquisitions. */
  readonly stats = { forwarded: 0, served: 0, acquired: 0 };
  /** See RoomOwnerOptions.mayAcquire. */
  readonly mayAcquire: boolean;
  private readonly leaseMs: number;
  private readonly forwardTimeoutMs: number;
  private running = false;
  private renewer: NodeJS.Timeout | null = null;
  private readonly leases: RoomLeases;
  private readonly writers: WriterSet;
  private readonly forwarding: RoomForwarding;

  constructor(private readonly opts: RoomOwnerOptions) {
    this.nodeId = opts.nodeId ?? randomBytes(8).toString('hex');
    this.leaseMs = opts.leaseMs ?? 5_000;
    this.forwardTimeoutMs = opts.forwardTimeoutMs ?? 10_000;
    this.mayAcquire = opts.mayAcquire ?? true;
    const shared = { redis: opts.redis, prefix: opts.prefix, nodeId: this.nodeId, leaseMs: this.leaseMs, logger: opts.logger };
    const acquires = () => this.acquires();
    this.leases = new RoomLeases({ ...shared, lingerMs: opts.lingerMs ?? 1_000, onAcquired: opts.onAcquired, onLost: opts.onLost }, this.stats, acquires);
    this.writers = new WriterSet(shared, acquires, () => this.running);
    this.forwarding = new RoomForwarding({ ...shared, blocking: opts.blocking }, this.leases, this.stats, () => this.running);
  }

  /** Starts serving forwarded requests with `handler`, and renewing held leases. */
  start(handler: ForwardHandler): void {
    this.running = true;
    this.forwarding.start(handler);
    void this.writers.announce();
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
    this.forwarding.disconnect();
    if (this.mayAcquire) {
      await this.writers.leave().catch((err: unknown) => this.opts.logger.warn({ err }, 'room owner: could not leave the writer set'));
    }
    await this.forwarding.drain();
    await this.leases.releaseAll();
    this.forwarding.failPending('room owner stopped');
  }

  /** The epoch of this worker's latest acquisition of the room (held or since lost). */
  epochOf(roomId: string): number | undefined {
    return this.leases.epochOf(roomId);
  }

  /** Whether this worker holds the room's lease now. */
  holds(roomId: string): boolean {
    return this.leases.holds(roomId);
  }

  /** See RoomLeases.regainAbove: true when this worker still holds the room, now above `recorded`. */
  regainAbove(roomId: string, recorded: number): Promise<boolean> {
    return this.leases.regainAbove(roomId, recorded);
  }

  /** Marks the room's lease as lost here (the store fenced one of our writes). */
  dropLost(roomId: string): void {
    this.leases.dropLost(roomId);
  }

  /**
   * Runs `local` here while holding the room (acquiring it when nobody owns it), or forwards
   * `op(args)` to the worker that owns it and returns its answer.
   */
  async run<T>(roomId: string, local: () => Promise<T>, op: string, args: unknown[]): Promise<T> {
    const deadline = Date.now() + this.forwardTimeoutMs;
    for (;;) {
      const got = await this.leases.acquire(roomId);
      if (typeof got !== 'string') return this.leases.within(roomId, got, local);
      const owner = got.slice(0, got.lastIndexOf(':'));
      if (got === '' && !this.acquires()) {
        const r = await this.forwardToWriter(roomId, op, args, deadline);
        if (r !== REROUTE) return r as T;
      } else if (got === '' || owner === this.nodeId) {
        // Expired between SET NX and GET, or our own token that we no longer track (being
        // released, or lost concurrently): try again shortly.
        await sleep(20);
      } else {
        const r = await this.forwarding.forward(roomId, owner, op, args, deadline, async () => (await this.leases.holder(roomId)) !== got);
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
      const got = await this.leases.acquire(roomId);
      if (typeof got !== 'string') return this.leases.within(roomId, got, local);
      if (Date.now() > deadline) throw unavailable('the room is being written by another worker');
      await sleep(50);
    }
  }

  /**
   * From a worker that may not acquire: sends the call to a live writer (which takes the room
   * when it serves it). `roomId` '' is a room-less call (createRoom of a room whose ID the create
   * event decides). Re-routed when the room gets an owner or the writer dies while the request
   * is still queued.
   */
  async forwardToWriter(roomId: string, op: string, args: unknown[], deadline = Date.now() + this.forwardTimeoutMs): Promise<unknown> {
    const writer = await this.writers.pick(roomId === '' ? randomBytes(8).toString('hex') : roomId);
    return this.forwarding.forward(roomId, writer, op, args, deadline, async () => {
      if (roomId !== '' && (await this.leases.holder(roomId)) !== null) return true;
      return !(await this.writers.live()).includes(writer);
    });
  }

  /** Writers whose announcement has not expired, sorted. */
  liveWriters(): Promise<string[]> {
    return this.writers.live();
  }

  /** Whether this worker takes rooms now: a room writer whose store still lets it write. */
  private acquires(): boolean {
    return this.mayAcquire && this.opts.canWrite?.() !== false;
  }

  private async renewAll(): Promise<void> {
    if (this.opts.canWrite?.() === false) {
      // Our writes would all be refused: let other workers take our rooms now, not at the TTL
      // (and stop announcing this worker as a writer: its entry lapses after one lease period).
      await this.leases.giveUpAll();
      await this.writers.leave().catch(() => undefined);
      return;
    }
    await this.writers.announce();
    await this.leases.renewAll();
  }
}
