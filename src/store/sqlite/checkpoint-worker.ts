// The WAL checkpointer's thread (see checkpointer.ts). It owns a second connection to the
// database and runs PASSIVE checkpoints from it, so the copy of WAL pages into the database file
// and the database fsync that ends it run here instead of inside a COMMIT on the event loop.
//
// Invariants: this connection never writes and never holds a read transaction between ticks, so
// it never stops the writer's WAL restart; PASSIVE never waits for the writer or readers (it
// copies what it can and the next tick continues); synchronous NORMAL makes SQLite fsync the WAL
// before copying frames out of it and the database file before recording them as copied, so a
// crash at any point leaves a database SQLite recovers exactly as after its own checkpoint.

import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointWorkerData {
  path: string;
  /** Checkpoint once the WAL holds this many frames, until they are all copied (see due()). */
  thresholdPages: number;
  /** How often the WAL index is looked at. */
  intervalMs: number;
}

/** What the worker reports after each checkpoint it ran. */
export interface CheckpointReport {
  /** Frames in the WAL and frames copied, as the pragma reports them. */
  log: number;
  checkpointed: number;
  busy: number;
  ms: number;
}

const { path, thresholdPages, intervalMs } = workerData as CheckpointWorkerData;
const port = parentPort!;
const db = new Database(path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = NORMAL');
db.pragma('wal_autocheckpoint = 0');

// The wal-index (the -shm file, https://www.sqlite.org/walformat.html) starts with the header
// SQLite keeps for every connection to the database: mxFrame (frames in the WAL, u32 at byte 16)
// and, in the checkpoint info after the two 48-byte copies of the header, nBackfill (frames
// already copied, u32 at byte 96), both in the host's byte order. One 100-byte read per tick says
// whether a checkpoint is due without taking any lock; if the file cannot be read, every tick
// checkpoints (a PASSIVE checkpoint of an empty remainder costs microseconds).
//
// Due means: the WAL holds `thresholdPages` frames or more and not all are copied. Not "that
// many frames wait": the log restarts from its start only when a write begins with every frame
// copied, and a writer that commits during a checkpoint leaves a remainder; while the WAL stays
// long every tick copies the remainder (small, so it usually ends between two commits) until a
// write finds it all copied and restarts the log. Counting only waiting frames left the
// remainder to the writer's backstop checkpoint, on the event loop.
let shm: number | null = null;
const header = Buffer.alloc(100);
const u32 = (off: number): number => (endianness() === 'LE' ? header.readUInt32LE(off) : header.readUInt32BE(off));

function due(): boolean {
  try {
    shm ??= openSync(`${path}-shm`, 'r');
    if (readSync(shm, header, 0, header.length, 0) < header.length) return true;
    const frames = u32(16);
    return frames >= thresholdPages && u32(96) < frames;
  } catch {
    return true;
  }
}

// After a checkpoint the next look comes in RETRY_MS, not intervalMs: the remainder is a few ms
// of commits, and the writer's backstop is only ~5,000 frames (about a second of the full
// sync-latency bench) above the threshold, so at one try per interval the backstop sometimes
// ran first, on the event loop.
const RETRY_MS = 10;
let stopped = false;
let timer: NodeJS.Timeout = setTimeout(tick, intervalMs);

function tick(): void {
  if (stopped) return;
  let next = intervalMs;
  if (due()) {
    const t = performance.now();
    const [r] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    port.postMessage({ ...r, ms: performance.now() - t } satisfies CheckpointReport);
    next = RETRY_MS;
  }
  timer = setTimeout(tick, next);
}

port.on('message', (m: unknown) => {
  if (m !== 'close' || stopped) return;
  stopped = true;
  clearTimeout(timer);
  if (shm !== null) closeSync(shm);
  db.close();
  port.close();
});
