// The replication stream: every worker's change records, merged into one ordered feed with a
// cluster watermark, so each worker's read model and sync waiters run the same code as on one
// node (they only ever see `onChanges(records, current)` and `currentPosition()`).
//
// Mechanism (one Redis stream, XADD/XREAD), in four modules:
// - Each worker publishes, in order on one connection, its change records as its local
//   watermark passes them, and heartbeats carrying its *promise*: a position
//   P such that it will never complete a write at or below P that it has not already published.
//   With writes in flight P is its local watermark; idle, it is "now" on the position clock (its
//   next position is above it, see src/store/cassandra/positions.ts). The publishing side:
//   src/cluster/replication-publisher.ts; the entries: src/cluster/replication-entries.ts.
// - Heartbeats are adaptive: every `heartbeatMs` while this worker holds records (its own or
//   another's) or waiters above the cluster watermark, at once when such a record arrives (a
//   write elsewhere waits for our promise to pass it), and every `idleHeartbeatMs` otherwise.
//   An idle cluster's promises only have to show it alive (well within `silentMs`); any write
//   makes every worker that reads its record beat fast until the watermark passed it, so
//   liveness of the watermark does not depend on the idle rate.
// - The cluster watermark is the minimum promise over live workers; which workers are live, and
//   when a silent one is dropped (lease revocation): src/cluster/replication-consumer.ts.
// - Records (local and remote) are buffered and handed to listeners in position order once the
//   watermark passes them: a reader bounded by currentPosition() never skips a write still in
//   flight on another worker (the cluster form of the watermark rule in src/store/stream-id.ts).
//   When the feed may have lost records, listeners get a `reset` reaching past them:
//   src/cluster/replication-release.ts. Losing Redis stalls the cluster watermark (wake-ups
//   wait); it loses no durable data.
//
// Invariants kept here:
// - A worker joins by publishing a hello and then waiting `joinGraceMs` before its first write,
//   so every consumer knows it before any promise could pass its first position. A worker that
//   stops publishes a goodbye after every record it queued.
// - A worker that finds its own lease lost (revoked while it was frozen or cut off from Redis, or
//   expired) rejoins as a new registration: it publishes no heartbeat meanwhile, lets every write
//   it had in flight under the old lease finish (their records go out as usual), says goodbye
//   under the old worker ID, claims a new lease (LocalFeed.rejoin: a new token and usually a new
//   worker ID), publishes a hello under it and writes again only after the join grace, like a
//   worker that just started. Nothing is written under the old lease after the goodbye.
// - Every entry carries its publisher's lease token (`o`) when it has one, so an instance tells
//   its own entries (under any of its tokens) from those of another instance on the same worker
//   ID: a successor that claimed the ID of a frozen worker. Until that frozen worker notices (its
//   next renewal), it ignores the successor's entries (they cannot share its own slot).

import type { Redis } from 'ioredis';
import type { ChangeRecord } from '../store/change-types.js';
import type { AdvanceListener, ChangeListener } from '../store/stream-id.js';
import { ReplicationConsumer } from './replication-consumer.js';
import type { Entry } from './replication-entries.js';
import { ReplicationPublisher } from './replication-publisher.js';
import { RecordRelease } from './replication-release.js';

export interface LocalFeed {
  readonly workerId: number;
  onChanges(listener: ChangeListener): () => void;
  /** See the header: the highest position below which this worker has nothing left to complete. */
  promise(): number;
  /** This worker's lease token, carried by its heartbeats (see the header). */
  readonly leaseOwner?: string;
  /** Revokes another worker's lease; true once `owner` no longer holds it. */
  revokeWorker?(workerId: number, owner: string): Promise<boolean>;
  /** After a revocation, how long until the revoked worker can start no write. */
  readonly leaseStaleMs?: number;
  /** False once this worker lost its own lease (it then revokes nobody). */
  readonly writable?: boolean;
  /** Calls `listener` each time this worker finds its own lease lost. */
  onLeaseLost?(listener: () => void): void;
  /** Claims a new lease once the old one's writes finished (see the header); throws to be retried. */
  rejoin?(): Promise<void>;
  /** Lets writes start under the new lease. */
  admitWrites?(): void;
}

export interface ReplicationOptions {
  /** A connection for XADD and reads. */
  redis: Redis;
  /** A second connection for the blocking XREAD. */
  reader: Redis;
  key: string;
  local: LocalFeed;
  /** Heartbeat interval while records or waiters are above the watermark (see the header). */
  heartbeatMs?: number;
  /** Heartbeat interval otherwise; well below `silentMs`. */
  idleHeartbeatMs?: number;
  /** Silence after which a worker's lease is revoked (see src/cluster/replication-consumer.ts). */
  silentMs?: number;
  deadMs?: number;
  joinGraceMs?: number;
  /** Entries kept in the stream (approximate trim). */
  maxLen?: number;
  /** Buffered records beyond which the buffer is dropped for a reset. */
  maxBuffered?: number;
  now?: () => number;
  logger: { warn: (obj: object, msg: string) => void };
}

