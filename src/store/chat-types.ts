// Storage contract for the everyday-chat domains: receipts, notification counts, relations and
// threads, the user directory and content reports. Same rules as src/store/types.ts: async,
// concurrent-safe, writes resolve after commit, stream positions come from the one global
// sequence and are completed before the write resolves.

import type { JsonObject } from '../protocol/types.js';

// ---------------------------------------------------------------------------------------------
// Receipts

export type ReceiptType = 'm.read' | 'm.read.private';

/** `null` = an unthreaded receipt; 'main' = the main timeline; otherwise a thread root event ID. */
export type ReceiptThread = string | null;

export interface ReceiptRecord {
  roomId: string;
  userId: string;
  type: ReceiptType;
  threadId: ReceiptThread;
  eventId: string;
  /** Stream position of the event the receipt points at (for "never moves backwards"). */
  eventStream: number;
  ts: number;
  /** Stream position at which this receipt was written. */
  stream: number;
}

/**
 * A receipt to store, copied field by field so the caller's object (and any extra fields on it)
 * stays theirs. Shared by every backend's putReceipt.
 */
export function copyReceipt(input: Omit<ReceiptRecord, 'stream'>): Omit<ReceiptRecord, 'stream'> {
  return {
    roomId: input.roomId,
    userId: input.userId,
    type: input.type,
    threadId: input.threadId,
    eventId: input.eventId,
    eventStream: input.eventStream,
    ts: input.ts,
  };
}

/** An EDU queued with a receipt (ReceiptStore.putReceipt). */
export interface ReceiptOutbound {
  destinations: readonly string[];
  /** `{ edu_type, content }`. */
  edu: JsonObject;
}

export interface ReceiptStore {
  /**
   * Sets the user's receipt of this (room, type, thread) to the event, unless the existing one
   * points at an event with a higher or equal `eventStream` (receipts never move backwards).
   * Returns the new record, or null when nothing changed. `outbound`: an EDU for other servers
   * (a local user's m.receipt), queued on the federation queue (src/store/federation-types.ts)
   * at the receipt's position in the receipt's own write: queued exactly when the receipt is
   * stored, so a crash after the write cannot lose it, and a receipt not stored sends nothing.
   */
  putReceipt(input: Omit<ReceiptRecord, 'stream'>, outbound?: ReceiptOutbound): Promise<ReceiptRecord | null>;
  /** Current receipts of the given rooms (latest per user/type/thread). */
  getRoomReceipts(roomIds: string[]): Promise<ReceiptRecord[]>;
  /** Receipts written in (fromExclusive, toInclusive] in the given rooms, latest per key. */
  getReceiptChanges(roomIds: string[], fromExclusive: number, toInclusive: number): Promise<ReceiptRecord[]>;
  /** The user's current receipts in a room (all types and threads). */
  getUserReceipts(roomId: string, userId: string): Promise<ReceiptRecord[]>;
}

// ---------------------------------------------------------------------------------------------
// Push actions and unread counts

/** Written with the event (PersistEventInput.pushActions): one row per member to notify. */
export interface PushActionInput {
  userId: string;
  /** Counts towards notification_count. */
  notify: boolean;
  highlight: boolean;
  /** Thread root for events in a thread, else null (main timeline). */
  threadId: string | null;
  /** The rule's actions, kept for /notifications. */
  actions: Array<string | JsonObject>;
}

/**
 * Written with the event (PersistEventInput.pushBulk): one push-rule result shared by many
 * members, stored once instead of a PushActionInput per member. It applies to every user whose
 * membership in the room was `join` just before the event's stream position (their latest
 * membership change below it was to `join`), except the event's sender and the users in
 * `except`; for each of them it counts exactly like a PushActionInput with these fields would.
 * Counts and notifications are only read for local users, so `except` need only list local
 * members; it must list every joined local member whose result differs (whether or not they
 * notify), and those who do notify get their own PushActionInput.
 */
export interface PushBulkInput {
  notify: boolean;
  highlight: boolean;
  threadId: string | null;
  actions: Array<string | JsonObject>;
  except: string[];
}

