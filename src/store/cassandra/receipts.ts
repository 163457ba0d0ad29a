// Read receipts (public and private, threaded and unthreaded) and "delivered" markers on the
// global stream, on Cassandra. Table shapes are documented in migrations/0004-users.ts:
//
//   receipts  PRIMARY KEY (room_id, user_id, thread_id, type)
//             event_id, event_stream, ts, stream      thread_id '' = unthreaded
//   delivered PRIMARY KEY (room_id, user_id)
//             event_id, event_stream, ts, stream
//
// - One partition per room holds its current receipts (the latest per key); readers of unread
//   counts read `SELECT ... FROM receipts WHERE room_id = ? AND user_id = ?`.
// - A marker only moves forwards. The "is it newer" check and the write of one key run one at a
//   time on this instance (KeyedChain), re-checked inside the positioned write like SQLite does.
//   Two instances moving the same key at the same moment could still let the older one land
//   last; a stricter rule would need an LWT per receipt, which the write rate does not justify.
// - Change queries use the SAI index on stream within the room's partition (see the migration).
// - A receipt's federation EDU (putReceipt's `outbound`) goes into one logged batch with the
//   receipt row, at the receipt's position, after the worker lease is confirmed (as every queue
//   write): both are applied or neither is, so the EDU is never lost after the receipt is
//   stored and never sent for a receipt that was not.

import { copyReceipt } from '../chat-types.js';
import type cassandra from 'cassandra-driver';
import type { ReceiptOutbound, ReceiptRecord, ReceiptStore, ReceiptThread, ReceiptType } from '../chat-types.js';
import type { DeliveredRecord, DeliveryStore } from '../push-types.js';
import { num, type CassandraContext, type CqlStatement } from './context.js';
import { KeyedChain } from '../../keyed-chain.js';
import { outboundStatements } from './federation-queue.js';

/** Stored thread_id of an unthreaded receipt. */
export const UNTHREADED = '';

const RECEIPT_COLUMNS = 'room_id, user_id, thread_id, type, event_id, event_stream, ts, stream';
const DELIVERED_COLUMNS = 'room_id, user_id, event_id, event_stream, ts, stream';

const toReceipt = (r: cassandra.types.Row): ReceiptRecord => ({
  roomId: r['room_id'] as string,
  userId: r['user_id'] as string,
  type: r['type'] as ReceiptType,
  threadId: r['thread_id'] === UNTHREADED ? null : (r['thread_id'] as string),
  eventId: r['event_id'] as string,
  eventStream: num(r['event_stream']),
  ts: num(r['ts']),
  stream: num(r['stream']),
});

const toDelivered = (r: cassandra.types.Row): DeliveredRecord => ({
  roomId: r['room_id'] as string,
  userId: r['user_id'] as string,
  eventId: r['event_id'] as string,
  eventStream: num(r['event_stream']),
  ts: num(r['ts']),
  stream: num(r['stream']),
});

function storedThread(threadId: ReceiptThread): string {
  if (threadId === UNTHREADED) throw new Error('receipt thread ID must not be empty (use null for unthreaded)');
  return threadId ?? UNTHREADED;
}

/** Stream order within a room, as SQLite returns changes (partitions come in clustering order). */
const byStream = (rows: cassandra.types.Row[]) => rows.sort((a, b) => num(a['stream']) - num(b['stream']));

/** Rows of several room partitions, a few rooms at a time (no unbounded fan-out). */
async function perRoom(roomIds: string[], read: (roomId: string) => Promise<cassandra.types.Row[]>): Promise<cassandra.types.Row[]> {
  const rooms = [...new Set(roomIds)];
  const out: cassandra.types.Row[] = [];
  for (let i = 0; i < rooms.length; i += 16) {
    const parts = await Promise.all(rooms.slice(i, i + 16).map(read));
    for (const p of parts) out.push(...p);
  }
  return out;
}

/** Statements removing a deleted room's receipts and delivered markers (one partition each). */
export function roomReceiptDeletes(roomId: string): CqlStatement[] {
  return [
    { query: 'DELETE FROM receipts WHERE room_id = ?', params: [roomId] },
    { query: 'DELETE FROM delivered WHERE room_id = ?', params: [roomId] },
  ];
}

