// Grouped commits. Every write is queued and the writes queued in one event-loop turn are
// committed in a single SQLite transaction on the next setImmediate tick, up to the batch size
// cap; the rest wait for the next turn. A batch runs synchronously, so the cap bounds how long
// the event loop stalls for it: one batch per turn, with I/O (other requests, /versions)
// served in between. With synchronous=FULL one fsync then covers the whole batch, which is
// what lifts throughput from ~6k commits/s to well past the 5k events/s target even with slow
// disks. Each write runs inside its own SAVEPOINT so that one write's conflict (duplicate
// transaction ID...) is rolled back alone while the rest of the batch commits. A batch made only
// of replayable writes (pure functions of the database, such as persistEvent: no effect outside
// SQLite, nothing kept from a run but its result) first runs without savepoints, which cost a
// sub-journal copy of every page a write touches and an FTS5 flush per write; if one of them
// throws, the whole transaction is rolled back and the batch re-runs the savepoint way, so the
// outcome is the same as if it had run that way from the start.
//
// Stream positions are reserved at enqueue time, so batch order equals position order, and are
// completed only once durable: after COMMIT, or with a WalSyncer (wal-sync.ts) after an fsync
// that started after that COMMIT, which runs off the event loop while later batches commit.
// Promises resolve after that, so a caller that got its promise back can rely on
// currentPosition() covering its write, and the completion hook never describes a write that a
// crash could still lose. A failed fsync is fatal: nothing more is acknowledged or written.

import type { ChangeDescriber, ChangeRecord, UnpositionedChange } from '../change-types.js';
import type { StreamIdGenerator } from '../stream-id.js';
import type { Db, Statement, StoreLogger } from './db.js';
import type { WalSyncer } from './wal-sync.js';

export interface WriteQueueStats {
  /** Transactions committed successfully. */
  transactions: number;
  /** Batches that failed as a whole and were rolled back. */
  failedTransactions: number;
  /** Writes that committed. */
  writes: number;
  /** Writes rejected individually (rolled back to their savepoint). */
  failedWrites: number;
  largestBatch: number;
  /** fsyncs run by the WalSyncer (each covers every batch committed before it started). */
  syncs: number;
  /** Batches of replayable writes re-run with savepoints because one write failed without them. */
  replayedBatches: number;
}

interface Job {
  /** Reserved stream position, or null for writes outside the global stream. */
  pos: number | null;
  run: (pos: number) => unknown;
  /** Names what a positioned write changed, for the completion hook (see change-types.ts). */
  describe: ChangeDescriber<unknown> | null;
  change?: UnpositionedChange;
  /** `run` touches nothing but the database, so a rolled-back run can simply run again. */
  replayable: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  ok: boolean;
  result: unknown;
  error: unknown;
}

export class StoreClosedError extends Error {
  constructor() {
    super('store is closed');
    this.name = 'StoreClosedError';
  }
}

