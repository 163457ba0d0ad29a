// This worker's side of the replication stream: its change records and heartbeats, as entries
// on the Redis stream (src/cluster/replication-entries.ts).
//
// Invariants:
// - Entries go out in the order they were queued, one XADD after the other on one connection.
//   The promise an entry carries is read when it is queued, so no promise reaches a consumer
//   before the records it covers (records queued earlier are sent first).
// - `r` of each entry is the last change record queued before it, so a gap in this worker's
//   entries tells its consumers how far up the lost records may lie.
// - An entry that Redis did not take is logged and not sent again: every consumer sees the gap
//   in `s` and resets (src/cluster/replication-release.ts), so the write is not lost to them.
// - A local position counts as published once the XADD carrying the records up to it was
//   answered: a client is acknowledged only after that (ReplicationStream.waitForLocal).

import type { Redis } from 'ioredis';
import type { ChangeRecord } from '../store/change-types.js';
import type { Entry } from './replication-entries.js';
import type { LocalFeed } from './replication.js';

export interface PublisherOptions {
  redis: Redis;
  key: string;
  local: LocalFeed;
  /** Entries kept in the stream (approximate trim). */
  maxLen: number;
  logger: { warn: (obj: object, msg: string) => void };
}

export class ReplicationPublisher {
  private seq = 0;
  /** Position of the last change record this worker queued (`r` of its next entry). */
  private queuedThrough = 0;
  /** This worker's local watermark as of the last record XADD that was answered. */
  private publishedThrough = -Infinity;
  private waiters: Array<{ pos: number; resolve: () => void }> = [];
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: PublisherOptions) {}

  /** Position of the last change record this worker queued. */
  get lastQueuedRecord(): number {
    return this.queuedThrough;
  }

  /**
   * Queues an entry of type `t`, under this worker's identity or `as`, an earlier one of this
   * instance (a rejoin's goodbye). `localCurrent`: the local watermark its records bring.
   * Returns the promise it carries, and `sent`: true once Redis took it, false if not (logged).
   */
  queue(t: Entry['t'], changes?: ChangeRecord[], localCurrent?: number, as?: { w: number; o?: string }): { p: number; sent: Promise<boolean> } {
    const { redis, key, local, maxLen } = this.opts;
    const p = local.promise();
    const s = ++this.seq;
    const w = as?.w ?? local.workerId;
    const o = as ? as.o : local.leaseOwner;
    const r = this.queuedThrough;
    const entry: Entry = t === 'c' ? { t, w, s, p, r, c: changes ?? [] } : { t, w, s, p, r };
    if (o !== undefined) entry.o = o;
    if (t === 'c') for (const c of changes ?? []) this.queuedThrough = Math.max(this.queuedThrough, c.stream);
    const sent = this.chain
      .then(() =>
        redis.xadd(key, 'MAXLEN', '~', String(maxLen), '*', 'e', JSON.stringify(entry)).then(
          () => true,
          (err: unknown) => {
            this.opts.logger.warn({ err }, 'replication: publish failed');
            return false;
          },
        ),
      )
      .then((ok) => {
        if (localCurrent !== undefined) this.published(localCurrent);
        return ok;
      });
    this.chain = sent;
    return { p, sent };
  }

  /** Whether the local position `pos` was published (see the header). */
  hasPublished(pos: number): boolean {
    return this.publishedThrough >= pos;
  }

  /** Resolves once the local position `pos` was published, or the publisher was closed. */
  whenPublished(pos: number): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push({ pos, resolve }));
  }

  /** Resolves once every entry queued so far was sent or failed. */
  async drain(): Promise<void> {
    await this.chain.catch(() => undefined);
  }

  /** Releases whoever still waits: nothing is published from here on. */
  close(): void {
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private published(through: number): void {
    if (through <= this.publishedThrough) return;
    this.publishedThrough = through;
    if (this.waiters.length === 0) return;
    const done = this.waiters.filter((w) => w.pos <= through);
    this.waiters = this.waiters.filter((w) => w.pos > through);
    for (const w of done) w.resolve();
  }
}
