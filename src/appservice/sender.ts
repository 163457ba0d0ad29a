// Delivers one application service's events: PUT {url}/_matrix/app/v1/transactions/{txnId}, in
// stream order, one transaction in flight, a failed transaction retried (same ID, same events)
// with exponential backoff until the AS acknowledges it.
//
// Invariants:
// - The stored state (AppServiceStore) says: every event this AS is interested in at or below
//   `position` has been acknowledged, and `lastTxnId` was the last ID acknowledged. It is written
//   after each acknowledged transaction, and when idle (at most every IDLE_PERSIST_MS) so that a
//   quiet AS does not re-scan a long stretch after a restart. Delivery is at least once: a crash
//   between the AS's answer and the store write resends that transaction's events under the next
//   ID.
// - Events are judged (interest.ts) and queued by one serial ingest chain in stream order: first
//   the catch-up from the stored position (read back from the store room by room, then sorted by
//   stream), then live change records from the completion hook, skipping those at or below what
//   was already examined (`examined`). So the queue is always sorted by stream.
// - Memory is bounded: past maxPending queued events, live records are ignored and the sender is
//   "behind"; once the queue drains it catches up from the store again, which is the truth. A
//   `reset` record (the feed lost records) makes it behind the same way, from what it examined.
// - A fresh AS (no stored state) starts at the current position: it is not sent history.
// - A transaction ID is never reused for other events: the AS drops a repeated ID unread. A sender
//   that starts cannot know whether lastTxnId + 1 was sent and acknowledged but not stored (a
//   crash, or a stop that raced the AS's answer), so unless it resends that very transaction
//   (below) it skips that ID; IDs need only be unique and growing, not consecutive.
// - With a lease (a cluster: gate.ts), every attempt is preceded by a renewal and the sender stops
//   for good once it fails; a new transaction is saved before its first attempt, and a sender
//   that starts where the saved one is the next unacknowledged ID sends it first, unchanged.
//   Saving and sending happen only with the lease sure for LEASE_MARGIN_MS more (validMs, on the
//   monotonic clock: a process frozen after its renewal wakes with the lease run out and renews
//   or stops before touching anything), and a send still in flight when the lease stops being
//   sure is aborted; so a successor never races a transaction of this worker's.

import type { Logger } from 'pino';
import { clientShape, type ClientEvent } from '../room/client-event.js';
import type { ChangeRecord } from '../store/change-types.js';
import type { Pdu } from '../protocol/types.js';
import { parseTrustedJson } from '../protocol/canonical-json.js';
import type { AppServiceStreamState, Store } from '../store/types.js';
import type { AppServiceClient } from './client.js';
import type { InFlightTransaction } from './gate.js';
import type { AppServiceInterest } from './interest.js';
import type { AppServiceRegistration } from './registration.js';

export interface SenderOptions {
  minBackoffMs: number;
  maxBackoffMs: number;
  maxEventsPerTransaction: number;
  maxPending: number;
}

interface Queued {
  stream: number;
  event: ClientEvent;
}

type Transaction = InFlightTransaction;

/** The AS's delivery lease, as one sender sees it (gate.ts). */
export interface SenderLease {
  /** Renews the lease; false: another worker may deliver now, so this sender stops. */
  held(): Promise<boolean>;
  /** How long the lease is sure to last without a renewal (monotonic: runs on while frozen). */
  validMs(): number;
  saveInFlight(txn: Transaction): Promise<void>;
  loadInFlight(): Promise<Transaction | null>;
}

const IDLE_PERSIST_MS = 5_000;
/** A send starts only with at least this much of the lease left, and is cut off when it runs out. */
const LEASE_MARGIN_MS = 100;
const ROOM_PAGE = 200;
const ROOM_CHUNK = 500;

export class AppServiceSender {
  private pending: Queued[] = [];
  private chain: Promise<void> = Promise.resolve();
  /** Every event at or below this was judged (and queued if interesting). */
  private examined = 0;
  private state: AppServiceStreamState = { position: 0, lastTxnId: 0 };
  private behind = false;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private pump: Promise<void> | null = null;
  private readonly abort = new AbortController();
  private lastPersistTs = 0;
  private unsubscribe: (() => void) | null = null;
  /** A transaction left in flight by the previous deliverer, sent first. */
  private resumed: Transaction | null = null;
  /** The lowest ID a new transaction may take (see the header). */
  private idFloor = 0;
  /** Acknowledged transactions (for tests and metrics). */
  delivered = 0;

  constructor(
    readonly reg: AppServiceRegistration,
    private readonly store: Store,
    private readonly client: AppServiceClient,
    private readonly interest: AppServiceInterest,
    private readonly opts: SenderOptions,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly lease?: SenderLease,
  ) {}

