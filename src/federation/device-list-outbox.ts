// Makes our users' device-list and cross-signing updates (m.device_list_update,
// m.signing_key_update) for other servers as durable as the changes they announce.
//
// Every such change is stored with a record on the device-list change stream, in the change's
// own write (E2eeStore: setDeviceKeys, setCrossSigningKeys, addSignatures, deleteDeviceE2ee,
// markDeviceListChanged). That stream is the outbox: a drain reads the local users changed in
// (cursor, watermark], has LocalDeviceLists queue their updates (strictly: a failed queue write
// fails the drain), and only then raises the durable cursor (FederationQueueStore.advanceCursor,
// named `device_lists`) to that watermark. So:
// - never lost: a crash anywhere after the change's commit leaves its record above the cursor,
//   and the drain at the next start (or on the next change) publishes the user again;
// - never sent for a change that did not happen: only stored records are read, bounded by the
//   watermark, which no write still in flight is below;
// - at least once: a crash after queueing and before the cursor moved publishes the user again.
//   After a restart the in-memory baseline is gone, so that update carries an empty prev_id,
//   which receivers treat as a gap and resync the list from /user/devices (as Synapse does on
//   an unknown prev_id): a repeat costs a refetch, never a wrong list.
// - A cursor never set (the first start of a server, or of one upgraded from the version that
//   queued after the write) is set, as soon as the outbox is built (before clients are served),
//   to the position then: changes made before it were published the old way.
// - Drains run one at a time per process (later pokes coalesce into one more pass). With a
//   `gate` (a cluster), only the holder of the `#device-lists` lease drains, so one worker
//   publishes every user's updates with one baseline (a worker whose change another holds waits
//   and checks that the cursor passed it; a dead holder's lease lapses and the next poke takes
//   it over); `#` cannot start a server name, so it never meets a destination's lease.
// - A failed drain is retried (1 s doubling to 60 s), the cursor staying where it was.

import type { Logger } from 'pino';
import { serverNameOf } from '../protocol/ids.js';
import type { E2eeStore } from '../store/e2ee-types.js';
import type { FederationQueueStore } from '../store/federation-types.js';
import type { ChangeListener } from '../store/stream-id.js';
import type { DestinationGate } from '../cluster/destination-leases.js';

export const DEVICE_LIST_CURSOR = 'device_lists';
const LEASE = '#device-lists';

export interface DeviceListOutboxDeps {
  serverName: string;
  changes: Pick<E2eeStore, 'getDeviceListChanges'>;
  cursors: Pick<FederationQueueStore, 'getCursor' | 'advanceCursor'>;
  /** The watermark: every change at or below it is stored (store.currentPosition()). */
  position: () => number;
  /** Queues the user's updates (LocalDeviceLists.publishNow); rejects when they were not queued. */
  publish: (userId: string) => Promise<void>;
  /** The change feed: a device-list change of a local user pokes a drain. */
  onChanges?: (listener: ChangeListener) => () => void;
  gate?: Pick<DestinationGate, 'acquire'>;
  logger: Logger;
  /** Test hook: die right after this user's change is committed, before anything is queued. */
  killAfterCommitOf?: string;
  retryMs?: number;
}

export class DeviceListOutbox {
  /** Where a never-set cursor starts (see the header). */
  private readonly initial: number;
  /** Sets a never-set cursor at once (see the header); drains wait for it. */
  private readonly init: Promise<void>;
  /** The highest device-list change of a local user this process heard of. */
  private seen = 0;
  private running: Promise<void> | null = null;
  private again = false;
  private started = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private failures = 0;
  private readonly unsubscribe?: () => void;
  /** Passes that queued updates (tests, metrics). */
  drains = 0;

  constructor(private readonly d: DeviceListOutboxDeps) {
    this.initial = d.position();
    this.init = this.cursor().then(
      () => undefined,
      (err: unknown) => d.logger.warn({ err }, 'device list outbox: could not set its cursor (the first drain tries again)'),
    );
    this.unsubscribe = d.onChanges?.((changes) => {
      for (const c of changes) {
        if (c.kind !== 'device_list' || !c.userIds.some((u) => serverNameOf(u) === d.serverName)) continue;
        if (d.killAfterCommitOf !== undefined && c.userIds.includes(d.killAfterCommitOf)) process.kill(process.pid, 'SIGKILL');
        this.seen = Math.max(this.seen, c.stream);
        this.poke();
      }
    });
  }

  /** Drains what a previous run left (the changes above the cursor), then follows pokes. */
  start(): void {
    this.started = true;
    this.poke();
  }

  /** Some local user's list changed (already stored): drain soon. */
  poke(): void {
    if (this.stopped || !this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => (this.running = null));
  }

  /** Resolves once no drain is running (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unsubscribe?.();
    await this.settled();
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      await this.drain();
    } while (this.again && !this.stopped);
  }

  private async drain(): Promise<void> {
    try {
      if (this.d.gate && !(await this.d.gate.acquire(LEASE))) {
        // Another worker drains; look again shortly unless it has passed what we heard of.
        const cursor = await this.d.cursors.getCursor(DEVICE_LIST_CURSOR);
        if (cursor === null || cursor < Math.max(this.seen, 1)) this.retryLater(this.d.retryMs ?? 1000);
        return;
      }
      await this.init;
      const from = await this.cursor();
      const upto = this.d.position();
      if (upto <= from) return;
      const users = (await this.d.changes.getDeviceListChanges(from, upto)).filter((u) => serverNameOf(u) === this.d.serverName);
      for (const userId of users) await this.d.publish(userId);
      await this.d.cursors.advanceCursor(DEVICE_LIST_CURSOR, upto);
      if (users.length > 0) this.drains++;
      this.failures = 0;
    } catch (err) {
      if (this.stopped) return;
      this.failures++;
      const ms = Math.min((this.d.retryMs ?? 1000) * 2 ** (this.failures - 1), 60_000);
      this.d.logger.warn({ err, retryInMs: ms }, 'device list updates not queued; will retry');
      this.retryLater(ms);
    }
  }

  /** The stored cursor, first set to `initial` when never set. */
  private async cursor(): Promise<number> {
    const c = await this.d.cursors.getCursor(DEVICE_LIST_CURSOR);
    if (c !== null) return c;
    await this.d.cursors.advanceCursor(DEVICE_LIST_CURSOR, this.initial);
    return this.initial;
  }

  private retryLater(ms: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.poke();
    }, ms);
    this.timer.unref();
  }
}
