// Outbound federation queue on SQLite (contract and rationale: src/store/federation-types.ts).
// Entries are written at a reserved stream position with no change record (nothing a client
// reads); the state row is upserted, sentUpto only ever raised. Entries at or below sentUpto are
// deleted when a transaction completes (no reader asks for them; SQLite has no tombstones).

import type { DestinationQueueState, FederationQueueStore, OutboundEntry, OutboundItem, OutboundTxn } from '../federation-types.js';
import type { JsonObject } from '../../protocol/types.js';
import { jsonParse, type SqliteContext } from './context.js';

interface StateRow {
  destination: string;
  sent_upto: number;
  queued_upto: number;
  txn_id: string;
  txn_upto: number;
  txn_catch_up: number;
}

function toState(r: StateRow): DestinationQueueState {
  return {
    destination: r.destination,
    sentUpto: r.sent_upto,
    queuedUpto: r.queued_upto,
    txn: r.txn_id === '' ? null : { txnId: r.txn_id, upto: r.txn_upto, catchUp: r.txn_catch_up === 1 },
  };
}

/**
 * Entries at `pos` for each destination, raising their queuedUpto; inside the caller's write
 * (enqueueOutbound's, or persistEvent's for an event's own PDU, PersistEventInput.outbound).
 */
export function writeOutbound(ctx: SqliteContext, destinations: readonly string[], pos: number, kind: OutboundItem['kind'], roomId: string, body: string): void {
  for (const d of new Set(destinations)) {
    ctx.stmt('INSERT INTO federation_outbox (destination, pos, kind, room_id, body) VALUES (?, ?, ?, ?, ?)').run(d, pos, kind, roomId, body);
    ctx
      .stmt(
        `INSERT INTO federation_destinations (destination, queued_upto) VALUES (?, ?)
         ON CONFLICT DO UPDATE SET queued_upto = MAX(queued_upto, excluded.queued_upto)`,
      )
      .run(d, pos);
  }
}

export class SqliteFederationQueueStore implements FederationQueueStore {
  constructor(private readonly ctx: SqliteContext) {}

  async enqueueOutbound(destinations: readonly string[], item: OutboundItem): Promise<number> {
    this.ctx.checkOpen();
    const body = JSON.stringify(item.kind === 'pdu' ? item.pdu : item.edu);
    const roomId = item.kind === 'pdu' ? item.roomId : '';
    return this.ctx.queue.writeAtPosition((pos) => {
      writeOutbound(this.ctx, destinations, pos, item.kind, roomId, body);
      return pos;
    }, () => null);
  }

  async outboundAfter(destination: string, afterExclusive: number, uptoInclusive: number, limit: number): Promise<OutboundEntry[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT pos, kind, room_id, body FROM federation_outbox WHERE destination = ? AND pos > ? AND pos <= ? ORDER BY pos LIMIT ?')
      .all(destination, afterExclusive, uptoInclusive, limit) as Array<{ pos: number; kind: string; room_id: string; body: string }>;
    return rows.map((r) => ({
      pos: r.pos,
      item: r.kind === 'pdu' ? { kind: 'pdu', roomId: r.room_id, pdu: jsonParse<JsonObject>(r.body) } : { kind: 'edu', edu: jsonParse<JsonObject>(r.body) },
    }));
  }

  async getDestinationQueue(destination: string): Promise<DestinationQueueState> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT * FROM federation_destinations WHERE destination = ?').get(destination) as StateRow | undefined;
    return row ? toState(row) : { destination, sentUpto: 0, queuedUpto: 0, txn: null };
  }

  async listDestinationQueues(): Promise<DestinationQueueState[]> {
    this.ctx.checkOpen();
    return (this.ctx.stmt('SELECT * FROM federation_destinations ORDER BY destination').all() as StateRow[]).map(toState);
  }

  async beginTxn(destination: string, txn: OutboundTxn): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt(
          `INSERT INTO federation_destinations (destination, txn_id, txn_upto, txn_catch_up) VALUES (?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET txn_id = excluded.txn_id, txn_upto = excluded.txn_upto, txn_catch_up = excluded.txn_catch_up`,
        )
        .run(destination, txn.txnId, txn.upto, txn.catchUp ? 1 : 0);
    });
  }

  async completeTxn(destination: string, txn: OutboundTxn): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt(
          `INSERT INTO federation_destinations (destination, sent_upto) VALUES (?, ?)
           ON CONFLICT DO UPDATE SET sent_upto = MAX(sent_upto, excluded.sent_upto)`,
        )
        .run(destination, txn.upto);
      this.ctx.stmt('DELETE FROM federation_outbox WHERE destination = ? AND pos <= (SELECT sent_upto FROM federation_destinations WHERE destination = ?)').run(destination, destination);
      this.ctx.stmt(`UPDATE federation_destinations SET txn_id = '', txn_upto = 0, txn_catch_up = 0 WHERE destination = ? AND txn_id = ?`).run(destination, txn.txnId);
    });
  }

  async getCursor(name: string): Promise<number | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT upto FROM federation_cursors WHERE name = ?').get(name) as { upto: number } | undefined;
    return row ? row.upto : null;
  }

  async advanceCursor(name: string, upto: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('INSERT INTO federation_cursors (name, upto) VALUES (?, ?) ON CONFLICT DO UPDATE SET upto = MAX(upto, excluded.upto)').run(name, upto);
    });
  }
}