  /**
   * Reads the stored state, queues the catch-up and starts delivering. `subscribe` registers the
   * live listener; it is called synchronously after the catch-up's upper bound is read, so no
   * position falls between the two.
   */
  async start(subscribe: (listener: (changes: ChangeRecord[], current: number) => void) => (() => void) | void): Promise<void> {
    const stored = await this.store.appServices.getAppServiceState(this.reg.id);
    if (stored === null) {
      this.state = { position: this.store.currentPosition(), lastTxnId: 0 };
      await this.store.appServices.setAppServiceState(this.reg.id, this.state);
    } else {
      this.state = stored;
    }
    const left = this.lease ? await this.lease.loadInFlight() : null;
    if (left && left.id === this.state.lastTxnId + 1 && left.lastStream > this.state.position) {
      this.resumed = left;
      this.logger.info({ appservice: this.reg.id, txnId: left.id }, 'app service: resending the transaction the previous deliverer left in flight');
    } else {
      this.idFloor = Math.max(this.state.lastTxnId + 2, (left?.id ?? 0) + 1);
    }
    const from = this.resumed?.lastStream ?? this.state.position;
    this.examined = from;
    const to = this.store.currentPosition();
    this.unsubscribe = subscribe((changes, current) => this.enqueue(() => this.ingest(changes, current))) ?? null;
    this.enqueue(() => this.catchUp(from, to));
    this.lastPersistTs = this.now();
    this.pump = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.abort.abort();
    this.wake();
    await this.pump;
    await this.chain;
  }

  /** False once stopped, or once it found its lease lost. */
  get active(): boolean {
    return !this.stopped;
  }

