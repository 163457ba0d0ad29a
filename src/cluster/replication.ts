// The replication stream: every worker's change records, merged into one ordered feed with a
// cluster watermark, so each worker's read model and sync waiters run the same code as on one
// node (they only ever see `onChanges(records, current)` and `currentPosition()`).
//
// Mechanism (one Redis stream, XADD/XREAD):
// - Each worker publishes, in order on one connection, its change records as its local
//   watermark passes them, and a heartbeat every `heartbeatMs` carrying its *promise*: a position
//   P such that it will never complete a write at or below P that it has not already published.
//   With writes in flight P is its local watermark; idle, it is "now" on the position clock (its
//   next position is above it, see src/store/cassandra/positions.ts).
// - The cluster watermark is the minimum promise over live workers. Records (local and remote)
//   are buffered and handed to listeners in position order once the watermark passes them: a
//   reader bounded by currentPosition() never skips a write still in flight on another worker
//   (the cluster form of the watermark rule in src/store/stream-id.ts).
// - A worker joins by publishing a hello and then waiting `joinGraceMs` before its first write,
//   so every consumer knows it before any promise could pass its first position. A worker that
//   stops publishes a goodbye.
// - A worker that goes silent (no entry for `silentMs`, measured on the stream's own clock, the
//   IDs Redis gives entries, between entries this consumer read: so neither a Redis outage nor
//   this consumer being frozen itself makes anyone look silent) is dropped once it provably can
//   start no further write: this consumer revokes its worker lease (LocalFeed.revokeWorker, an
//   LWT naming the lease token its heartbeats carry) and then waits `leaseStaleMs` (+ a margin)
//   of its own clock, past which a worker writes nothing without first renewing a lease it no
//   longer holds (src/store/cassandra/positions.ts). A reader therefore never skips a position a
//   live writer may still complete, except one whose write was already past its last lease check
//   when it froze (the check-then-act gap, as for the room fence).
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
// - Without revocation (a backend without it, a worker whose token is unknown) a silent worker
//   is dropped after `deadMs`, which must exceed its worker lease TTL.
// - Records are hints for caches (see src/store/change-types.ts): when the feed may have lost
//   entries (Redis restarted, the stream was trimmed past us, a buffer overflowed), consumers get
//   a `reset` record and fall back to the store. Losing Redis stalls the cluster watermark
//   (wake-ups wait); it loses no durable data. When reads resume after Redis was unreachable,
//   every known worker's silence restarts from then: none is dropped for Redis's outage.
// - A reset must reach past every record it stands for. Each entry carries `r`, the position of
//   the last change record its worker queued before it, so a consumer that sees a gap in a
//   worker's entries knows whether records were lost and how far up they lie (the `horizon`).
//   Lost records lie above the watermark when the gap is seen (the worker's promise covered
//   none of them yet) but may lie above the next watermark too, and a reset at a lower position
//   would leave caches claiming nothing changed there once the watermark passes them. So the
//   reset names the horizon (consumers hold nothing from memory at or below it: they read those
//   positions from the store, the resync), and a second reset once the watermark reaches the
//   horizon wakes every reader, whose lost writes just became readable.

import type { Redis } from 'ioredis';
import type { ChangeRecord } from '../store/change-types.js';
import type { AdvanceListener, ChangeListener } from '../store/stream-id.js';

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
  heartbeatMs?: number;
  /** Silence after which a worker's lease is revoked (see the header). */
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

interface WorkerState {
  promise: number;
  seenAt: number;
  /** Stream time (ms of its entry ID) of its latest entry. */
  lastAt: number;
  seq: number;
  /** Its lease token, from its heartbeats. */
  owner?: string;
  /** `r` of its latest entry: the last change record it queued that this consumer knows of. */
  r: number;
  /** A revocation of its lease is under way. */
  revoking?: boolean;
  /** Not before: after a revocation Cassandra did not answer. */
  revokeAfter?: number;
}

// `r` (see the header) is absent from entries of workers that predate it.
type Entry =
  | { t: 'c'; w: number; s: number; p: number; r?: number; c: ChangeRecord[]; o?: string }
  | { t: 'h'; w: number; s: number; p: number; r?: number; o?: string }
  | { t: 'bye'; w: number; s: number; p: number; r?: number; o?: string };

