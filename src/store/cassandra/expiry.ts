// Self-destructing messages on Cassandra (contract: src/store/expiry-types.ts; behaviour as
// src/store/sqlite/expiry.ts). Rows live in one partition of event_expiry clustered by due time;
// event_expiry_keys holds each event's time so a second schedule keeps the earlier one and the
// prune can delete the row. Only the room's writer prunes (src/room/self-destruct.ts), and a
// prune is idempotent, so no LWT: a redaction racing it leaves redacted_by set either way,
// and both rewrite the PDU to the same pruned copy. The first prune keeps the original for the
// federation queue (federation_originals, as a redaction does) and marks the row `pruned`, which
// tells the queue's reader to send that original and a later redaction not to replace it.

import type { Pdu } from '../../protocol/types.js';
import type { EventExpiry, EventExpiryStore } from '../expiry-types.js';
import { num, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import type { PersistEventInput } from '../types.js';
import { keepOriginal } from './federation-queue.js';

const BUCKET = 0;

export class CassandraEventExpiryStore implements EventExpiryStore {
  constructor(private readonly ctx: CassandraContext) {}

  /**
   * A self-destructing message's row, in the event's own logged batch. The event is new, so it
   * has no earlier row to keep (a retried identical write writes the same cells).
   */
  readonly hook: EventWriteHook = {
    forEvent(input: PersistEventInput): CqlStatement[] {
      const at = input.selfDestructAt;
      if (at === undefined) return [];
      const roomId = input.pdu.room_id ?? '';
      return [
        { query: 'INSERT INTO event_expiry (bucket, expires_ts, event_id, room_id) VALUES (?, ?, ?, ?)', params: [BUCKET, at, input.eventId, roomId] },
        { query: 'INSERT INTO event_expiry_keys (event_id, expires_ts) VALUES (?, ?)', params: [input.eventId, at] },
      ];
    },
  };

  async schedule(e: EventExpiry): Promise<void> {
    this.ctx.checkOpen();
    const old = (await this.ctx.execute('SELECT expires_ts FROM event_expiry_keys WHERE event_id = ?', [e.eventId])).first();
    if (old && num(old.get('expires_ts')) <= e.expiresTs) return;
    await this.ctx.batch([
      { query: 'INSERT INTO event_expiry (bucket, expires_ts, event_id, room_id) VALUES (?, ?, ?, ?)', params: [BUCKET, e.expiresTs, e.eventId, e.roomId] },
      { query: 'INSERT INTO event_expiry_keys (event_id, expires_ts) VALUES (?, ?)', params: [e.eventId, e.expiresTs] },
      ...(old ? [{ query: 'DELETE FROM event_expiry WHERE bucket = ? AND expires_ts = ? AND event_id = ?', params: [BUCKET, num(old.get('expires_ts')), e.eventId] }] : []),
    ]);
  }

  async nextDue(limit: number): Promise<EventExpiry[]> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('SELECT expires_ts, event_id, room_id FROM event_expiry WHERE bucket = ? LIMIT ?', [BUCKET, limit]);
    return rs.rows.map((r) => ({ eventId: r.get('event_id') as string, roomId: r.get('room_id') as string, expiresTs: num(r.get('expires_ts')) }));
  }

  async prune(e: EventExpiry, prunedPdu: Pdu | null): Promise<boolean> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT room_id, redacted_by, pdu_json, pruned FROM events WHERE event_id = ?', [e.eventId])).first();
    const rewrite = prunedPdu !== null && !!row && row.get('room_id') === e.roomId && !row.get('redacted_by');
    // The original goes out to servers whose queue entries still name the event (the queue
    // reads PDUs back from events at send time); a second prune finds the pruned copy, not it.
    const keep = rewrite && row.get('pruned') !== true && typeof row.get('pdu_json') === 'string';
    const key = (await this.ctx.execute('SELECT expires_ts FROM event_expiry_keys WHERE event_id = ?', [e.eventId])).first();
    await this.ctx.batch([
      ...(keep ? [keepOriginal(e.eventId, row.get('pdu_json') as string)] : []),
      ...(rewrite ? [{ query: 'UPDATE events SET pdu_json = ?, pruned = true WHERE event_id = ?', params: [JSON.stringify(prunedPdu), e.eventId] }] : []),
      { query: 'DELETE FROM event_expiry WHERE bucket = ? AND expires_ts = ? AND event_id = ?', params: [BUCKET, key ? num(key.get('expires_ts')) : e.expiresTs, e.eventId] },
      { query: 'DELETE FROM event_expiry_keys WHERE event_id = ?', params: [e.eventId] },
    ]);
    this.ctx.unpositioned({ kind: 'event_pruned', roomId: e.roomId, eventId: e.eventId });
    return rewrite;
  }
}
