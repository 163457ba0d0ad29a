// The reading side of the replication stream: which workers the cluster watermark waits for, and
// what their entries say (src/cluster/replication.ts has the mechanism as a whole).
//
// Invariants:
// - The cluster watermark is the minimum promise over the workers counted here (minPromise).
//   A worker is counted from its first entry read (or from the recent entries read at start),
//   and stops being counted by its goodbye, or when dropped: never while it may still complete
//   a write the watermark would pass.
// - A worker that goes silent (no entry for `silentMs`, measured on the stream's own clock, the
//   IDs Redis gives entries, between entries this consumer read: so neither a Redis outage nor
//   this consumer being frozen itself makes anyone look silent) is dropped once it provably can
//   start no further write: this consumer revokes its worker lease (LocalFeed.revokeWorker, an
//   LWT naming the lease token its heartbeats carry) and then waits `leaseStaleMs` (+ a margin)
//   of its own clock, past which a worker writes nothing without first renewing a lease it no
//   longer holds (src/store/cassandra/positions.ts). A reader therefore never skips a position a
//   live writer may still complete, except one whose write was already past its last lease check
//   when it froze (the check-then-act gap, as for the room fence). A worker that spoke meanwhile
//   stays counted: it was only slow.
// - Without revocation (a backend without it, a worker whose token is unknown) a silent worker
//   is dropped after `deadMs`, which must exceed its worker lease TTL. A worker that lost its
//   own lease revokes nobody.
// - When reads resume after Redis was unreachable, every known worker's silence restarts from
//   then: none is dropped for Redis's outage. Entries published meanwhile are skipped, and the
//   feed resets.
// - A dropped worker, or a gap in a worker's entries (`s`) that `r` says hid change records,
//   makes the feed reset (src/cluster/replication-release.ts), up to the lost records' horizon.
// - Entries under any lease token this instance published with are its own, and skipped; so
//   are those of another instance on its worker ID (a successor that claimed the ID of this
//   instance while it was frozen: until it notices, at its next renewal, it ignores them).

import type { Redis } from 'ioredis';
import { decodeEntry, entryRecords, entryTime, type Entry } from './replication-entries.js';
import type { RecordRelease } from './replication-release.js';
import type { LocalFeed } from './replication.js';

export interface ConsumerOptions {
  /** For the recent entries read at start. */
  redis: Redis;
  /** A connection of its own for the blocking XREAD. */
  reader: Redis;
  key: string;
  local: LocalFeed;
  silentMs: number;
  deadMs: number;
  logger: { warn: (obj: object, msg: string) => void };
}

export interface ConsumerHooks {
  running: () => boolean;
  /** The watermark may have moved: recompute it and release what it passed. */
  advance: () => void;
  now: () => number;
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

/** Beyond leaseStaleMs, before a revoked worker is dropped: its last write's transit. */
const REVOKE_MARGIN_MS = 250;
/** Lease tokens this instance remembers as its own (one per rejoin). */
const OWN_TOKENS = 16;

export class ReplicationConsumer {
  private readonly workers = new Map<number, WorkerState>();
  private lastId = '$';
  /** Reads have been failing (Redis unreachable) since the last successful one. */
  private readsFailing = false;
  /** Stream time of the latest entry read (any worker's, ours included). */
  private streamNow = 0;
  /** Stream time from which this consumer has read every entry (silence counts from it). */
  private observedFrom = Infinity;
  /** The next entry read starts a stretch read without a gap (at start, after a read failure). */
  private observeFromNext = true;
  /** Every lease token this instance has published under (its entries are skipped on reading). */
  private readonly ownTokens = new Set<string>();

  constructor(
    private readonly opts: ConsumerOptions,
    private readonly release: RecordRelease,
    private readonly hooks: ConsumerHooks,
  ) {}

  /** Learns the live workers from the stream's recent entries, and counts this one. */
  async learn(): Promise<void> {
    const { redis, key, local } = this.opts;
    const now = this.hooks.now();
    const recent = (await redis.xrevrange(key, '+', '-', 'COUNT', 2000)) as Array<[string, string[]]>;
    if (recent.length > 0) this.lastId = recent[0]![0];
    for (const [id, fields] of recent.reverse()) {
      const e = decodeEntry(fields);
      if (!e || e.w === local.workerId) continue;
      const at = entryTime(id);
      if (e.t === 'bye') this.workers.delete(e.w);
      else if (now - at < this.opts.deadMs) {
        const owner = e.t === 'h' && typeof e.o === 'string' ? e.o : undefined;
        this.workers.set(e.w, { promise: e.p, seenAt: at, lastAt: at, seq: e.s, r: entryRecords(e), owner: owner ?? this.workers.get(e.w)?.owner });
      }
    }
    this.workers.set(local.workerId, { promise: local.promise(), seenAt: now, lastAt: 0, seq: 0, r: 0 });
    if (local.leaseOwner !== undefined) this.ownTokens.add(local.leaseOwner);
  }