export class WriteQueue {
  private pending: Job[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private closed = false;
  /** Committed batches waiting for the next fsync, oldest first. */
  private awaitingSync: Job[][] = [];
  /** Batches the fsync in flight covers. */
  private syncing: Job[][] | null = null;
  /** Bumped by close(): an fsync callback from before it must not settle anything again. */
  private syncEpoch = 0;
  /** Set when an fsync failed: the store refuses every write from then on. */
  private fatal: unknown = null;
  private readonly stmts: {
    begin: Statement;
    commit: Statement;
    rollback: Statement;
    savepoint: Statement;
    release: Statement;
    rollbackTo: Statement;
    bumpMaxReserved: Statement;
  };
  readonly stats: WriteQueueStats = { transactions: 0, failedTransactions: 0, writes: 0, failedWrites: 0, largestBatch: 0, syncs: 0, replayedBatches: 0 };
  /** Receives the unpositioned changes of each committed batch, right after COMMIT. */
  onUnpositioned: ((changes: UnpositionedChange[]) => void) | null = null;
  /** Test hook: runs inside the batch transaction right before COMMIT; throwing fails the batch. */
  beforeCommit: ((batchSize: number) => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly gen: StreamIdGenerator,
    private readonly opts: { maxBatchSize: number; logger?: StoreLogger; walSync?: WalSyncer },
  ) {
    this.stmts = {
      begin: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      savepoint: db.prepare('SAVEPOINT w'),
      release: db.prepare('RELEASE w'),
      rollbackTo: db.prepare('ROLLBACK TO w'),
      bumpMaxReserved: db.prepare('UPDATE stream_meta SET max_reserved = ? WHERE id = 1 AND max_reserved < ?'),
    };
  }

  /**
   * Queues a write outside the global stream. `run` executes synchronously inside the batch
   * transaction. `change` names what it changed for caches (see UnpositionedChange).
   */
  write<T>(run: () => T, change?: UnpositionedChange): Promise<T> {
    return this.enqueue(false, run, null, change) as Promise<T>;
  }

  /**
   * Queues a write at a freshly reserved stream position, passed to `run`. `describe` is
   * mandatory so that no positioned write can skip the completion hook that feeds the read model.
   */
  writeAtPosition<T>(run: (pos: number) => T, describe: ChangeDescriber<T>, opts: { replayable?: boolean } = {}): Promise<T> {
    return this.enqueue(true, run, describe as ChangeDescriber<unknown>, undefined, opts.replayable === true) as Promise<T>;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Commits everything queued so far, synchronously. */
  flush(): void {
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled);
      this.scheduled = null;
    }
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.opts.maxBatchSize);
      this.commitBatch(batch);
    }
  }

  /** Flushes, makes everything committed durable, and refuses further writes. */
  close(): void {
    this.closed = true;
    this.flush();
    const { walSync } = this.opts;
    if (!walSync) return;
    const batches = [...(this.syncing ?? []), ...this.awaitingSync];
    this.syncing = null;
    this.awaitingSync = [];
    this.syncEpoch++;
    if (batches.length === 0 || this.fatal !== null) return;
    try {
      walSync.syncNow();
    } catch (err) {
      this.die(err, batches);
      return;
    }
    for (const b of batches) this.finishBatch(b);
  }

  /** Number of committed batches not yet known durable (diagnostics, tests). */
  get unsyncedBatches(): number {
    return (this.syncing?.length ?? 0) + this.awaitingSync.length;
  }

  private enqueue(
    withPosition: boolean,
    run: (pos: number) => unknown,
    describe: ChangeDescriber<unknown> | null,
    change?: UnpositionedChange,
    replayable = false,
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    if (this.fatal !== null) return Promise.reject(this.fatal);
    return new Promise((resolve, reject) => {
      const pos = withPosition ? this.gen.reserve() : null;
      this.pending.push({ pos, run, describe, change, replayable, resolve, reject, ok: false, result: undefined, error: undefined });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled !== null) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      this.commitNext();
    });
  }

  /** Commits one batch; what is left waits for the next turn. */
  private commitNext(): void {
    const batch = this.pending.splice(0, this.opts.maxBatchSize);
    if (batch.length > 0) this.commitBatch(batch);
    if (this.pending.length > 0) this.schedule();
  }

  private commitBatch(batch: Job[]): void {
    const { db, stmts } = this;
    if (this.fatal !== null) {
      for (const job of batch) {
        if (job.pos !== null) this.gen.abandon(job.pos);
        job.reject(this.fatal);
      }
      return;
    }
    let maxPos = 0;
    let replayable = true;
    for (const job of batch) {
      if (job.pos !== null && job.pos > maxPos) maxPos = job.pos;
      if (!job.replayable) replayable = false;
    }
    try {
      stmts.begin.run();
      if (replayable && !this.runWithoutSavepoints(batch)) {
        // One write failed: nothing of this attempt may stay, then every write runs alone.
        if (db.inTransaction) stmts.rollback.run();
        this.stats.replayedBatches++;
        for (const job of batch) {
          job.ok = false;
          job.result = undefined;
          job.error = undefined;
        }
        stmts.begin.run();
        replayable = false;
      }
      if (!replayable) this.runWithSavepoints(batch);
      // Recorded even for positions whose write failed, so a restart never hands out a position
      // that readers may already have seen covered by currentPosition().
      if (maxPos > 0) stmts.bumpMaxReserved.run(maxPos, maxPos);
      this.beforeCommit?.(batch.length);
      stmts.commit.run();
    } catch (err) {
      this.failBatch(batch, maxPos, err);
      return;
    }

    this.stats.transactions++;
    if (batch.length > this.stats.largestBatch) this.stats.largestBatch = batch.length;
    if (this.opts.walSync) {
      this.awaitingSync.push(batch);
      this.startSync();
    } else {
      this.finishBatch(batch);
    }
  }

  /** Runs every write of the batch in the open transaction; false (and stops) at the first that throws. */
  private runWithoutSavepoints(batch: Job[]): boolean {
    for (const job of batch) {
      try {
        job.result = job.run(job.pos ?? 0);
        job.ok = true;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Runs each write of the batch in its own savepoint, so that a failing write is undone alone. */
  private runWithSavepoints(batch: Job[]): void {
    const { db, stmts } = this;
    for (const job of batch) {
      stmts.savepoint.run();
      try {
        job.result = job.run(job.pos ?? 0);
        job.ok = true;
        stmts.release.run();
      } catch (err) {
        // Some errors (I/O, disk full) make SQLite roll back the whole transaction; then the
        // batch is lost and must fail as a whole rather than commit a partial result.
        if (!db.inTransaction) throw err;
        stmts.rollbackTo.run();
        stmts.release.run();
        job.ok = false;
        job.error = err;
      }
    }
  }

  /** Starts an fsync covering every batch committed so far, unless one is running. */
  private startSync(): void {
    const { walSync } = this.opts;
    if (!walSync || this.syncing !== null || this.awaitingSync.length === 0) return;
    const covered = this.awaitingSync;
    this.awaitingSync = [];
    this.syncing = covered;
    const epoch = this.syncEpoch;
    walSync.sync().then(
      () => {
        if (epoch !== this.syncEpoch) return;
        this.syncing = null;
        this.stats.syncs++;
        for (const b of covered) this.finishBatch(b);
        this.startSync();
      },
      (err: unknown) => {
        if (epoch !== this.syncEpoch) return;
        this.syncing = null;
        const rest = this.awaitingSync;
        this.awaitingSync = [];
        this.die(err, [...covered, ...rest]);
      },
    );
  }

  /**
   * An fsync failed: these batches are committed but may not be on disk. Their positions are
   * never completed, so the watermark stops below them and no reader or change listener sees
   * them; their callers get the error; the store takes no more writes (restart to recover).
   */
  private die(err: unknown, batches: Job[][]): void {
    this.fatal = err;
    this.opts.logger?.warn({ err }, 'sqlite store: fsync of the WAL failed; refusing all further writes');
    for (const b of batches) for (const job of b) job.reject(err);
  }

  /** The batch is durable: runs the completion hook and settles its promises. */
  private finishBatch(batch: Job[]): void {
    if (this.onUnpositioned) {
      const changes: UnpositionedChange[] = [];
      for (const job of batch) if (job.ok && job.change) changes.push(job.change);
      if (changes.length > 0) {
        try {
          this.onUnpositioned(changes);
        } catch (err) {
          this.opts.logger?.warn({ err }, 'sqlite store: unpositioned change listener failed');
        }
      }
    }
    // Finish every position before settling any promise: a continuation that runs for the first
    // write must already see the whole batch covered by currentPosition(). All at once, so the
    // completion listeners (read model, wakes, replication) run once per batch, not per write.
    const finished: { pos: number; change: ChangeRecord | null; ok: boolean }[] = [];
    for (const job of batch) {
      if (job.ok) this.stats.writes++;
      else this.stats.failedWrites++;
      if (job.pos !== null) finished.push({ pos: job.pos, change: job.ok ? this.describe(job) : null, ok: job.ok });
    }
    if (finished.length > 0) this.gen.finishAll(finished);
    for (const job of batch) {
      if (!job.ok) {
        job.reject(job.error);
      } else if (job.pos === null || this.gen.current() >= job.pos) {
        job.resolve(job.result);
      } else {
        const { resolve, result } = job;
        void this.gen.waitFor(job.pos).then(() => resolve(result));
      }
    }
  }

  private describe(job: Job): ChangeRecord | null {
    if (!job.describe || job.pos === null) return null;
    try {
      return job.describe(job.result, job.pos);
    } catch (err) {
      // The data is committed; consumers only lose their cache, never the write.
      this.opts.logger?.warn({ err }, 'sqlite store: change describer failed; read caches reset');
      return { kind: 'reset', stream: job.pos };
    }
  }

  private failBatch(batch: Job[], maxPos: number, err: unknown): void {
    const { db, stmts } = this;
    try {
      if (db.inTransaction) stmts.rollback.run();
    } catch (rollbackErr) {
      this.opts.logger?.warn({ err: rollbackErr }, 'sqlite store: rollback after failed batch also failed');
    }
    this.stats.failedTransactions++;
    this.opts.logger?.warn({ err, writes: batch.length }, 'sqlite store: batch of writes rolled back');
    if (maxPos > 0) {
      try {
        stmts.bumpMaxReserved.run(maxPos, maxPos);
      } catch (metaErr) {
        this.opts.logger?.warn({ err: metaErr }, 'sqlite store: could not record abandoned stream positions');
      }
    }
    for (const job of batch) {
      if (job.pos !== null) this.gen.abandon(job.pos);
    }
    for (const job of batch) job.reject(err);
  }
}
