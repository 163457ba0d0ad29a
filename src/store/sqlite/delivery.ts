// "Delivered" markers (a device of the user has the event) on the global stream, kept like
// receipts: one row per (room, user) that only moves forward.

import type { DeliveredRecord, DeliveryStore } from '../push-types.js';
import type { SqliteContext } from './context.js';

interface DeliveredRow {
  room_id: string;
  user_id: string;
  event_id: string;
  event_stream: number;
  ts: number;
  stream: number;
}

const COLUMNS = 'room_id, user_id, event_id, event_stream, ts, stream';

const toRecord = (r: DeliveredRow): DeliveredRecord => ({
  roomId: r.room_id,
  userId: r.user_id,
  eventId: r.event_id,
  eventStream: r.event_stream,
  ts: r.ts,
  stream: r.stream,
});

export class SqliteDeliveryStore implements DeliveryStore {
  constructor(private readonly ctx: SqliteContext) {}

  async putDelivered(input: Omit<DeliveredRecord, 'stream'>): Promise<DeliveredRecord | null> {
    this.ctx.checkOpen();
    const r: Omit<DeliveredRecord, 'stream'> = {
      roomId: input.roomId,
      userId: input.userId,
      eventId: input.eventId,
      eventStream: input.eventStream,
      ts: input.ts,
    };
    const notNewer = () => {
      const existing = this.ctx
        .stmt('SELECT event_stream FROM delivered WHERE room_id = ? AND user_id = ?')
        .get(r.roomId, r.userId) as { event_stream: number } | undefined;
      return existing !== undefined && existing.event_stream >= r.eventStream;
    };
    // Every device acknowledges every event it gets; most acks are already covered by another
    // device's, so settle those without spending a stream position.
    if (notNewer()) return null;
    return this.ctx.queue.writeAtPosition((pos) => {
      // Re-checked inside the batch: a newer marker may have been queued after the check above.
      if (notNewer()) return null;
      this.ctx
        .stmt(
          `INSERT INTO delivered (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET event_id = excluded.event_id, event_stream = excluded.event_stream,
             ts = excluded.ts, stream = excluded.stream`,
        )
        .run(r.roomId, r.userId, r.eventId, r.eventStream, r.ts, pos);
      return { ...r, stream: pos };
    }, (res, pos) => (res ? { kind: 'delivered', stream: pos, roomId: res.roomId } : null));
  }

  async getRoomDelivered(roomIds: string[]): Promise<DeliveredRecord[]> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(`SELECT ${COLUMNS} FROM delivered WHERE room_id = ? ORDER BY user_id`);
    const out: DeliveredRecord[] = [];
    for (const roomId of new Set(roomIds)) for (const row of stmt.all(roomId) as DeliveredRow[]) out.push(toRecord(row));
    return out;
  }

  async getDeliveredChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<DeliveredRecord[]> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(`SELECT ${COLUMNS} FROM delivered WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream`);
    const out: DeliveredRecord[] = [];
    for (const roomId of new Set(roomIds)) {
      for (const row of stmt.all(roomId, fromExclusive, toInclusive) as DeliveredRow[]) out.push(toRecord(row));
    }
    return out;
  }
}