export class ReplicationStream {
  private watermark: number;
  private running = false;
  private heartbeat: NodeJS.Timeout | null = null;
  /** The armed heartbeat timer is the fast one. */
  private heartbeatFast = false;
  private loop: Promise<void> | null = null;
  private heartbeatPending = false;
  private unsubscribeLocal: (() => void) | null = null;
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly advanceListeners = new Set<AdvanceListener>();
  private waiters: Array<{ pos: number; resolve: () => void }> = [];
  /** A rejoin is under way (see the header). */
  private rejoining: Promise<void> | null = null;
  /** No heartbeats: from a rejoin's start until its hello under the new lease. */
  private quiet = false;
  private readonly opts: Required<Omit<ReplicationOptions, 'redis' | 'reader' | 'key' | 'local' | 'logger' | 'now'>> & ReplicationOptions;
  private readonly release: RecordRelease;
  private readonly publisher: ReplicationPublisher;
  private readonly consumer: ReplicationConsumer;

  constructor(opts: ReplicationOptions) {
    this.opts = { heartbeatMs: 10, idleHeartbeatMs: 250, silentMs: 3_000, deadMs: 15_000, joinGraceMs: 1_000, maxLen: 100_000, maxBuffered: 100_000, ...opts };
    this.watermark = opts.local.promise();
    this.release = new RecordRelease(this.opts.maxBuffered);
    this.publisher = new ReplicationPublisher(this.opts);
    this.consumer = new ReplicationConsumer(this.opts, this.release, {
      running: () => this.running,
      advance: () => {
        this.advance();
        // Another worker's records wait for our promise too: beat now rather than at the idle rate.
        if (this.busy()) this.demandBeat();
      },
      now: () => this.now(),
    });
  }

  /**
   * Learns the live workers from the stream's recent entries, announces this worker, starts
   * consuming, and waits out the join grace period (no local write may start before it resolves).
   */
  async start(): Promise<void> {
    const { local } = this.opts;
    await this.consumer.learn();
    this.watermark = this.computeWatermark();
    this.running = true;
    // Lost again while rejoining (its new lease too): once more when this one is done.
    const rejoin = () => {
      if (!this.running || this.rejoining || !local.rejoin) return;
      this.rejoining = this.rejoin().finally(() => {
        this.rejoining = null;
        if (local.writable === false) setTimeout(rejoin, 200).unref();
      });
    };
    local.onLeaseLost?.(rejoin);
    this.unsubscribeLocal = local.onChanges((changes, current) => void this.publish('c', changes, false, current));
    await this.publish('h');
    this.armBeat();
    this.loop = this.consumer.run();
    await new Promise((r) => setTimeout(r, this.opts.joinGraceMs));
  }

  /** The cluster watermark. */
  currentPosition(): number {
    return this.watermark;
  }

