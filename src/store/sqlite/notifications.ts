// Push actions (written with their event) and the unread counts and notification list read from
// them.
//
// An action is "read" when the user's read state covers it: its stream is at or below the
// user's latest own event in the room, or at or below a receipt that applies to its timeline
// (main: unthreaded or 'main' receipts; thread T: unthreaded or T's receipts; m.read and
// m.read.private alike). Receipts and own events are read as they are now, so counts always
// reflect the current read state; only the actions themselves are bounded by `upTo`.

import type { NotificationRecord, NotificationStore, PushActionInput, RoomUnreadCounts } from '../chat-types.js';
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
    const out = new Map<string, RoomUnreadCounts>();
    for (const roomId of roomIds) {
      if (out.has(roomId)) continue;
      const counts: RoomUnreadCounts = { main: { notification_count: 0, highlight_count: 0 }, threads: new Map() };
      const rows = stmt.all({ user: userId, room: roomId, upTo }) as { thread_id: string | null; n: number; h: number }[];
      for (const r of rows) {
        const c = { notification_count: r.n, highlight_count: r.h };
        if (r.thread_id === null) counts.main = c;
        else if (r.n > 0 || r.h > 0) counts.threads.set(r.thread_id, c);
      }
      out.set(roomId, counts);
    }
    return out;
  }

  async getNotifications(userId: string, opts: { before?: number; limit: number; onlyHighlight: boolean }): Promise<NotificationRecord[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const rows = this.ctx
      .stmt(NOTIFICATIONS_SQL(opts.onlyHighlight))
      .all({ user: userId, before: opts.before ?? Number.MAX_SAFE_INTEGER, limit }) as NotificationRow[];
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
