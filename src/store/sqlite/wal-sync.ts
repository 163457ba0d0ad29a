// Durability off the event loop. With synchronous=FULL SQLite fsyncs the WAL inside COMMIT,
// which blocks the event loop for the whole fsync (milliseconds on real disks). Instead the
// connection runs synchronous=NORMAL (COMMIT appends its frames to the WAL with write(), no
// fsync) and this fsyncs the WAL file on libuv's thread pool; the write queue completes a
// batch's positions and settles its promises only once an fsync that started after its COMMIT
// has finished. Together that is exactly what FULL guarantees in WAL mode (the commit frames
// are on disk before anyone is told), while the event loop keeps building the next batches.
//
// Invariants: one fsync in flight at a time (the queue coalesces every batch committed while it
// runs into the next one); an fsync error is fatal for the store, because after it the kernel
// may have dropped the dirty pages and a retry could report success for lost data.

import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export interface WalSyncer {
  /** Makes every WAL frame written so far durable. */
  sync(): Promise<void>;
  /** The same, synchronously (shutdown). */
  syncNow(): void;
  close(): void;
}

export class FsWalSyncer implements WalSyncer {
  private fd: number | null = null;

  constructor(private readonly dbPath: string) {}

  private open(): number {
    if (this.fd === null) {
      // SQLite created the WAL when it entered WAL mode; its directory entry must be durable
      // too, once, or a power loss could lose the whole file.
      this.fd = openSync(`${this.dbPath}-wal`, 'r');
      const dir = openSync(dirname(this.dbPath), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    }
    return this.fd;
  }

  sync(): Promise<void> {
    let fd: number;
    try {
      fd = this.open();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  }

  syncNow(): void {
    fsyncSync(this.open());
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
