// Push actions (written with their event) and the unread counts and notification list read from
// them.
//
// Two kinds of rows: push_actions holds one row per (user, event); push_bulk holds one row per
// event for a result shared by many members (PushBulkInput). A bulk row applies to a user when
// the user was joined just before its stream (derived from membership_history as "join
// intervals": a join at stream s lasting until the next non-join change at e covers streams in
// (s, e]), is not its sender and is not in its except list. Writers list every other user they
// notify in push_actions, so the two never overlap and both count the same way.
//
// An action is "read" when the user's read state covers it: its stream is at or below the
// user's latest own event in the room, or at or below a receipt that applies to its timeline
// (main: unthreaded or 'main' receipts; thread T: unthreaded or T's receipts; m.read and
// m.read.private alike). Receipts and own events are read as they are now, so counts always
// reflect the current read state; only the actions themselves are bounded by `upTo`.

import type { NotificationRecord, NotificationStore, PushActionInput, PushBulkInput, RoomUnreadCounts } from '../chat-types.js';
import { jsonParse, type SqliteContext } from './context.js';

/** A push action captured when the event is queued (the caller's objects stay theirs). */
export interface PreparedPushAction {
  userId: string;
  notify: number;
  highlight: number;
  threadId: string | null;
  actionsJson: string;
}

export function preparePushActions(actions: PushActionInput[] | undefined): PreparedPushAction[] {
  if (actions === undefined) return [];
  return actions.map((a) => ({
    userId: a.userId,
    notify: a.notify ? 1 : 0,
    highlight: a.highlight ? 1 : 0,
    threadId: a.threadId,
    actionsJson: JSON.stringify(a.actions),
  }));
}

/** A bulk push result captured when the event is queued. */
export interface PreparedPushBulk {
  notify: number;
  highlight: number;
  threadId: string | null;
  actionsJson: string;
  exceptJson: string;
}

export function preparePushBulk(bulk: PushBulkInput | undefined): PreparedPushBulk | null {
  // A result that neither notifies nor highlights counts nowhere: nothing to store.
  if (bulk === undefined || (!bulk.notify && !bulk.highlight)) return null;
  return {
    notify: bulk.notify ? 1 : 0,
    highlight: bulk.highlight ? 1 : 0,
    threadId: bulk.threadId,
    actionsJson: JSON.stringify(bulk.actions),
    // Deduplicated strings: the reader's instr() pre-check relies on JSON.stringify's encoding.
    exceptJson: JSON.stringify([...new Set(bulk.except.map(String))]),
  };
}