export interface UnreadCounts {
  notification_count: number;
  highlight_count: number;
}

export interface RoomUnreadCounts {
  /** Main timeline (and unthreaded) counts. */
  main: UnreadCounts;
  /** Per thread root. Only threads with a non-zero count appear. */
  threads: Map<string, UnreadCounts>;
}

export interface NotificationRecord {
  roomId: string;
  eventId: string;
  stream: number;
  actions: Array<string | JsonObject>;
  highlight: boolean;
  ts: number;
  /** Whether a read receipt (or own later event) covers it. */
  read: boolean;
}

export interface NotificationStore {
  /**
   * Counts push actions for the user in each room that are not covered by the user's read state:
   * an action at stream S counts unless S <= the stream of the user's latest own event in the
   * room, or <= the event stream of a receipt (public or private) that applies: for the main
   * timeline the max of the unthreaded and 'main' receipts; for thread T the max of the
   * unthreaded receipt and T's. Actions above `upTo` are ignored. A bulk result
   * (PushBulkInput) counts as an action for each user it applies to.
   */
  getUnreadCounts(userId: string, roomIds: string[], upTo: number): Promise<Map<string, RoomUnreadCounts>>;
  /**
   * Newest first; `before` is an exclusive stream bound; `onlyHighlight` filters. Bulk results
   * are listed for each user they apply to, rooms left since included, as per-user actions are.
   */
  getNotifications(userId: string, opts: { before?: number; limit: number; onlyHighlight: boolean }): Promise<NotificationRecord[]>;
}

// ---------------------------------------------------------------------------------------------
// Relations and threads
//
// Backends derive relations themselves when an event is persisted: an event whose content has
// `m.relates_to` with string `rel_type` and `event_id` relates to that event. Redacted relating
// events drop out of every query below.

export interface RelationQuery {
  roomId: string;
  eventId: string;
  relType?: string;
  eventType?: string;
  dir: 'b' | 'f';
  /** Exclusive stream bound to continue from (as in RoomEventsQuery). */
  from?: number;
  limit: number;
}

export interface ThreadSummary {
  rootEventId: string;
  latestEventId: string;
  count: number;
  participants: string[];
  /** Stream position of the latest event in the thread (threads are ordered by it). */
  latestStream: number;
}

export interface Aggregations {
  thread?: ThreadSummary;
  /** Latest valid edit (same sender, same type as the original), by stream order. */
  replaceEventId?: string;
  references: string[];
}

export interface RelationStore {
  /** Event IDs relating to the event, ordered in the direction of travel. */
  getRelations(query: RelationQuery): Promise<Array<{ eventId: string; stream: number }>>;
  /** Threads of a room, most recently active first, optionally only those the user took part in. */
  getThreads(roomId: string, opts: { participant?: string; before?: number; limit: number }): Promise<ThreadSummary[]>;
  /** Bundled aggregations for the given events (absent when there are none). */
  getAggregations(eventIds: string[]): Promise<Map<string, Aggregations>>;
}

// ---------------------------------------------------------------------------------------------
// User directory and reports

export interface DirectoryUser {
  userId: string;
  displayname: string | null;
  avatarUrl: string | null;
}

export interface ReportRecord {
  roomId: string;
  eventId: string | null;
  reporter: string;
  reason: string | null;
  score: number | null;
  ts: number;
}

export interface DirectoryStore {
  /**
   * Users whose ID or display name matches every word of `term` (case-insensitive prefix match
   * per word), restricted to users other than `searcherId` who share a joined room with it, and
   * users joined to a room whose current join rule is `public` or whose current history
   * visibility is `world_readable` (the searcher included). Whether a room is published in the
   * room directory plays no part. At most `limit` + 1 results, so callers can report `limited`.
   */
  searchUsers(searcherId: string, term: string, limit: number): Promise<DirectoryUser[]>;
  addReport(report: ReportRecord): Promise<void>;
  listReports(limit: number): Promise<ReportRecord[]>;
}
