// Outbound federation queue on Cassandra (contract and rationale: src/store/federation-types.ts;
// behaviour as src/store/sqlite/federation-queue.ts).
//
// - federation_outbox ((destination, bucket), pos): append-only, bucketed by the hour of the
//   position (positions.ts), 7-day TTL. A reader walks buckets from where the destination's
//   sentUpto is, so it never reads expired rows; nothing deletes a row.
// - federation_destinations (destination): one row, no LWT. Each column is written by one kind
//   of writer with write timestamps derived from positions, so last-write-wins means what the
//   contract needs even when writers race or arrive late:
//     queued_upto   every enqueuer, timestamp = pos           -> the highest position queued;
//     first_queued  every enqueuer, timestamp = FIRST - pos   -> the lowest (where reads start);
//     sent_upto     completeTxn,   timestamp = 2·upto + 1     -> never moves back;
//     txn_*         beginTxn at 2·upto, completeTxn clears at 2·upto + 1 -> a late completion of
//                   an older transaction (lower upto) cannot clear a newer one.
//   Position timestamps (~2^48) sit below wall-clock microseconds and these cells are written by
//   nothing else; FIRST - pos sits above, for the same reason harmless.
// - Entries are written in one logged batch with the state updates, at a reserved position
//   after the worker lease is confirmed (the same fence as event batches). A local event's own
//   PDU is written by `hook` inside the event's batch instead (PersistEventInput.outbound), as
//   rows naming the event (kind 'pdu_ref'), read back from the events table at send time. A
//   redaction rewrites the event's row, so the redaction's batch also keeps the original
//   (federation_originals, TTL as the queue's) and the reader sends that: the event goes out as
//   it was, as on SQLite (whose entry is a copy), and the receiver redacts it itself. An MSC2228
//   expiry prune (expiry.ts) rewrites the row too: it keeps the original the same way and marks
//   the row `pruned` (it sets no redacted_by), and the receiver prunes its own copy at its time.