  /** The least promise of the workers counted; Infinity when none is. */
  minPromise(): number {
    let min = Infinity;
    for (const st of this.workers.values()) min = Math.min(min, st.promise);
    return min;
  }

  /** Workers currently counted in the watermark. */
  liveWorkers(): number[] {
    return [...this.workers.keys()].sort((a, b) => a - b);
  }

  /** This worker published promise `p`; false if it is not counted. */
  promised(workerId: number, p: number): boolean {
    const self = this.workers.get(workerId);
    if (!self) return false;
    self.promise = Math.max(self.promise, p);
    self.seenAt = this.hooks.now();
    return true;
  }

  /** After a rejoin: the old worker ID said goodbye; count the new one, with its new token. */
  rejoined(old: number, lastQueuedRecord: number): void {
    const { local } = this.opts;
    this.workers.delete(old);
    if (local.leaseOwner !== undefined) {
      this.ownTokens.add(local.leaseOwner);
      if (this.ownTokens.size > OWN_TOKENS) this.ownTokens.delete(this.ownTokens.values().next().value!);
    }
    this.workers.set(local.workerId, { promise: local.promise(), seenAt: this.hooks.now(), lastAt: 0, seq: 0, r: lastQueuedRecord });
  }

  /** Reads the stream until stopped. */
  async run(): Promise<void> {
    const { reader, key, local } = this.opts;
    while (this.hooks.running()) {
      let res: Array<[string, Array<[string, string[]]>]> | null;
      try {
        res = (await reader.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', key, this.lastId)) as typeof res;
      } catch (err) {
        if (!this.hooks.running()) return;
        if (!this.readsFailing) this.opts.logger.warn({ err }, 'replication: read failed; will reset the feed when it resumes');
        this.release.reset();
        this.readsFailing = true;
        // Entries published while we could not read are skipped ('$'): silence counts again from
        // the first entry read after.
        this.observeFromNext = true;
        this.lastId = '$';
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const now = this.hooks.now();
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
            const at = entryTime(id);
            if (this.observeFromNext) {
              this.observeFromNext = false;
              this.observedFrom = at;
            }
            if (at > this.streamNow) this.streamNow = at;
            const e = decodeEntry(fields);
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
      this.hooks.advance();
    }
  }

  private isOwn(e: Entry): boolean {
    return e.o !== undefined ? this.ownTokens.has(e.o) : e.w === this.opts.local.workerId;
  }

  /**
   * Revokes a silent worker's lease, waits until it can start no write, and drops it if it is
   * still silent (see the header).
   */
  private async revoke(w: number, st: WorkerState, owner: string): Promise<void> {
    const { local } = this.opts;
    st.revoking = true;
    const seen = st.seenAt;
    try {
      if (!(await local.revokeWorker!(w, owner))) {
        // Cassandra did not answer: try again a little later.
        st.revokeAfter = this.hooks.now() + Math.max(100, this.opts.silentMs / 3);
        return;
      }
      this.opts.logger.warn({ worker: w }, 'replication: silent worker\'s lease revoked; dropping it once it can write nothing more');
      await new Promise((r) => setTimeout(r, (local.leaseStaleMs ?? 0) + REVOKE_MARGIN_MS).unref());
      if (this.hooks.running() && this.workers.get(w) === st && st.seenAt === seen) {
        this.drop(w, 'silent, lease revoked');
        this.hooks.advance();
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
    this.release.reset();
  }

  /** Entries of worker `st` between its last one read and `e` were lost (see the header). */
  private lostEntries(st: WorkerState, e: Entry): void {
    // Only heartbeats lost: nothing to resync.
    if (e.r !== undefined && e.r <= st.r) return;
    // A worker without `r`: its promise bounds every record it queued before this entry.
    const horizon = this.release.lost(e.r ?? e.p);
    this.opts.logger.warn({ worker: e.w, horizon }, 'replication: change records lost; resyncing from the store up to the horizon');
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
    if (e.t === 'c') this.release.receive(e.c);
    st.promise = Math.max(st.promise, e.p);
  }
}