  onChanges(listener: ChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  onAdvance(listener: AdvanceListener): () => void {
    this.advanceListeners.add(listener);
    return () => this.advanceListeners.delete(listener);
  }

  /**
   * For this worker's own write at `pos`: resolves once its change record is on the stream (the
   * XADD that carried it was answered) and the cluster watermark has reached `pos`. Acknowledging
   * a client before the record left this process would lose the delivery on every other worker
   * if this one died in between.
   */
  async waitForLocal(pos: number): Promise<void> {
    if (!this.publisher.hasPublished(pos)) await this.publisher.whenPublished(pos);
    await this.waitFor(pos);
  }

  /** Resolves once the cluster watermark has reached `pos`. */
  waitFor(pos: number): Promise<void> {
    if (this.watermark >= pos) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ pos, resolve });
      this.demandBeat();
    });
  }

  /** Workers currently counted in the watermark. */
  liveWorkers(): number[] {
    return this.consumer.liveWorkers();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.heartbeat) clearTimeout(this.heartbeat);
    this.heartbeat = null;
    await this.rejoining;
    this.unsubscribeLocal?.();
    await this.publisher.drain(); // records already queued still go out
    await this.publish('bye', undefined, true).catch(() => undefined);
    this.opts.reader.disconnect();
    await this.loop?.catch(() => undefined);
    // Nothing advances from here on: release whoever still waits rather than hang shutdown (a
    // write completing this late reaches other workers only through their store reads).
    this.publisher.close();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  /** `as` publishes under an earlier identity of this instance (a rejoin's goodbye). */
  /** Resolves true once Redis took the entry, false if it was not sent (logged). */
  private publish(t: Entry['t'], changes?: ChangeRecord[], force = false, localCurrent?: number, as?: { w: number; o?: string }): Promise<boolean> {
    if (!this.running && !force) return Promise.resolve(false);
    if (t === 'h' && this.quiet && !force) return Promise.resolve(false);
    const { p, sent } = this.publisher.queue(t, changes, localCurrent, as);
    if (t === 'c') this.release.keep(changes ?? []); // our own records need no round trip
    if (t !== 'bye' && !as && this.consumer.promised(this.opts.local.workerId, p)) this.advance();
    if (t === 'c' && this.busy()) this.demandBeat();
    return sent;
  }

  /** Records or waiters above the watermark (see the header: the fast heartbeat). */
  private busy(): boolean {
    return this.release.pending || this.waiters.length > 0;
  }

  /** Arms the next heartbeat: fast while busy, else at the idle rate. */
  private armBeat(): void {
    if (!this.running) return;
    if (this.heartbeat) clearTimeout(this.heartbeat);
    this.heartbeatFast = this.busy();
    this.heartbeat = setTimeout(() => this.beat(), this.heartbeatFast ? this.opts.heartbeatMs : this.opts.idleHeartbeatMs);
    this.heartbeat.unref();
  }

  private beat(): void {
    this.heartbeat = null;
    if (!this.running) return;
    // One heartbeat in flight at most: a slow Redis must not build a backlog of them.
    if (!this.heartbeatPending) {
      this.heartbeatPending = true;
      void this.publish('h').finally(() => (this.heartbeatPending = false));
    }
    this.armBeat();
  }

  /** Something now waits for the watermark: beat at once if the idle timer was armed. */
  private demandBeat(): void {
    if (!this.running || this.heartbeatFast || this.heartbeat === null) return;
    clearTimeout(this.heartbeat);
    this.beat();
  }

  /**
   * This worker found its lease lost: rejoin under a new one (see the header), retrying while
   * no lease can be claimed. Heartbeats are off throughout (publish checks `quiet`).
   */
  private async rejoin(): Promise<void> {
    try {
      await this.rejoinOnce();
    } finally {
      this.quiet = false;
    }
  }

  private async rejoinOnce(): Promise<void> {
    const { local, logger } = this.opts;
    const old = { w: local.workerId, o: local.leaseOwner };
    this.quiet = true;
    logger.warn({ worker: old.w }, 'replication: this worker\'s lease was lost; rejoining under a new one');
    for (;;) {
      if (!this.running) return;
      try {
        await local.rejoin!(); // returns once the old lease's writes finished and a new one is held
        break;
      } catch (err) {
        logger.warn({ err }, 'replication: claiming a new worker lease failed; trying again');
        await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    }
    if (!this.running || (local.workerId === old.w && local.leaseOwner === old.o)) return;
    // Every record of the old lease's writes is queued ahead of this goodbye.
    await this.publish('bye', undefined, true, undefined, old);
    this.consumer.rejoined(old.w, this.publisher.lastQueuedRecord);
    this.quiet = false;
    // The join grace counts from a hello that reached Redis: a consumer that never learnt of the
    // new worker ID would let its watermark pass the new writes (a new worker's first entry is
    // taken as its first, with no gap to notice).
    while (!(await this.publish('h', undefined, true))) {
      if (!this.running) return;
      await new Promise((r) => setTimeout(r, 500).unref());
    }
    await new Promise((r) => setTimeout(r, this.opts.joinGraceMs).unref());
    if (!this.running) return;
    local.admitWrites?.();
    this.advance();
    logger.warn({ worker: local.workerId, was: old.w }, 'replication: rejoined under a new worker lease; writing again');
  }

  private computeWatermark(): number {
    const min = this.consumer.minPromise();
    return min === Infinity ? this.watermark : min;
  }

  private advance(): void {
    const next = this.computeWatermark();
    if (next <= this.watermark) return;
    this.watermark = next;
    const ready = this.release.release(next);
    for (const l of [...this.changeListeners]) {
      try {
        l(ready, next);
      } catch (err) {
        this.opts.logger.warn({ err }, 'replication: change listener failed');
      }
    }
    if (this.waiters.length > 0) {
      const done = this.waiters.filter((w) => w.pos <= next);
      this.waiters = this.waiters.filter((w) => w.pos > next);
      for (const w of done) w.resolve();
    }
    for (const l of [...this.advanceListeners]) {
      try {
        l(next);
      } catch (err) {
        this.opts.logger.warn({ err }, 'replication: advance listener failed');
      }
    }
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }
}
