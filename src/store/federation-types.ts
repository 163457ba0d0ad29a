// What outbound federation keeps durable (src/federation/sender.ts): per destination server, an
// append-only log of what to send (PDUs of local events, EDUs) at stream positions, and one
// state row: "everything at or below sentUpto was delivered", plus the transaction in flight.
//
// Why this shape (Cassandra rules, ../../../shared/notes/cassandra.md: no queue tables, no
// tombstone-heavy patterns, never bind null):
// - Nothing is ever deleted. Delivery moves the destination's sentUpto forward (one row,
//   updated in place); log entries are immutable and expire by TTL (Cassandra: 7 days, time
//   window compaction, so whole expired sstables are dropped; SQLite, which has no tombstones,
//   deletes them once delivered). A reader starts at sentUpto, so it never walks expired rows.
// - Entries take positions on the global stream (reserved, then completed), so a reader bounded
//   by the (cluster) watermark never passes an entry another worker is still writing: any
//   worker can send what any other queued, in position order, and a worker that dies leaves
//   its entries for the next holder of the destination's lease (src/cluster/destination-leases.ts).
// - The state row is written only by the worker holding the destination's lease. Cassandra
//   writes its cells with timestamps derived from positions, so a late write from a previous
//   holder can neither move sentUpto back nor clear a newer transaction.
//
// Invariants every backend keeps:
// - enqueueOutbound writes one entry per destination at one fresh position and raises each
//   destination's queuedUpto to it; outboundAfter returns entries in (after, upto] in position
//   order, at most `limit`.
// - beginTxn records the transaction in flight; completeTxn moves sentUpto forward (never back)
//   and clears the transaction it names (not a newer one).
// - An unknown destination reads as { sentUpto: 0, queuedUpto: 0, txn: null }.
// - A local event's own PDU is queued by persistEvent (PersistEventInput.outbound) in the same
//   write as the event, at the event's stream position (unique, so entries of a destination
//   still have distinct positions; in room order, as the room's events are): once the event is
//   durable, so are its entries, and a crash between the two cannot lose the PDU. The entry
//   sends the event as it was written, even if a redaction or an MSC2228 expiry prune rewrote
//   the stored copy since (the receiver redacts or prunes its own copy).
// - A cursor (getCursor/advanceCursor) is a named mark on the global stream that only grows
//   (advanceCursor never lowers it; null until first set): a publisher that derives entries from
//   a change stream written with its changes (the device-list stream) raises it once what lies
//   at or below it is queued, so a crash before that leaves the changes above it to publish again.

import type { JsonObject } from '../protocol/types.js';

export type OutboundItem =
  /** A local event for the destination; `pdu` is the event as sent (no `unsigned`). */
  | { kind: 'pdu'; roomId: string; pdu: JsonObject }
  /** `edu` is `{ edu_type, content }`. */
  | { kind: 'edu'; edu: JsonObject };

export interface OutboundEntry {
  pos: number;
  item: OutboundItem;
}

export interface OutboundTxn {
  txnId: string;
  /** The last position the transaction covers. */
  upto: number;
  /** Built in catch-up mode (each room's newest PDU only, see sender.ts). */
  catchUp: boolean;
}

export interface DestinationQueueState {
  destination: string;
  sentUpto: number;
  queuedUpto: number;
  txn: OutboundTxn | null;
}

export interface FederationQueueStore {
  /** Appends `item` for every destination at one new stream position; returns it. */
  enqueueOutbound(destinations: readonly string[], item: OutboundItem): Promise<number>;
  /** Entries for the destination in (afterExclusive, uptoInclusive], oldest first. */
  outboundAfter(destination: string, afterExclusive: number, uptoInclusive: number, limit: number): Promise<OutboundEntry[]>;
  getDestinationQueue(destination: string): Promise<DestinationQueueState>;
  /** Every destination ever queued for (the senders' scan for work another worker queued). */
  listDestinationQueues(): Promise<DestinationQueueState[]>;
  beginTxn(destination: string, txn: OutboundTxn): Promise<void>;
  /** The transaction was acknowledged: sentUpto := max(sentUpto, txn.upto); the txn is cleared. */
  completeTxn(destination: string, txn: OutboundTxn): Promise<void>;
  /** The named cursor's mark; null when never set. */
  getCursor(name: string): Promise<number | null>;
  /** Raises the named cursor to `upto` (a lower value leaves it as it is). */
  advanceCursor(name: string, upto: number): Promise<void>;
}
