// Delivered receipts (sent -> delivered -> read): when a device acknowledges a stream position,
// the newest event of each of the user's rooms at or below it (that someone else sent) counts
// as delivered to that user. One marker per (room, user), moved forward in place, coalesced over
// a short window so a burst of acknowledgements costs one write per room.

import { LRUCache } from 'lru-cache';
import type { JsonObject } from '../protocol/types.js';
import type { DeliveredRecord, DeliveryStore } from '../store/push-types.js';
import type { Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { addTo, type RoomEphemeralSource, type SyncRange } from '../sync/sources.js';
import { DELIVERED_EVENT_TYPE } from '../sync/filter.js';
import { dict } from '../protocol/canonical-json.js';
import type { Logger } from 'pino';

export class DeliveredService {
  /** Highest position each user has acknowledged (rooms quiet since then need no work). */
  private readonly acked = new LRUCache<string, number>({ max: 200_000 });
  /**
   * Users with a client that opted in recently. Only their messages need delivered markers
   * ("the sender's devices see it"), so acknowledgements cost nothing in rooms where no such
   * sender wrote. In memory: after a restart, markers resume once those clients sync again.
   */
  private readonly interested = new LRUCache<string, true>({ max: 100_000, ttl: 15 * 60_000 });
  private readonly pending = new Map<string, { stream: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly store: Store,
    private readonly delivery: DeliveryStore,
    private readonly notifier: Notifier,
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly now: () => number = Date.now,
    private readonly coalesceMs = 50,
  ) {}

  private readonly failed = (userId: string) => (err: unknown) => this.logger.warn({ err, userId }, 'delivered receipts: applying an acknowledgement failed');

  /** A client of `userId` asked for delivered receipts (socket parameter or filter). */
  optedIn(userId: string): void {
    this.interested.set(userId, true);
  }

  /** Whether acknowledgements can record anything: a client opted in within the last 15 minutes. */
  get wanted(): boolean {
    return this.interested.size > 0;
  }

  /** A device of `userId` acknowledged everything up to `stream`. Never throws. */
  acknowledged(userId: string, stream: number): Promise<void> {
    const p = this.pending.get(userId);
    if (p) {
      p.stream = Math.max(p.stream, stream);
      return Promise.resolve();
    }
    // Nobody asked for markers: what apply() would do once the window closed (move the user's
    // position), done now, without a timer for every acknowledgement of every reader (a
    // fan-out to 1,000 members set 1,000 timers). An opt-in arriving within the window no
    // longer marks this range; one arriving just after it never did.
    if (this.interested.size === 0) {
      if (stream > (this.acked.get(userId) ?? 0)) this.acked.set(userId, stream);
      return Promise.resolve();
    }
    const timer = setTimeout(() => {
      const entry = this.pending.get(userId);
      this.pending.delete(userId);
      if (entry) void this.apply(userId, entry.stream).catch(this.failed(userId));
    }, this.coalesceMs);
    timer.unref();
    this.pending.set(userId, { stream, timer });
    return Promise.resolve();
  }

  /** Acknowledgements waiting for their coalescing window (tests, diagnostics). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Applies pending acknowledgements now (shutdown, tests). */
  async flush(): Promise<void> {
    const entries = [...this.pending.entries()];
    this.pending.clear();
    for (const [userId, e] of entries) {
      clearTimeout(e.timer);
      await this.apply(userId, e.stream).catch(this.failed(userId));
    }
  }

  private async apply(userId: string, stream: number): Promise<void> {
    const prev = this.acked.get(userId) ?? 0;
    if (stream <= prev) return;
    this.acked.set(userId, stream);
    const senders = [...this.interested.keys()].filter((u) => u !== userId);
    if (senders.length === 0) return;
    const rooms = (await this.store.rooms.getRoomsForUser(userId, ['join'])).map((m) => m.roomId);
    const maxes = await this.store.rooms.getRoomsMaxStream(rooms);
    for (const roomId of rooms) {
      if ((maxes.get(roomId) ?? 0) <= prev) continue;
      // Only rooms where an interested sender wrote something in the acknowledged range.
      const [mine] = await this.store.rooms.getRoomEvents({ roomId, dir: 'b', from: stream, to: prev, limit: 1, senders });
      if (!mine) continue;
      // The marker goes on the newest event up to the acknowledged position that someone else sent.
      const [ev] = await this.store.rooms.getRoomEvents({ roomId, dir: 'b', from: stream, to: prev, limit: 1, notSenders: [userId] });
      if (!ev) continue;
      const rec = await this.delivery.putDelivered({ roomId, userId, eventId: ev.eventId, eventStream: ev.stream, ts: this.now() });
      if (rec) this.notifier.publish({ stream: rec.stream, roomId });
    }
  }
}

/** io.hearth.delivered ephemeral events, for clients that opted in. */
export class DeliveredSource implements RoomEphemeralSource {
  constructor(private readonly delivery: DeliveryStore) {}

  async collect(range: SyncRange, roomIds: string[]): Promise<Map<string, JsonObject[]>> {
    const out = new Map<string, JsonObject[]>();
    if (range.hints && range.delivered) roomIds = range.hints.deliveredRooms(roomIds);
    if (!range.delivered || roomIds.length === 0) return out;
    const records = range.since
      ? await this.delivery.getDeliveredChanges(roomIds, range.since.stream, range.upTo.stream)
      : (await this.delivery.getRoomDelivered(roomIds)).filter((r) => r.stream <= range.upTo.stream);
    const byRoom = new Map<string, DeliveredRecord[]>();
    for (const r of records) byRoom.set(r.roomId, [...(byRoom.get(r.roomId) ?? []), r]);
    for (const [roomId, list] of byRoom) {
      const content: Record<string, Record<string, JsonObject>> = dict();
      for (const r of list) (content[r.eventId] ??= dict())[r.userId] = { ts: r.ts };
      addTo(out, roomId, { type: DELIVERED_EVENT_TYPE, content: content as JsonObject });
    }
    return out;
  }
}
