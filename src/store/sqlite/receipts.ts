// Read receipts (public and private, threaded and unthreaded) on the global stream. A receipt's
// federation EDU (putReceipt's `outbound`) is written in the receipt's transaction at its
// position: both commit or neither does.

import { copyReceipt } from '../chat-types.js';
import type { ReceiptOutbound, ReceiptRecord, ReceiptStore, ReceiptThread, ReceiptType } from '../chat-types.js';
import type { SqliteContext } from './context.js';
import { writeOutbound } from './federation-queue.js';

/** Stored thread_id of an unthreaded receipt (see migration 0002). */
export const UNTHREADED = '';

interface ReceiptRow {
  room_id: string;
  user_id: string;
  thread_id: string;
  type: ReceiptType;
  event_id: string;
  event_stream: number;
  ts: number;
  stream: number;
}

const COLUMNS = 'room_id, user_id, thread_id, type, event_id, event_stream, ts, stream';

const toReceipt = (r: ReceiptRow): ReceiptRecord => ({
  roomId: r.room_id,
  userId: r.user_id,
  type: r.type,
  threadId: r.thread_id === UNTHREADED ? null : r.thread_id,
  eventId: r.event_id,
  eventStream: r.event_stream,
  ts: r.ts,
  stream: r.stream,
});

function storedThread(threadId: ReceiptThread): string {
  if (threadId === UNTHREADED) throw new Error('receipt thread ID must not be empty (use null for unthreaded)');
  return threadId ?? UNTHREADED;
}

export class SqliteReceiptStore implements ReceiptStore {
  constructor(private readonly ctx: SqliteContext) {}

  async putReceipt(input: Omit<ReceiptRecord, 'stream'>, outbound?: ReceiptOutbound): Promise<ReceiptRecord | null> {
    this.ctx.checkOpen();
    const r = copyReceipt(input);
    const eduBody = outbound && outbound.destinations.length > 0 ? JSON.stringify(outbound.edu) : undefined;
    const thread = storedThread(r.threadId);
    const notNewer = () => {
      const existing = this.ctx
        .stmt('SELECT event_stream FROM receipts WHERE room_id = ? AND user_id = ? AND thread_id = ? AND type = ?')
        .get(r.roomId, r.userId, thread, r.type) as { event_stream: number } | undefined;
      return existing !== undefined && existing.event_stream >= r.eventStream;
    };
    // Receipts only move forwards, so a committed receipt at or past this one settles it for
    // good: answer without reserving a stream position. Clients re-send receipts a lot.
    if (notNewer()) return null;
    return this.ctx.queue.writeAtPosition((pos) => {
      // Checked again inside the batch: another write for the same key may have been queued
      // after the check above. The position is then completed with nothing written, which
      // readers cannot tell from any other position without data for them.
      if (notNewer()) return null;
      this.ctx
        .stmt(
          `INSERT INTO receipts (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET event_id = excluded.event_id, event_stream = excluded.event_stream,
             ts = excluded.ts, stream = excluded.stream`,
        )
        .run(r.roomId, r.userId, thread, r.type, r.eventId, r.eventStream, r.ts, pos);
      if (outbound && eduBody !== undefined) writeOutbound(this.ctx, outbound.destinations, pos, 'edu', '', eduBody);
      return { ...r, stream: pos };
    }, (res, pos) => (res ? { kind: 'receipt', stream: pos, roomId: res.roomId, userId: res.userId } : null));
  }

  async getRoomReceipts(roomIds: string[]): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(`SELECT ${COLUMNS} FROM receipts WHERE room_id = ? ORDER BY user_id, thread_id, type`);
    const out: ReceiptRecord[] = [];
    for (const roomId of new Set(roomIds)) for (const row of stmt.all(roomId) as ReceiptRow[]) out.push(toReceipt(row));
    return out;
  }

  async getReceiptChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    // Only the latest receipt per key is kept, so a key rewritten after `toInclusive` shows up in
    // the later range instead; consecutive ranges still deliver every final value (as account data).
    const stmt = this.ctx.stmt(`SELECT ${COLUMNS} FROM receipts WHERE room_id = ? AND stream > ? AND stream <= ? ORDER BY stream`);
    const out: ReceiptRecord[] = [];
    for (const roomId of new Set(roomIds)) {
      for (const row of stmt.all(roomId, fromExclusive, toInclusive) as ReceiptRow[]) out.push(toReceipt(row));
    }
    return out;
  }

  async getUserReceipts(roomId: string, userId: string): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt(`SELECT ${COLUMNS} FROM receipts WHERE room_id = ? AND user_id = ? ORDER BY thread_id, type`)
      .all(roomId, userId) as ReceiptRow[];
    return rows.map(toReceipt);
  }
}