import type { DestinationQueueState, FederationQueueStore, OutboundEntry, OutboundItem, OutboundTxn } from '../federation-types.js';
import type { JsonObject } from '../../protocol/types.js';
import { jsonParse, num, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import type { PersistEventInput } from '../types.js';
import { positionAt, positionBucket } from './positions.js';

const TTL_MS = 7 * 24 * 3_600_000;
const FIRST = 2 ** 51;
/** An entry whose body is the ID of the event to send (a local event's own PDU, see `hook`). */
const PDU_REF = 'pdu_ref';

export class CassandraFederationQueueStore implements FederationQueueStore {
  constructor(private readonly ctx: CassandraContext) {}

  async enqueueOutbound(destinations: readonly string[], item: OutboundItem): Promise<number> {
    this.ctx.checkOpen();
    const body = JSON.stringify(item.kind === 'pdu' ? item.pdu : item.edu);
    const roomId = item.kind === 'pdu' ? item.roomId : '';
    const dests = [...new Set(destinations)];
    return this.ctx.writeAtPosition(async (pos) => {
      const statements = outboundStatements(dests, pos, item.kind, roomId, body);
      await this.ctx.confirmLease?.();
      await this.ctx.batch(statements);
      return pos;
    });
  }

  /**
   * An accepted event's own PDU (PersistEventInput.outbound), in the event's logged batch at the
   * event's position: the event and its queue entries are applied together or not at all.
   */
  readonly hook: EventWriteHook = {
    forEvent(input: PersistEventInput, pos: number): CqlStatement[] {
      const out = input.outbound;
      if (!out || out.destinations.length === 0) return [];
      // The rows name the event rather than copy it: a copy per destination would grow the
      // event's batch with the room's server count times the event's size, past
      // batch_size_fail_threshold for a large event in a room of many servers.
      return outboundStatements([...new Set(out.destinations)], pos, PDU_REF, input.pdu.room_id ?? '', input.eventId);
    },
    // Before the redaction's batch rewrites the target (the room's writer is the only one
    // writing its events, so the row read here is the one the batch replaces). Kept for any
    // redaction: whether an entry still names the event is not known here, and redactions are rare.
    // A pruned event (MSC2228 expiry) had its original kept by the prune: the row is a pruned copy.
    forRedaction: async (roomId: string, targetEventId: string): Promise<CqlStatement[]> => {
      const row = (await this.ctx.execute('SELECT room_id, pdu_json, redacted_by, pruned FROM events WHERE event_id = ?', [targetEventId])).first();
      if (!row || row.get('room_id') !== roomId || row.get('redacted_by') || row.get('pruned') === true || typeof row.get('pdu_json') !== 'string') return [];
      return [keepOriginal(targetEventId, row.get('pdu_json') as string)];
    },
  };

  async outboundAfter(destination: string, afterExclusive: number, uptoInclusive: number, limit: number): Promise<OutboundEntry[]> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('SELECT queued_upto, first_queued FROM federation_destinations WHERE destination = ?', [destination]);
    const row = rs.first();
    if (!row || row.get('queued_upto') === null) return [];
    const hi = Math.min(uptoInclusive, num(row.get('queued_upto')));
    const lo = Math.max(afterExclusive + 1, num(row.get('first_queued')), positionAt(Date.now() - TTL_MS, 0));
    const out: OutboundEntry[] = [];
    if (lo > hi) return out;
    const refs: Array<{ entry: OutboundEntry; eventId: string }> = [];
    for (let b = positionBucket(lo); b <= positionBucket(hi) && out.length < limit; b++) {
      const rows = await this.ctx.all('SELECT pos, kind, room_id, body FROM federation_outbox WHERE destination = ? AND bucket = ? AND pos > ? AND pos <= ? LIMIT ?', [
        destination,
        b,
        afterExclusive,
        hi,
        Math.min(limit - out.length, 2 ** 31 - 1), // CQL LIMIT is an int
      ]);
      for (const r of rows) {
        const kind = r.get('kind') as string;
        const roomId = r.get('room_id') as string;
        if (kind === PDU_REF) {
          const entry: OutboundEntry = { pos: num(r.get('pos')), item: { kind: 'pdu', roomId, pdu: {} } };
          out.push(entry);
          refs.push({ entry, eventId: r.get('body') as string });
          continue;
        }
        const parsed = jsonParse<JsonObject>(r.get('body') as string);
        out.push({ pos: num(r.get('pos')), item: kind === 'pdu' ? { kind: 'pdu', roomId, pdu: parsed } : { kind: 'edu', edu: parsed } });
      }
    }
    // A few reads at a time: a window of a sender is up to 500 entries.
    for (let i = 0; i < refs.length; i += 32) {
      await Promise.all(
        refs.slice(i, i + 32).map(async ({ entry, eventId }) => {
          entry.item = { kind: 'pdu', roomId: (entry.item as { roomId: string }).roomId, pdu: await this.eventPdu(eventId) };
        }),
      );
    }
    return out;
  }

  /** A queued event's PDU as sent: as it was written (the original if redacted since), without `unsigned`. */
  private async eventPdu(eventId: string): Promise<JsonObject> {
    const row = (await this.ctx.execute('SELECT pdu_json, redacted_by, pruned FROM events WHERE event_id = ?', [eventId])).first();
    // Written in the same logged batch as the entry, which a reader bounded by the watermark
    // sees only once applied: a missing row is an error to retry, never an entry to skip.
    if (!row) throw new Error(`federation queue: event ${eventId} of a queued PDU not found`);
    let json = row.get('pdu_json') as string;
    if (row.get('redacted_by') || row.get('pruned') === true) {
      // Written in the redaction's (or the expiry prune's) batch; absent only once expired (the
      // entry has too, then) or for a rewrite older than this table (0022) or than `pruned`
      // (0025): the redacted form still verifies.
      const original = (await this.ctx.execute('SELECT pdu_json FROM federation_originals WHERE event_id = ?', [eventId])).first();
      if (original) json = original.get('pdu_json') as string;
    }
    const { unsigned: _u, ...pdu } = jsonParse<JsonObject>(json);
    return pdu;
  }

  async getDestinationQueue(destination: string): Promise<DestinationQueueState> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('SELECT destination, sent_upto, queued_upto, txn_id, txn_upto, txn_catch_up FROM federation_destinations WHERE destination = ?', [destination]);
    const row = rs.first();
    return row ? toState(row) : { destination, sentUpto: 0, queuedUpto: 0, txn: null };
  }

  async listDestinationQueues(): Promise<DestinationQueueState[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT destination, sent_upto, queued_upto, txn_id, txn_upto, txn_catch_up FROM federation_destinations');
    return rows.map(toState).sort((a, b) => (a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0));
  }

  async beginTxn(destination: string, txn: OutboundTxn): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('UPDATE federation_destinations USING TIMESTAMP ? SET txn_id = ?, txn_upto = ?, txn_catch_up = ? WHERE destination = ?', [
      2 * txn.upto,
      txn.txnId,
      txn.upto,
      txn.catchUp,
      destination,
    ]);
  }

  async completeTxn(destination: string, txn: OutboundTxn): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute(`UPDATE federation_destinations USING TIMESTAMP ? SET sent_upto = ?, txn_id = '', txn_upto = 0, txn_catch_up = false WHERE destination = ?`, [
      2 * txn.upto + 1,
      txn.upto,
      destination,
    ]);
  }

  async getCursor(name: string): Promise<number | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT upto FROM federation_cursors WHERE name = ?', [name])).first();
    return row && row.get('upto') !== null ? num(row.get('upto')) : null;
  }

  async advanceCursor(name: string, upto: number): Promise<void> {
    this.ctx.checkOpen();
    // The mark as the write timestamp: the highest mark wins however writes race (see 0023).
    await this.ctx.execute('UPDATE federation_cursors USING TIMESTAMP ? SET upto = ? WHERE name = ?', [upto, upto, name]);
  }
}

