// Self-destructing messages (MSC2228, Synapse's experimental `enable_ephemeral_messages`): a
// message event whose content has `org.matrix.self_destruct_after` (an integer, ms since the
// epoch) is pruned in the store once that time passes, for every reader, whether a local client
// sent it or it came over federation. Behind config experimental.msc2228_self_destruct.
//
// Invariants:
// - Fed by the change feed (accepted events only), so local sends, federation and backfill are
//   treated alike; state events and non-integer values are ignored.
// - The due times are in the store (src/store/expiry-types.ts), written with each event in its
//   own commit (persistEvent), so neither a crash after the commit nor a restart loses one:
//   start() arms the timer for the soonest row, the feed re-arms it for a new event's, and each
//   row is removed only by its prune.
// - One timer, armed for the soonest known row; a new row that is due sooner re-arms it. Prunes
//   run one pass at a time.
// - Each prune is announced on the PRUNED_CHANNEL broadcast (every worker of a cluster, this one
//   included: listenForPrunes), so in-memory copies (sync read model timelines, formatted-event
//   cache) are dropped wherever they are; the store's own unpositioned change only reaches the
//   pruning process.
// - The pruned copy is the room version's redaction algorithm applied to the stored PDU, the
//   copy a redaction would store; nothing is sent over federation (other servers prune their own).
// - Run only by room writers (app.ts). The prune itself is the writer operation
//   'selfDestruct.prune', so in a cluster it runs on the worker that owns the room (acquiring it
//   when nobody does). Several room writers' timers may ask for the same row: the prune is
//   idempotent (a rewrite to the same pruned copy, the row dropped).

import type { Logger } from 'pino';
import type { Broadcast } from '../cluster/shared-state.js';
import { redactEvent } from '../protocol/redaction.js';
import type { Pdu } from '../protocol/types.js';
import type { ChangeRecord } from '../store/change-types.js';
import { SELF_DESTRUCT_KEY, selfDestructAt, type EventExpiry } from '../store/expiry-types.js';
import type { Store } from '../store/types.js';
import type { WriterOperations } from './writer-operations.js';

export { SELF_DESTRUCT_KEY, selfDestructAt } from '../store/expiry-types.js';
const PRUNED_CHANNEL = 'self_destruct.pruned';
/** setTimeout's largest delay; a later row is looked at again then. */
const MAX_DELAY_MS = 2 ** 31 - 1;
const BATCH = 100;


export class SelfDestructService {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Number.POSITIVE_INFINITY;
  private running: Promise<void> | null = null;
  private rerun = false;
  private closed = false;

  constructor(
    private readonly store: Pick<Store, 'eventExpiry' | 'rooms'>,
    private readonly writerOps: WriterOperations,
    private readonly broadcast: Broadcast,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    writerOps.define('selfDestruct.prune', async (roomId, [eventId, expiresTs]) => {
      if (typeof eventId !== 'string' || typeof expiresTs !== 'number') throw new Error('selfDestruct.prune: bad arguments');
      await this.pruneHere({ eventId, roomId, expiresTs });
      return null;
    });
  }

  /** Arms the timer for the soonest stored row (rows written before a restart included). */
  async start(): Promise<void> {
    this.kick();
    await this.running;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The change feed's listener: arms the timer for each new event's due time (its row is already stored). */
  onChanges(changes: readonly ChangeRecord[]): void {
    for (const c of changes) {
      // A cheap filter first: almost no event carries the key.
      if (c.kind !== 'event' || !c.pduJson.includes(SELF_DESTRUCT_KEY)) continue;
      let at: number | null;
      try {
        at = selfDestructAt(JSON.parse(c.pduJson) as Pdu);
      } catch (err) {
        this.logger.warn({ err, eventId: c.eventId }, 'self-destruct: unreadable event record');
        continue;
      }
      if (at !== null) this.arm(at);
    }
  }

  /** Resolves once the current pass (if any) has finished (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private arm(at: number): void {
    if (this.closed || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.kick();
    }, Math.min(MAX_DELAY_MS, Math.max(0, at - this.now())));
    this.timer.unref();
  }

  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => {
        this.logger.warn({ err }, 'self-destruct: pruning pass failed; retrying in a minute');
        this.arm(this.now() + 60_000);
      })
      .finally(() => {
        this.running = null;
        if (this.rerun) {
          this.rerun = false;
          this.kick();
        }
      });
  }

  /** Prunes every due row, then arms the timer for the next one. */
  private async pass(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const rows = await this.store.eventExpiry.nextDue(BATCH);
      const now = this.now();
      const due = rows.filter((r) => r.expiresTs <= now);
      for (const r of due) await this.prune(r);
      if (due.length < rows.length) return this.arm(rows[due.length]!.expiresTs);
      if (rows.length < BATCH) return;
    }
  }

  private async prune(r: EventExpiry): Promise<void> {
    await this.writerOps.run(r.roomId, 'selfDestruct.prune', [r.eventId, r.expiresTs]);
  }

  /** The prune, on the room's writer. */
  private async pruneHere(r: EventExpiry): Promise<void> {
    const ev = await this.store.rooms.getEvent(r.eventId);
    const room = ev ? await this.store.rooms.getRoom(r.roomId) : null;
    const pruned = ev && room && ev.roomId === r.roomId && !ev.redactedBy ? (redactEvent(ev.pdu, room.roomVersion) as Pdu) : null;
    await this.store.eventExpiry.prune(r, pruned);
    await this.broadcast
      .publish(PRUNED_CHANNEL, JSON.stringify([r.roomId, r.eventId]))
      .catch((err: unknown) => this.logger.warn({ err, eventId: r.eventId }, 'self-destruct: could not announce a prune (other workers serve the old copy from memory until it is evicted)'));
    this.logger.debug({ eventId: r.eventId, roomId: r.roomId }, 'self-destruct: pruned an expired event');
  }
}

/** Calls `onPruned` for every prune by any worker (this one included). */
export async function listenForPrunes(broadcast: Broadcast, logger: Logger, onPruned: (roomId: string, eventId: string) => void): Promise<void> {
  await broadcast.subscribe(PRUNED_CHANNEL, (message) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch (err) {
      logger.warn({ err }, 'self-destruct: unreadable prune announcement');
      return;
    }
    if (Array.isArray(parsed) && typeof parsed[0] === 'string' && typeof parsed[1] === 'string') onPruned(parsed[0], parsed[1]);
    else logger.warn({ message }, 'self-destruct: malformed prune announcement');
  });
}