export class CassandraReceiptStore implements ReceiptStore {
  private readonly chain = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async putReceipt(input: Omit<ReceiptRecord, 'stream'>, outbound?: ReceiptOutbound): Promise<ReceiptRecord | null> {
    this.ctx.checkOpen();
    const r = copyReceipt(input);
    const dests = outbound ? [...new Set(outbound.destinations)] : [];
    const thread = storedThread(r.threadId);
    const notNewer = async () => {
      const row = (
        await this.ctx.execute('SELECT event_stream FROM receipts WHERE room_id = ? AND user_id = ? AND thread_id = ? AND type = ?', [
          r.roomId,
          r.userId,
          thread,
          r.type,
        ])
      ).first();
      return row !== null && num(row['event_stream']) >= r.eventStream;
    };
    // Receipts only move forwards, so a stored receipt at or past this one settles it without
    // spending a stream position. Clients re-send receipts a lot.
    if (await notNewer()) return null;
    return this.chain.run(`${r.roomId}\u0000${r.userId}\u0000${thread}\u0000${r.type}`, () =>
      this.ctx.writeAtPosition(
        async (pos) => {
          // Checked again: a write for the same key may have run since the check above.
          if (await notNewer()) return null;
          const insert: CqlStatement = {
            query: `INSERT INTO receipts (${RECEIPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
            params: [r.roomId, r.userId, thread, r.type, r.eventId, r.eventStream, r.ts, pos],
          };
          if (outbound && dests.length > 0) {
            await this.ctx.confirmLease?.();
            await this.ctx.batch([insert, ...outboundStatements(dests, pos, 'edu', '', JSON.stringify(outbound.edu))]);
          } else {
            await this.ctx.execute(insert.query, insert.params);
          }
          return { ...r, stream: pos };
        },
        (res, pos) => (res ? { kind: 'receipt', stream: pos, roomId: res.roomId, userId: res.userId } : null),
      ),
    );
  }

  async getRoomReceipts(roomIds: string[]): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    const rows = await perRoom(roomIds, (roomId) => this.ctx.all(`SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE room_id = ?`, [roomId]));
    return rows.map(toReceipt);
  }

  async getReceiptChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    // Only the latest receipt per key is kept, so a key rewritten after `toInclusive` shows up in
    // the later range instead; consecutive ranges still deliver every final value.
    const rows = await perRoom(roomIds, (roomId) =>
      this.ctx
        .all(`SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE room_id = ? AND stream > ? AND stream <= ?`, [
          roomId,
          fromExclusive,
          toInclusive,
        ])
        .then(byStream),
    );
    return rows.map(toReceipt);
  }

  async getUserReceipts(roomId: string, userId: string): Promise<ReceiptRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all(`SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE room_id = ? AND user_id = ?`, [roomId, userId]);
    return rows.map(toReceipt);
  }
}

export class CassandraDeliveryStore implements DeliveryStore {
  private readonly chain = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async putDelivered(input: Omit<DeliveredRecord, 'stream'>): Promise<DeliveredRecord | null> {
    this.ctx.checkOpen();
    const r: Omit<DeliveredRecord, 'stream'> = {
      roomId: input.roomId,
      userId: input.userId,
      eventId: input.eventId,
      eventStream: input.eventStream,
      ts: input.ts,
    };
    const notNewer = async () => {
      const row = (await this.ctx.execute('SELECT event_stream FROM delivered WHERE room_id = ? AND user_id = ?', [r.roomId, r.userId])).first();
      return row !== null && num(row['event_stream']) >= r.eventStream;
    };
    // Every device acknowledges every event it gets; most acks are already covered by another
    // device's, so settle those without spending a stream position.
    if (await notNewer()) return null;
    return this.chain.run(`${r.roomId}\u0000${r.userId}`, () =>
      this.ctx.writeAtPosition(
        async (pos) => {
          if (await notNewer()) return null;
          await this.ctx.execute(`INSERT INTO delivered (${DELIVERED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, [
            r.roomId,
            r.userId,
            r.eventId,
            r.eventStream,
            r.ts,
            pos,
          ]);
          return { ...r, stream: pos };
        },
        (res, pos) => (res ? { kind: 'delivered', stream: pos, roomId: res.roomId } : null),
      ),
    );
  }

  async getRoomDelivered(roomIds: string[]): Promise<DeliveredRecord[]> {
    this.ctx.checkOpen();
    const rows = await perRoom(roomIds, (roomId) => this.ctx.all(`SELECT ${DELIVERED_COLUMNS} FROM delivered WHERE room_id = ?`, [roomId]));
    return rows.map(toDelivered);
  }

  async getDeliveredChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<DeliveredRecord[]> {
    this.ctx.checkOpen();
    const rows = await perRoom(roomIds, (roomId) =>
      this.ctx
        .all(`SELECT ${DELIVERED_COLUMNS} FROM delivered WHERE room_id = ? AND stream > ? AND stream <= ?`, [
          roomId,
          fromExclusive,
          toInclusive,
        ])
        .then(byStream),
    );
    return rows.map(toDelivered);
  }
}