  /** The stored delivery state as this sender last wrote it. */
  position(): AppServiceStreamState {
    return { ...this.state };
  }

  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain
      .then(() => (this.stopped ? undefined : task()))
      .catch((err: unknown) => {
        // The store is the truth: re-read from the last acknowledged position once drained.
        this.logger.warn({ err, appservice: this.reg.id }, 'app service: could not judge events; will catch up from the store');
        this.behind = true;
      })
      .then(() => this.wake());
  }

  private async ingest(changes: ChangeRecord[], current: number): Promise<void> {
    if (this.behind) return;
    if (changes.some((c) => c.kind === 'reset')) {
      // The feed lost records (in a cluster: a worker died, Redis restarted): what is not
      // examined yet is read from the store once the queue drains.
      this.behind = true;
      return;
    }
    for (const c of changes) {
      if (c.kind !== 'event' || c.stream <= this.examined) continue;
      const pdu = parseTrustedJson<Pdu>(c.pduJson);
      if (await this.interest.interested(c.roomId, pdu)) this.pending.push({ stream: c.stream, event: clientShape(c.eventId, pdu) });
    }
    this.examined = Math.max(this.examined, current);
    if (this.pending.length > this.opts.maxPending) this.truncate();
  }

  /** Keeps the first maxPending; the rest is read again from the store once those are delivered. */
  private truncate(): void {
    const kept = this.pending.slice(0, this.opts.maxPending);
    this.examined = kept[kept.length - 1]!.stream;
    this.pending = kept;
    this.behind = true;
  }

  /** Queues the interesting events in (from, to], read back from the store. */
  private async catchUp(from: number, to: number): Promise<void> {
    this.behind = false;
    if (to <= from) {
      this.examined = Math.max(this.examined, to);
      return;
    }
    const roomIds = (await this.store.admin.listRooms()).map((r) => r.roomId);
    const found: Queued[] = [];
    for (let i = 0; i < roomIds.length; i += ROOM_CHUNK) {
      const maxes = await this.store.rooms.getRoomsMaxStream(roomIds.slice(i, i + ROOM_CHUNK));
      for (const [roomId, max] of maxes) {
        if (this.stopped) return;
        if (max <= from) continue;
        let cursor = from;
        for (;;) {
          const page = await this.store.rooms.getRoomEvents({ roomId, dir: 'f', from: cursor, to, maxStream: to, limit: ROOM_PAGE });
          for (const e of page) {
            // As the change records: accepted timeline events only.
            if (e.outlier || e.softFailed || e.rejected !== null) continue;
            if (await this.interest.interested(roomId, e.pdu)) found.push({ stream: e.stream, event: clientShape(e.eventId, e.pdu) });
          }
          if (page.length < ROOM_PAGE) break;
          cursor = page[page.length - 1]!.stream;
        }
      }
    }
    found.sort((a, b) => a.stream - b.stream);
    this.pending.push(...found);
    this.examined = Math.max(this.examined, to);
    if (this.pending.length > this.opts.maxPending) this.truncate();
  }

  /** New work (or stop): ends an idle wait, or the next one if none is in progress. */
  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Waits ms; `wakeable`: new work ends the wait early (never a retry's backoff, only stop()). */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.stopped || (wakeable && this.woken)) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wakeUp = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = () => {
        if (wakeable || this.stopped) {
          this.woken = false;
          done();
        }
      };
    });
  }

  private async run(): Promise<void> {
    let txn: Transaction | null = this.resumed;
    let fresh = false;
    let backoff = this.opts.minBackoffMs;
    while (!this.stopped) {
      if (txn === null) {
        if (this.pending.length === 0) {
          if (this.behind) {
            const from = this.examined;
            this.enqueue(() => this.catchUp(from, this.store.currentPosition()));
            await this.chain;
            // A catch-up that failed (the store) is tried again, not at once.
            if (this.behind && this.pending.length === 0) await this.sleep(this.opts.minBackoffMs, false);
            continue;
          }
          await this.persistIfIdle();
          await this.sleep(IDLE_PERSIST_MS, true);
          continue;
        }
        const batch = this.pending.splice(0, this.opts.maxEventsPerTransaction);
        txn = { id: Math.max(this.state.lastTxnId + 1, this.idFloor), events: batch.map((q) => q.event), lastStream: batch[batch.length - 1]!.stream };
        fresh = true;
      }
      if (this.lease) {
        if (!(await this.lease.held())) {
          this.leaseLost();
          break;
        }
        if (fresh) {
          if (!(await this.sureOfLease())) {
            this.leaseLost();
            break;
          }
          try {
            await this.lease.saveInFlight(txn);
            fresh = false;
          } catch (err) {
            this.logger.warn({ err, appservice: this.reg.id, txnId: txn.id }, 'app service: could not record the transaction before sending; will retry');
            await this.sleep(backoff, false);
            backoff = Math.min(this.opts.maxBackoffMs, backoff * 2);
            continue;
          }
        }
      }
      if (this.reg.url === null) {
        // No traffic wanted: the events count as delivered.
        await this.acknowledged(txn);
        txn = null;
        continue;
      }
      let signal = this.abort.signal;
      let unwatch = (): void => undefined;
      if (this.lease) {
        // Whatever ran since the renewal above (saving the transaction, or a freeze: a woken
        // process runs this before its renewal timer) may have outlived the lease.
        if (!(await this.sureOfLease())) {
          this.leaseLost();
          break;
        }
        ({ signal, unwatch } = this.watchLease());
      }
      const outcome = await this.client.putTransaction(this.reg, txn.id, txn.events, signal).finally(unwatch);
      if (this.stopped) break;
      // Cut off because the lease stopped being sure: the next round renews or stops, no backoff.
      if (signal.aborted && !this.abort.signal.aborted) continue;
      if (outcome.ok) {
        await this.acknowledged(txn);
        txn = null;
        backoff = this.opts.minBackoffMs;
        continue;
      }
      this.logger.warn({ appservice: this.reg.id, txnId: txn.id, why: outcome.why, retryInMs: backoff }, 'app service transaction failed; will retry');
      await this.sleep(backoff, false);
      backoff = Math.min(this.opts.maxBackoffMs, backoff * 2);
    }
  }

  private leaseLost(): void {
    this.logger.info({ appservice: this.reg.id }, 'app service: delivery lease lost; another worker delivers');
    this.stopped = true;
    this.unsubscribe?.();
  }

  /** At least LEASE_MARGIN_MS of the lease left, renewing first when it ran low. */
  private async sureOfLease(): Promise<boolean> {
    const lease = this.lease!;
    if (lease.validMs() > LEASE_MARGIN_MS) return true;
    return (await lease.held()) && lease.validMs() > LEASE_MARGIN_MS;
  }

  /** A signal for one send: aborted by stop(), or when the lease is no longer sure (not renewed in time). */
  private watchLease(): { signal: AbortSignal; unwatch: () => void } {
    const lease = this.lease!;
    const cut = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const check = (): void => {
      const left = lease.validMs();
      if (left <= LEASE_MARGIN_MS) {
        this.logger.warn({ appservice: this.reg.id }, 'app service: delivery lease not renewed in time; cutting off the transaction in flight');
        cut.abort();
      } else {
        timer = setTimeout(check, left - LEASE_MARGIN_MS);
      }
    };
    check();
    return { signal: AbortSignal.any([this.abort.signal, cut.signal]), unwatch: () => clearTimeout(timer) };
  }

  private async acknowledged(txn: Transaction): Promise<void> {
    this.delivered++;
    // With nothing queued, everything examined is delivered; otherwise only up to this batch.
    const position = this.pending.length === 0 && !this.behind ? Math.max(txn.lastStream, this.examined) : txn.lastStream;
    await this.persist({ position: Math.max(position, this.state.position), lastTxnId: txn.id });
  }

  private async persistIfIdle(): Promise<void> {
    if (this.behind || this.pending.length > 0 || this.examined <= this.state.position) return;
    if (this.now() - this.lastPersistTs < IDLE_PERSIST_MS) return;
    await this.persist({ position: this.examined, lastTxnId: this.state.lastTxnId });
  }

  private async persist(next: AppServiceStreamState): Promise<void> {
    this.state = next;
    this.lastPersistTs = this.now();
    try {
      await this.store.appServices.setAppServiceState(this.reg.id, next);
    } catch (err) {
      // Not fatal: a restart resends from the last stored position (at least once).
      this.logger.warn({ err, appservice: this.reg.id }, 'app service: could not store the delivery position');
    }
  }
}
