// Self-destructing messages on SQLite (contract: src/store/expiry-types.ts). The prune runs on
// the single write queue, so it cannot interleave with a redaction of the same event.

import type { Pdu } from '../../protocol/types.js';
import type { EventExpiry, EventExpiryStore } from '../expiry-types.js';
import type { SqliteContext } from './context.js';

export class SqliteEventExpiryStore implements EventExpiryStore {
  constructor(private readonly ctx: SqliteContext) {}

  async schedule(e: EventExpiry): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => writeExpiryRow(this.ctx, e));
  }

  async nextDue(limit: number): Promise<EventExpiry[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT event_id, room_id, expires_ts FROM event_expiry ORDER BY expires_ts, event_id LIMIT ?')
      .all(limit) as Array<{ event_id: string; room_id: string; expires_ts: number }>;
    return rows.map((r) => ({ eventId: r.event_id, roomId: r.room_id, expiresTs: r.expires_ts }));
  }

  async prune(e: EventExpiry, prunedPdu: Pdu | null): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(
      () => {
        const changed =
          prunedPdu !== null &&
          this.ctx
            .stmt('UPDATE events SET pdu_json = ? WHERE event_id = ? AND room_id = ? AND redacted_by IS NULL')
            .run(JSON.stringify(prunedPdu), e.eventId, e.roomId).changes > 0;
        this.ctx.stmt('DELETE FROM event_expiry WHERE event_id = ?').run(e.eventId);
        return changed;
      },
      { kind: 'event_pruned', roomId: e.roomId, eventId: e.eventId },
    );
  }
}

/** Inside a write (schedule's, or persistEvent's for the event's own row). */
export function writeExpiryRow(ctx: SqliteContext, e: EventExpiry): void {
  ctx
    .stmt(
      `INSERT INTO event_expiry (event_id, room_id, expires_ts) VALUES (?, ?, ?)
       ON CONFLICT (event_id) DO UPDATE SET expires_ts = MIN(expires_ts, excluded.expires_ts)`,
    )
    .run(e.eventId, e.roomId, e.expiresTs);
}