/**
 * Keeps `pduJson`, the event's PDU before a rewrite (a redaction, an MSC2228 expiry prune), for
 * queue entries that still name the event; in the rewrite's own batch, with the queue's TTL.
 */
export function keepOriginal(eventId: string, pduJson: string): CqlStatement {
  return { query: 'INSERT INTO federation_originals (event_id, pdu_json) VALUES (?, ?) USING TTL ?', params: [eventId, pduJson, TTL_MS / 1000] };
}

/** Entries at `pos` for each destination with their state updates (for a caller's logged batch too: a receipt's EDU). */
export function outboundStatements(dests: readonly string[], pos: number, kind: OutboundItem['kind'] | typeof PDU_REF, roomId: string, body: string): CqlStatement[] {
  const statements: CqlStatement[] = [];
  for (const d of dests) {
    statements.push(
      { query: 'INSERT INTO federation_outbox (destination, bucket, pos, kind, room_id, body) VALUES (?, ?, ?, ?, ?, ?)', params: [d, positionBucket(pos), pos, kind, roomId, body] },
      { query: 'UPDATE federation_destinations USING TIMESTAMP ? SET queued_upto = ? WHERE destination = ?', params: [pos, pos, d] },
      { query: 'UPDATE federation_destinations USING TIMESTAMP ? SET first_queued = ? WHERE destination = ?', params: [FIRST - pos, pos, d] },
    );
  }
  return statements;
}

function toState(row: { get(name: string): unknown }): DestinationQueueState {
  const n = (c: string) => (row.get(c) === null || row.get(c) === undefined ? 0 : num(row.get(c)));
  const txnId = (row.get('txn_id') as string | null) ?? '';
  return {
    destination: row.get('destination') as string,
    sentUpto: n('sent_upto'),
    queuedUpto: n('queued_upto'),
    txn: txnId === '' ? null : { txnId, upto: n('txn_upto'), catchUp: row.get('txn_catch_up') === true },
  };
}
