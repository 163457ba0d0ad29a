// WAL checkpoints off the event loop (issue 10: the long-poll tail). SQLite's automatic
// checkpoint runs inside the COMMIT that crosses wal_autocheckpoint pages: with 10,000 pages it
// copied ~40 MB of WAL into the database file and fsynced it on the event loop, a 10-17 ms
// on-CPU turn plus 3-9 ms blocked in the fsync roughly every 2 s of the full sync-latency
// bench (docs/benchmarks.md, session 9), during which no send, wake or request ran. Here a
// worker thread with its own connection (checkpoint-worker.ts) runs PASSIVE checkpoints once the
// WAL holds `thresholdPages` frames, until the log restarts, and the writer's own automatic
// checkpoint stays as a backstop at WAL_BACKSTOP_PAGES: it fires only if the worker falls behind
// or dies, and then copies just the frames the worker has not, and lets the log restart.
//
// Invariants: the worker never writes; close() ends the worker and its connection before the
// store closes its own, so the writer's connection is the last and SQLite's close-time
// checkpoint still runs there. A worker that fails is logged and not restarted (the backstop
// keeps the WAL bounded).

import { Worker } from 'node:worker_threads';
import type { CheckpointReport, CheckpointWorkerData } from './checkpoint-worker.js';
import type { StoreLogger } from './db.js';

export interface CheckpointerStats {
  /** Checkpoints the worker ran. */
  checkpoints: number;
  /** Frames they copied (as SQLite counts them: a frame copied twice counts twice). */
  frames: number;
  /** The longest one, wall ms on the worker's thread. */
  maxMs: number;
  /** The worker failed (the writer's backstop checkpoint is all that is left). */
  failed: boolean;
}

export class WalCheckpointer {
  readonly stats: CheckpointerStats = { checkpoints: 0, frames: 0, maxMs: 0, failed: false };
  private worker: Worker | null = null;
  private exited: Promise<unknown> = Promise.resolve();
  private readonly startTimer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** Test hook: called after each checkpoint report. */
  onCheckpoint: ((r: CheckpointReport) => void) | null = null;

  /**
   * `startAfterMs` delays the worker's start (a thread and a second connection, ~100 ms of CPU
   * to load): a store opened and closed within it (tests, the CLI) never starts one, and the
   * writer's backstop covers the first moments of one that lives on.
   */
  constructor(
    private readonly path: string,
    private readonly opts: { thresholdPages: number; intervalMs?: number; startAfterMs?: number; logger?: StoreLogger },
  ) {
    const after = opts.startAfterMs ?? 0;
    if (after <= 0) this.start();
    else (this.startTimer = setTimeout(() => this.start(), after)).unref();
  }

  /** Whether the worker thread was started (see startAfterMs). */
  get started(): boolean {
    return this.worker !== null;
  }

  private start(): void {
    if (this.closing !== null || this.worker !== null) return;
    const { path, opts } = this;
    const workerData: CheckpointWorkerData = { path, thresholdPages: opts.thresholdPages, intervalMs: opts.intervalMs ?? 100 };
    const worker = (this.worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url), { workerData }));
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.unref();
    worker.on('message', (r: CheckpointReport) => {
      this.stats.checkpoints++;
      this.stats.frames += r.checkpointed;
      if (r.ms > this.stats.maxMs) this.stats.maxMs = r.ms;
      this.onCheckpoint?.(r);
    });
    worker.on('error', (err) => {
      this.stats.failed = true;
      opts.logger?.warn({ err }, 'WAL checkpoint worker failed; the writer checkpoints at the backstop from now on');
    });
  }

  /** Stops the worker after its current checkpoint and waits until its connection is closed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.startTimer) clearTimeout(this.startTimer);
      const worker = this.worker;
      if (worker === null) return;
      // Unreferenced so a store nobody closes does not keep the process alive, but a close in
      // progress must: a process with nothing else to do would exit with the close unsettled.
      worker.ref();
      if (!this.stats.failed) worker.postMessage('close');
      await this.exited;
    })();
    return this.closing;
  }
}