/** Beyond leaseStaleMs, before a revoked worker is dropped: its last write's transit. */
const REVOKE_MARGIN_MS = 250;
/** Lease tokens this instance remembers as its own (one per rejoin). */
const OWN_TOKENS = 16;

export class ReplicationStream {
  private readonly workers = new Map<number, WorkerState>();
  private buffer: ChangeRecord[] = [];
  private watermark: number;
  private lastId = '$';
  private seq = 0;
  private running = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private pendingReset = false;
  /** How far up the records the pending reset stands for may lie (see the header). */
  private resetHorizon = -Infinity;
  /** A reset named this horizon above the watermark: wake every reader once it is reached. */
  private wakeAt: number | null = null;
  /** Position of the last change record this worker queued (`r` of its next entry). */
  private lastQueuedRecord = 0;
  /** Reads have been failing (Redis unreachable) since the last successful one. */
  private readsFailing = false;
  private heartbeatPending = false;
  /** This worker's local watermark as of the last record XADD that was answered. */
  private publishedThrough = -Infinity;
  private publishWaiters: Array<{ pos: number; resolve: () => void }> = [];
  private publishChain: Promise<unknown> = Promise.resolve();
  private unsubscribeLocal: (() => void) | null = null;
  private readonly changeListeners = new Set<ChangeListener>();
  private readonly advanceListeners = new Set<AdvanceListener>();
  private waiters: Array<{ pos: number; resolve: () => void }> = [];
  /** Stream time of the latest entry read (any worker's, ours included). */
  private streamNow = 0;
  /** Stream time from which this consumer has read every entry (silence counts from it). */
  private observedFrom = Infinity;
  /** The next entry read starts a stretch read without a gap (at start, after a read failure). */
  private observeFromNext = true;
  /** Every lease token this instance has published under (its entries are skipped on reading). */
  private readonly ownTokens = new Set<string>();
  /** A rejoin is under way (see the header). */
  private rejoining: Promise<void> | null = null;
  /** No heartbeats: from a rejoin's start until its hello under the new lease. */
  private quiet = false;
  private readonly opts: Required<Omit<ReplicationOptions, 'redis' | 'reader' | 'key' | 'local' | 'logger' | 'now'>> & ReplicationOptions;

  constructor(opts: ReplicationOptions) {
    this.opts = { heartbeatMs: 10, silentMs: 3_000, deadMs: 15_000, joinGraceMs: 1_000, maxLen: 100_000, maxBuffered: 100_000, ...opts };
    this.watermark = opts.local.promise();
  }

  /**
   * Learns the live workers from the stream's recent entries, announces this worker, starts
   * consuming, and waits out the join grace period (no local write may start before it resolves).
   */
  async start(): Promise<void> {
    const { redis, key, local } = this.opts;
    const now = this.now();
    const recent = (await redis.xrevrange(key, '+', '-', 'COUNT', 2000)) as Array<[string, string[]]>;
    if (recent.length > 0) this.lastId = recent[0]![0];
    for (const [id, fields] of recent.reverse()) {
      const e = decode(fields);
      if (!e || e.w === local.workerId) continue;
      const at = Number(id.split('-')[0]);
      if (e.t === 'bye') this.workers.delete(e.w);
      else if (now - at < this.opts.deadMs) {
        const owner = e.t === 'h' && typeof e.o === 'string' ? e.o : undefined;
        this.workers.set(e.w, { promise: e.p, seenAt: at, lastAt: at, seq: e.s, r: entryRecords(e), owner: owner ?? this.workers.get(e.w)?.owner });
      }
    }
    this.workers.set(local.workerId, { promise: local.promise(), seenAt: now, lastAt: 0, seq: 0, r: 0 });
    if (local.leaseOwner !== undefined) this.ownTokens.add(local.leaseOwner);
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
    // One heartbeat in flight at most: a slow Redis must not build a backlog of them.
    this.heartbeat = setInterval(() => {
      if (this.heartbeatPending) return;
      this.heartbeatPending = true;
      void this.publish('h').finally(() => (this.heartbeatPending = false));
    }, this.opts.heartbeatMs);
    this.heartbeat.unref();
    this.loop = this.consume();
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
    if (this.publishedThrough < pos) {
      await new Promise<void>((resolve) => this.publishWaiters.push({ pos, resolve }));
    }
    await this.waitFor(pos);
  }