/** Runs inside persistEvent's savepoint. */
export function writePushBulk(
  ctx: SqliteContext,
  roomId: string,
  eventId: string,
  sender: string,
  pos: number,
  ts: number,
  bulk: PreparedPushBulk | null,
): void {
  if (bulk === null) return;
  ctx
    .stmt(
      `INSERT INTO push_bulk (stream, room_id, event_id, sender, thread_id, notify, highlight, actions_json, except_json, ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(pos, roomId, eventId, sender, bulk.threadId, bulk.notify, bulk.highlight, bulk.actionsJson, bulk.exceptJson, ts);
}

/** Runs inside persistEvent's savepoint. */
export function writePushActions(
  ctx: SqliteContext,
  roomId: string,
  eventId: string,
  pos: number,
  ts: number,
  actions: PreparedPushAction[],
): void {
  if (actions.length === 0) return;
  // A user listed twice is a caller bug; keeping the first row is harmless, failing the event is not.
  // Large rooms write a row per notified member: multi-row statements cut the per-row binding
  // and statement overhead (the B-tree work is the same).
  let i = 0;
  const full = actions.length - (actions.length % CHUNK);
  if (full > 0) {
    const many = ctx.stmt(insertSql(CHUNK));
    for (; i < full; i += CHUNK) many.run(...rowParams(actions.slice(i, i + CHUNK), roomId, pos, eventId, ts));
  }
  if (i < actions.length) ctx.stmt(insertSql(actions.length - i)).run(...rowParams(actions.slice(i), roomId, pos, eventId, ts));
}

const CHUNK = 64;

function insertSql(rows: number): string {
  const values = Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ');
  return `INSERT INTO push_actions (user_id, room_id, stream, event_id, notify, highlight, thread_id, actions_json, ts)
     VALUES ${values} ON CONFLICT DO NOTHING`;
}

function rowParams(actions: PreparedPushAction[], roomId: string, pos: number, eventId: string, ts: number): unknown[] {
  const out: unknown[] = [];
  for (const a of actions) out.push(a.userId, roomId, pos, eventId, a.notify, a.highlight, a.threadId, a.actionsJson, ts);
  return out;
}

// Query plan: the two read-state lookups in the MAX(...) are not correlated with the outer row,
// so SQLite evaluates them once (each a single seek: events_room_sender and the receipts key)
// and uses the result as the lower bound of a range on push_actions' key (user_id, room_id,
// stream). Only actions above the common read position are visited; for each of those the
// correlated subquery looks up the receipts of its own timeline by key prefix
// (room_id, user_id, thread_id) to drop actions that timeline's receipt covers.
const UNREAD_SQL = `
  SELECT pa.thread_id AS thread_id, SUM(pa.notify) AS n, SUM(pa.highlight) AS h
  FROM push_actions pa
  WHERE pa.user_id = @user AND pa.room_id = @room AND pa.stream <= @upTo
    AND pa.stream > MAX(
      COALESCE((SELECT MAX(e.stream) FROM events e WHERE e.room_id = @room AND e.sender = @user), 0),
      COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = @room AND r.user_id = @user AND r.thread_id = ''), 0))
    AND pa.stream > COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = @room AND r.user_id = @user AND r.thread_id = COALESCE(pa.thread_id, 'main')), 0)
  GROUP BY pa.thread_id`;

// The read-state subqueries sit in the result columns, so they run only for the rows of the
// page (the ORDER BY walks an index backwards and LIMIT stops it).
const NOTIFICATIONS_SQL = (onlyHighlight: boolean) => `
  SELECT pa.room_id, pa.event_id, pa.stream, pa.actions_json, pa.highlight, pa.ts,
    pa.stream <= MAX(
      COALESCE((SELECT MAX(e.stream) FROM events e WHERE e.room_id = pa.room_id AND e.sender = pa.user_id), 0),
      COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = pa.room_id AND r.user_id = pa.user_id
                  AND r.thread_id IN ('', COALESCE(pa.thread_id, 'main'))), 0)) AS is_read
  FROM push_actions pa
  WHERE pa.user_id = @user AND pa.stream < @before
    AND ${onlyHighlight ? 'pa.highlight = 1' : '(pa.notify = 1 OR pa.highlight = 1)'}
  ORDER BY pa.stream DESC LIMIT @limit`;

// A bulk row applies to @user unless they sent the event or are listed in except_json. The
// instr() test on the JSON text (@needle is JSON.stringify(user)) rejects almost every row
// without parsing; json_each then decides exactly.
const BULK_APPLIES = `b.sender <> @user
    AND (instr(b.except_json, @needle) = 0
         OR NOT EXISTS (SELECT 1 FROM json_each(b.except_json) x WHERE x.value = @user))`;

// Bulk rows of one room in one of the user's join intervals, (@lo, @hi], above the read state
// (same rules as UNREAD_SQL; the common read position is folded into the range's lower bound so
// the (room_id, stream) index range starts there).
const BULK_UNREAD_SQL = `
  SELECT b.thread_id AS thread_id, SUM(b.notify) AS n, SUM(b.highlight) AS h
  FROM push_bulk b
  WHERE b.room_id = @room AND b.stream <= @hi
    AND b.stream > MAX(@lo,
      COALESCE((SELECT MAX(e.stream) FROM events e WHERE e.room_id = @room AND e.sender = @user), 0),
      COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = @room AND r.user_id = @user AND r.thread_id = ''), 0))
    AND b.stream > COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = @room AND r.user_id = @user AND r.thread_id = COALESCE(b.thread_id, 'main')), 0)
    AND ${BULK_APPLIES}
  GROUP BY b.thread_id`;

// One page of a room's bulk rows in one join interval, newest first (as NOTIFICATIONS_SQL).
const BULK_NOTIFICATIONS_SQL = (onlyHighlight: boolean) => `
  SELECT b.room_id, b.event_id, b.stream, b.actions_json, b.highlight, b.ts,
    b.stream <= MAX(
      COALESCE((SELECT MAX(e.stream) FROM events e WHERE e.room_id = @room AND e.sender = @user), 0),
      COALESCE((SELECT MAX(r.event_stream) FROM receipts r
                WHERE r.room_id = @room AND r.user_id = @user
                  AND r.thread_id IN ('', COALESCE(b.thread_id, 'main'))), 0)) AS is_read
  FROM push_bulk b
  WHERE b.room_id = @room AND b.stream > @lo AND b.stream <= @hi
    AND ${onlyHighlight ? 'b.highlight = 1' : '(b.notify = 1 OR b.highlight = 1)'}
    AND ${BULK_APPLIES}
  ORDER BY b.stream DESC LIMIT @limit`;

const ROOM_HISTORY_SQL = 'SELECT stream, membership FROM membership_history WHERE user_id = ? AND room_id = ? ORDER BY stream';
const USER_HISTORY_SQL = 'SELECT room_id, stream, membership FROM membership_history WHERE user_id = ? ORDER BY room_id, stream';

/** Stands in for "still joined" as an interval end (a bound SQLite compares as an integer). */
const OPEN = Number.MAX_SAFE_INTEGER;

/**
 * The stream ranges (lo, hi] in which a user was joined just before the position: from each
 * change to join (consecutive joins, e.g. profile changes, extend it) up to and including the
 * next change away from join, or OPEN.
 */
function joinIntervals(history: { stream: number; membership: string }[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start: number | null = null;
  for (const h of history) {
    if (h.membership === 'join') start ??= h.stream;
    else if (start !== null) {
      out.push([start, h.stream]);
      start = null;
    }
  }
  if (start !== null) out.push([start, OPEN]);
  return out;
}

interface NotificationRow {
  room_id: string;
  event_id: string;
  stream: number;
  actions_json: string;
  highlight: number;
  ts: number;
  is_read: number;
}

export class SqliteNotificationStore implements NotificationStore {
  constructor(private readonly ctx: SqliteContext) {}

  async getUnreadCounts(userId: string, roomIds: string[], upTo: number): Promise<Map<string, RoomUnreadCounts>> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(UNREAD_SQL);
    const bulkStmt = this.ctx.stmt(BULK_UNREAD_SQL);
    const history = this.ctx.stmt(ROOM_HISTORY_SQL);
    const needle = JSON.stringify(userId);
    const out = new Map<string, RoomUnreadCounts>();
    type Row = { thread_id: string | null; n: number; h: number };
    for (const roomId of roomIds) {
      if (out.has(roomId)) continue;
      const rows = stmt.all({ user: userId, room: roomId, upTo }) as Row[];
      for (const [lo, end] of joinIntervals(history.all(userId, roomId) as { stream: number; membership: string }[])) {
        const hi = Math.min(end, upTo);
        if (hi > lo) rows.push(...(bulkStmt.all({ user: userId, needle, room: roomId, lo, hi }) as Row[]));
      }
      const counts: RoomUnreadCounts = { main: { notification_count: 0, highlight_count: 0 }, threads: new Map() };
      for (const r of rows) {
        const c = r.thread_id === null ? counts.main : counts.threads.get(r.thread_id) ?? { notification_count: 0, highlight_count: 0 };
        c.notification_count += r.n;
        c.highlight_count += r.h;
        if (r.thread_id !== null && (c.notification_count > 0 || c.highlight_count > 0)) counts.threads.set(r.thread_id, c);
      }
      out.set(roomId, counts);
    }
    return out;
  }

  async getNotifications(userId: string, opts: { before?: number; limit: number; onlyHighlight: boolean }): Promise<NotificationRecord[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const before = opts.before ?? Number.MAX_SAFE_INTEGER;
    let rows = this.ctx.stmt(NOTIFICATIONS_SQL(opts.onlyHighlight)).all({ user: userId, before, limit }) as NotificationRow[];

    // Bulk rows: a page per join interval (any room the user was ever joined to, left ones
    // included, as for push_actions), newest intervals first. Once `limit` rows are known, only
    // rows above the oldest of them can still make the page, which bounds every later range.
    const intervals: { roomId: string; lo: number; hi: number }[] = [];
    const history = this.ctx.stmt(USER_HISTORY_SQL).all(userId) as { room_id: string; stream: number; membership: string }[];
    for (let i = 0; i < history.length; ) {
      let j = i;
      while (j < history.length && history[j].room_id === history[i].room_id) j++;
      for (const [lo, end] of joinIntervals(history.slice(i, j))) {
        const hi = Math.min(end, before - 1);
        if (hi > lo) intervals.push({ roomId: history[i].room_id, lo, hi });
      }
      i = j;
    }
    if (intervals.length > 0) {
      intervals.sort((a, b) => b.hi - a.hi);
      const stmt = this.ctx.stmt(BULK_NOTIFICATIONS_SQL(opts.onlyHighlight));
      const needle = JSON.stringify(userId);
      const floor = () => (rows.length >= limit ? rows[limit - 1].stream : 0);
      for (const iv of intervals) {
        const lo = Math.max(iv.lo, floor());
        if (iv.hi <= lo) continue;
        const more = stmt.all({ user: userId, needle, room: iv.roomId, lo, hi: iv.hi, limit }) as NotificationRow[];
        if (more.length === 0) continue;
        // A writer never lists a user both ways; if one did, the per-user row wins.
        const seen = new Set(rows.map((r) => r.stream));
        rows = [...rows, ...more.filter((r) => !seen.has(r.stream))].sort((a, b) => b.stream - a.stream).slice(0, limit);
      }
    }
    return rows.map((r) => ({
      roomId: r.room_id,
      eventId: r.event_id,
      stream: r.stream,
      actions: jsonParse<NotificationRecord['actions']>(r.actions_json),
      highlight: r.highlight !== 0,
      ts: r.ts,
      read: r.is_read !== 0,
    }));
  }
}