  /** Resolves once the cluster watermark has reached `pos`. */
  waitFor(pos: number): Promise<void> {
    if (this.watermark >= pos) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pos, resolve }));
  }

  /** Workers currently counted in the watermark. */
  liveWorkers(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.rejoining;
    this.unsubscribeLocal?.();
    await this.publishChain.catch(() => undefined); // records already queued still go out
    await this.publish('bye', undefined, true).catch(() => undefined);
    this.opts.reader.disconnect();
    await this.loop?.catch(() => undefined);
    // Nothing advances from here on: release whoever still waits rather than hang shutdown (a
    // write completing this late reaches other workers only through their store reads).
    for (const w of [...this.publishWaiters, ...this.waiters]) w.resolve();
    this.publishWaiters = [];
    this.waiters = [];
  }

  /** `as` publishes under an earlier identity of this instance (a rejoin's goodbye). */
  /** Resolves true once Redis took the entry, false if it was not sent (logged). */
  private publish(t: Entry['t'], changes?: ChangeRecord[], force = false, localCurrent?: number, as?: { w: number; o?: string }): Promise<boolean> {
    if (!this.running && !force) return Promise.resolve(false);
    if (t === 'h' && this.quiet && !force) return Promise.resolve(false);
    const { redis, key, local, maxLen } = this.opts;
    // The promise is read when the entry is queued: records queued earlier are sent first on the
    // same connection, so no promise reaches a consumer before the records it covers.
    const p = local.promise();
    const s = ++this.seq;
    const w = as?.w ?? local.workerId;
    const o = as ? as.o : local.leaseOwner;
    const r = this.lastQueuedRecord;
    const entry: Entry = t === 'c' ? { t, w, s, p, r, c: changes ?? [] } : { t, w, s, p, r };
    if (o !== undefined) entry.o = o;
    if (t === 'c') for (const c of changes ?? []) this.lastQueuedRecord = Math.max(this.lastQueuedRecord, c.stream);
    if (t === 'c') for (const c of changes ?? []) this.buffer.push(c); // our own records need no round trip
    const sent = this.publishChain
      .then(() =>
        redis.xadd(key, 'MAXLEN', '~', String(maxLen), '*', 'e', JSON.stringify(entry)).then(
          () => true,
          (err: unknown) => {
            // Lost entries make every consumer's feed incomplete: they will see the seq gap, reset
            // and read from the store, so the write is not lost to them either.
            this.opts.logger.warn({ err }, 'replication: publish failed');
            return false;
          },
        ),
      )
      .then((ok) => {
        if (localCurrent !== undefined) this.published(localCurrent);
        return ok;
      });
    this.publishChain = sent;
    const self = this.workers.get(local.workerId);
    if (self && t !== 'bye' && !as) {
      self.promise = Math.max(self.promise, p);
      self.seenAt = this.now();
      this.advance();
    }
    return sent;
  }

  private async consume(): Promise<void> {
    const { reader, key, local } = this.opts;
    while (this.running) {
      let res: Array<[string, Array<[string, string[]]>]> | null;
      try {
        res = (await reader.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', key, this.lastId)) as typeof res;
      } catch (err) {
        if (!this.running) return;
        if (!this.readsFailing) this.opts.logger.warn({ err }, 'replication: read failed; will reset the feed when it resumes');
        this.pendingReset = true;
        this.readsFailing = true;
        // Entries published while we could not read are skipped ('$'): silence counts again from
        // the first entry read after.
        this.observeFromNext = true;
        this.lastId = '$';
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const now = this.now();
      if (this.readsFailing) {
        // Reads are back after Redis was unreachable: the other workers' silence meanwhile was
        // Redis's, not theirs, and their first entries may come a reconnect later than ours.
        // Each gets a full deadMs from now to be heard before it is dropped (dropping a live
        // worker would let the watermark pass writes it still has in flight).
        this.readsFailing = false;
        for (const st of this.workers.values()) st.seenAt = Math.max(st.seenAt, now);
      }
      if (res) {
        for (const [, entries] of res) {
          for (const [id, fields] of entries) {
            this.lastId = id;
            const at = Number(id.split('-')[0]);
            if (this.observeFromNext) {
              this.observeFromNext = false;
              this.observedFrom = at;
            }
            if (at > this.streamNow) this.streamNow = at;
            const e = decode(fields);
            if (!e || this.isOwn(e)) continue;
            // Another instance on our worker ID: ours was revoked and taken (see the header).
            if (e.w === local.workerId) continue;
            this.ingest(e, now, at);
          }
        }
      }
      // A worker that lost its own lease is no authority on anyone else's.
      const mayRevoke = local.revokeWorker !== undefined && local.writable !== false;
      for (const [w, st] of this.workers) {
        if (w === local.workerId) continue;
        if (now - st.seenAt > this.opts.deadMs) this.drop(w, 'silent past its lease TTL');
        else if (
          mayRevoke &&
          this.streamNow - Math.max(st.lastAt, this.observedFrom) > this.opts.silentMs &&
          st.owner !== undefined &&
          !st.revoking &&
          now >= (st.revokeAfter ?? 0)
        ) {
          void this.revoke(w, st, st.owner);
        }
      }
      this.advance();
    }
  }

  private isOwn(e: Entry): boolean {
    return e.o !== undefined ? this.ownTokens.has(e.o) : e.w === this.opts.local.workerId;
  }

  /**
   * This worker found its lease lost: rejoin under a new one (see the header), retrying while
   * no lease can be claimed. Heartbeats are off throughout (publish checks `rejoining`).
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
    this.workers.delete(old.w);
    if (local.leaseOwner !== undefined) {
      this.ownTokens.add(local.leaseOwner);
      if (this.ownTokens.size > OWN_TOKENS) this.ownTokens.delete(this.ownTokens.values().next().value!);
    }
    this.workers.set(local.workerId, { promise: local.promise(), seenAt: this.now(), lastAt: 0, seq: 0, r: this.lastQueuedRecord });
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

  /**
   * Revokes a silent worker's lease, waits until it can start no write, and drops it if it is
   * still silent (see the header). One that spoke meanwhile stays counted: it was only slow.
   */
  private async revoke(w: number, st: WorkerState, owner: string): Promise<void> {
    const { local } = this.opts;
    st.revoking = true;
    const seen = st.seenAt;
    try {
      if (!(await local.revokeWorker!(w, owner))) {
        // Cassandra did not answer: try again a little later.
        st.revokeAfter = this.now() + Math.max(100, this.opts.silentMs / 3);
        return;
      }
      this.opts.logger.warn({ worker: w }, 'replication: silent worker\'s lease revoked; dropping it once it can write nothing more');
      await new Promise((r) => setTimeout(r, (local.leaseStaleMs ?? 0) + REVOKE_MARGIN_MS).unref());
      if (this.running && this.workers.get(w) === st && st.seenAt === seen) {
        this.drop(w, 'silent, lease revoked');
        this.advance();
      }
    } catch (err) {
      this.opts.logger.warn({ err, worker: w }, 'replication: revoking a silent worker failed');
    } finally {
      st.revoking = false;
    }
  }

  private drop(w: number, why: string): void {
    this.opts.logger.warn({ worker: w, why }, 'replication: worker no longer waited for');
    this.workers.delete(w);
    // It may have completed writes whose records it never published (it died between its
    // commit and its XADD, e.g. a send a client then retried elsewhere and got deduplicated):
    // consumers drop their caches and read those positions from the store.
    this.pendingReset = true;
  }

  /** Entries of worker `st` between its last one read and `e` were lost (see the header). */
  private lostEntries(st: WorkerState, e: Entry): void {
    // Only heartbeats lost: nothing to resync.
    if (e.r !== undefined && e.r <= st.r) return;
    this.pendingReset = true;
    // A worker without `r`: its promise bounds every record it queued before this entry.
    this.resetHorizon = Math.max(this.resetHorizon, e.r ?? e.p);
    this.opts.logger.warn({ worker: e.w, horizon: this.resetHorizon }, 'replication: change records lost; resyncing from the store up to the horizon');
  }

  private ingest(e: Entry, now: number, at: number): void {
    let st = this.workers.get(e.w);
    if (e.t === 'bye') {
      // Everything it completed was published before the goodbye, but maybe not read by us.
      if (st && e.s !== st.seq + 1) this.lostEntries(st, e);
      this.workers.delete(e.w);
      return;
    }
    if (!st) {
      // A hello, or a worker we had dropped: count it from here on. A worker first heard after
      // its hello (Redis lost that, or we had dropped it) may have queued records we never read.
      st = { promise: e.p, seenAt: now, lastAt: at, seq: e.s - 1, r: e.s > 1 ? -Infinity : (e.r ?? 0) };
      this.workers.set(e.w, st);
      if (e.s > 1 && (e.r === undefined || e.r > 0)) this.lostEntries(st, e);
    }
    if (e.s !== st.seq + 1) this.lostEntries(st, e);
    st.r = Math.max(st.r, entryRecords(e));
    st.seq = e.s;
    st.seenAt = now;
    st.lastAt = Math.max(st.lastAt, at);
    if (e.t === 'h' && typeof e.o === 'string') st.owner = e.o;
    if (e.t === 'c') {
      for (const c of e.c) this.buffer.push(c);
      if (this.buffer.length > this.opts.maxBuffered) {
        for (const c of this.buffer) this.resetHorizon = Math.max(this.resetHorizon, c.stream);
        this.buffer = [];
        this.pendingReset = true;
      }
    }
    st.promise = Math.max(st.promise, e.p);
  }

  private published(through: number): void {
    if (through <= this.publishedThrough) return;
    this.publishedThrough = through;
    if (this.publishWaiters.length === 0) return;
    const done = this.publishWaiters.filter((w) => w.pos <= through);
    this.publishWaiters = this.publishWaiters.filter((w) => w.pos > through);
    for (const w of done) w.resolve();
  }

  private computeWatermark(): number {
    let min = Infinity;
    for (const st of this.workers.values()) min = Math.min(min, st.promise);
    return min === Infinity ? this.watermark : min;
  }

  private advance(): void {
    const next = this.computeWatermark();
    if (next <= this.watermark) return;
    this.watermark = next;
    const ready: ChangeRecord[] = [];
    if (this.buffer.length > 0) {
      this.buffer.sort((a, b) => a.stream - b.stream);
      let i = 0;
      while (i < this.buffer.length && this.buffer[i]!.stream <= next) i++;
      ready.push(...this.buffer.splice(0, i));
    }
    if (this.pendingReset) {
      // Records lost up to the horizon may still be above the watermark: the reset covers them,
      // and the readers are woken again when they become readable.
      this.pendingReset = false;
      ready.length = 0;
      ready.push({ kind: 'reset', stream: Math.max(next, this.resetHorizon) });
      if (this.wakeAt !== null && next >= this.wakeAt) this.wakeAt = null;
      if (this.resetHorizon > next) this.wakeAt = Math.max(this.wakeAt ?? -Infinity, this.resetHorizon);
      this.resetHorizon = -Infinity;
    } else if (this.wakeAt !== null && next >= this.wakeAt) {
      this.wakeAt = null;
      ready.length = 0;
      ready.push({ kind: 'reset', stream: next });
    }
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

/** The last change record a worker queued as of entry `e` (its own records included). */
function entryRecords(e: Entry): number {
  let r = e.r ?? 0;
  if (e.t === 'c') for (const c of e.c) r = Math.max(r, c.stream);
  return r;
}

function decode(fields: string[]): Entry | null {
  const i = fields.indexOf('e');
  if (i < 0 || i + 1 >= fields.length) return null;
  try {
    const e = JSON.parse(fields[i + 1]!) as Entry;
    if (typeof e.w !== 'number' || typeof e.s !== 'number' || typeof e.p !== 'number') return null;
    if (e.r !== undefined && typeof e.r !== 'number') return null;
    if (e.t === 'c' && !Array.isArray(e.c)) return null;
    return e;
  } catch {
    return null;
  }
}
