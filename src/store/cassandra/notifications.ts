// Push actions (written in the event's logged batch by the hook below) and the unread counts and
// notification list read from them. Same results as ../sqlite/notifications.ts:
//
// - Per-user actions are stored twice: push_actions (per user, newest first, for the list) and
//   push_actions_by_room (per user and room, for counts). Both are bucketed by the position's
//   week (userBucket) and push_user_buckets lists the user's non-empty buckets.
// - A bulk result (PushBulkInput) is one push_bulk row per event, bucketed per room
//   (the position's hour, listed in push_bulk_buckets). It applies to a user joined just before its
//   stream (notif_memberships: join intervals (s, e] from a change to join up to and including
//   the next change away), who is not its sender nor in its except list.
// - Read state: an action is read when its stream is at or below the user's latest own event in
//   the room (notif_own_latest, written USING TIMESTAMP <position> so the highest position wins)
//   or a receipt of its timeline (main: unthreaded or 'main'; thread T: unthreaded or T's; m.read
//   and m.read.private alike). Receipts are the ReceiptStore's (the "cusers" module's receipts
//   tables), read through ReceiptStore.getUserReceipts: this module never reads their tables.
//   Receipts and own events are read as they are now; only actions are bounded by `upTo`.
// - The hook also records the membership changes the event's state delta makes (the member
//   event's own membership, or the named event's for a delta from state resolution; a key the
//   resolution drops counts as a leave), since bulk results need "joined just before S".

import type { Pdu } from '../../protocol/types.js';
import type {
  NotificationRecord,
  NotificationStore,
  PersistEventInput,
  PushActionInput,
  ReceiptStore,
  RoomUnreadCounts,
  UnreadCounts,
} from '../types.js';
import { jsonParse, num, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import { mapLimit, roomBucket, userBucket, type DerivedDeps } from './derived-common.js';

/** Stands in for "still joined" as an interval end. */
const OPEN = Number.MAX_SAFE_INTEGER;
/** Rows fetched per round trip when a read filters rows client-side. */
const PAGE = 200;
const PARALLEL = 16;
/** Rooms per `room_id IN` query on a user's partition. */
const IN_CHUNK = 100;

export interface NotificationDeps extends DerivedDeps {
  receipts: () => ReceiptStore;
}

/** The stream ranges (lo, hi] in which a user was joined just before the position. */
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

/** A listed action before its read state is known. */
type ListedRow = Omit<NotificationRecord, 'read'> & { threadId: string | null };

/** The user's read positions in one room: own latest event and receipts per timeline. */
interface ReadState {
  own: number;
  unthreaded: number;
  /** 'main' or a thread root -> the highest receipt's event stream. */
  byThread: Map<string, number>;
}

function readUpTo(rs: ReadState, threadId: string | null): number {
  return Math.max(rs.own, rs.unthreaded, rs.byThread.get(threadId ?? 'main') ?? 0);
}

export class CassandraNotificationStore implements NotificationStore {
  constructor(
    private readonly ctx: CassandraContext,
    private readonly deps: NotificationDeps,
  ) {}

  readonly hook: EventWriteHook = {
    forEvent: (input, pos) => this.statementsFor(input, pos),
  };

  private async statementsFor(input: PersistEventInput, pos: number): Promise<CqlStatement[]> {
    const roomId = input.pdu.room_id ?? '';
    const out: CqlStatement[] = [];
    const ts = input.pdu.origin_server_ts;
    out.push({
      query: 'INSERT INTO notif_own_latest (user_id, room_id, stream) VALUES (?, ?, ?) USING TIMESTAMP ?',
      params: [input.pdu.sender, roomId, pos, pos],
    });
    // A user listed twice is a caller bug: the first row is kept, as on SQLite.
    const seen = new Set<string>();
    const actions: PushActionInput[] = [];
    for (const a of input.pushActions ?? []) {
      if (seen.has(a.userId)) continue;
      seen.add(a.userId);
      actions.push(a);
    }
    const bucket = userBucket(pos);
    for (const a of actions) {
      const thread = a.threadId ?? '';
      out.push(
        {
          query: `INSERT INTO push_actions (user_id, bucket, stream, room_id, event_id, notify, highlight, thread_id, actions_json, ts)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          params: [a.userId, bucket, pos, roomId, input.eventId, a.notify, a.highlight, thread, JSON.stringify(a.actions), ts],
        },
        {
          query: `INSERT INTO push_actions_by_room (user_id, bucket, room_id, stream, notify, highlight, thread_id)
                  VALUES (?, ?, ?, ?, ?, ?, ?)`,
          params: [a.userId, bucket, roomId, pos, a.notify, a.highlight, thread],
        },
        { query: 'INSERT INTO push_user_buckets (user_id, bucket) VALUES (?, ?)', params: [a.userId, bucket] },
      );
    }
    const bulk = input.pushBulk;
    // A result that neither notifies nor highlights counts nowhere: nothing to store.
    if (bulk !== undefined && (bulk.notify || bulk.highlight)) {
      const b = roomBucket(pos);
      out.push(
        {
          query: `INSERT INTO push_bulk (room_id, bucket, stream, event_id, sender, thread_id, notify, highlight, actions_json, except_json, ts)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          params: [
            roomId,
            b,
            pos,
            input.eventId,
            input.pdu.sender,
            bulk.threadId ?? '',
            bulk.notify,
            bulk.highlight,
            JSON.stringify(bulk.actions),
            JSON.stringify([...new Set(bulk.except.map(String))]),
            ts,
          ],
        },
        { query: 'INSERT INTO push_bulk_buckets (room_id, bucket) VALUES (?, ?)', params: [roomId, b] },
      );
    }
    out.push(...(await this.membershipStatements(input, roomId, pos)));
    return out;
  }

  private async membershipStatements(input: PersistEventInput, roomId: string, pos: number): Promise<CqlStatement[]> {
    const members = input.stateDelta.filter((e) => e.type === 'm.room.member');
    const removed = (input.stateRemoved ?? []).filter((k) => k.type === 'm.room.member');
    if (members.length === 0 && removed.length === 0) return [];
    const others = members.filter((e) => e.eventId !== input.eventId).map((e) => e.eventId);
    const loaded = others.length > 0 ? await this.deps.rooms().getEvents(others) : new Map<string, { pdu: Pdu }>();
    const insert = 'INSERT INTO notif_memberships (user_id, room_id, stream, membership) VALUES (?, ?, ?, ?)';
    const out: CqlStatement[] = [];
    for (const e of members) {
      const pdu = e.eventId === input.eventId ? input.pdu : loaded.get(e.eventId)?.pdu;
      const m = pdu?.content['membership'];
      // An unknown or malformed member event is not "join", which is all readers ask.
      out.push({ query: insert, params: [e.stateKey, roomId, pos, typeof m === 'string' ? m : 'leave'] });
    }
    for (const k of removed) out.push({ query: insert, params: [k.stateKey, roomId, pos, 'leave'] });
    return out;
  }

  async getUnreadCounts(userId: string, roomIds: string[], upTo: number): Promise<Map<string, RoomUnreadCounts>> {
    this.ctx.checkOpen();
    const rooms = [...new Set(roomIds)];
    const out = new Map<string, RoomUnreadCounts>();
    if (rooms.length === 0) return out;
    // The user's own rows (buckets, latest own events, membership changes) for all the rooms
    // at once; receipts and actions per room.
    const [buckets, own, histories] = await Promise.all([
      this.userBuckets(userId),
      this.ownLatest(userId, rooms),
      this.histories(userId, rooms),
    ]);
    const counted = await mapLimit(rooms, PARALLEL, async (roomId) =>
      this.roomCounts(userId, roomId, upTo, buckets, await this.readState(userId, roomId, own.get(roomId) ?? 0), histories.get(roomId) ?? []),
    );
    // In request order (first occurrence), as on SQLite.
    rooms.forEach((roomId, i) => out.set(roomId, counted[i]!));
    return out;
  }

  private async roomCounts(
    userId: string,
    roomId: string,
    upTo: number,
    buckets: number[],
    rs: ReadState,
    history: { stream: number; membership: string }[],
  ): Promise<RoomUnreadCounts> {
    const counts: RoomUnreadCounts = { main: { notification_count: 0, highlight_count: 0 }, threads: new Map() };
    const add = (threadId: string | null, notify: boolean, highlight: boolean): void => {
      const c: UnreadCounts =
        threadId === null ? counts.main : (counts.threads.get(threadId) ?? { notification_count: 0, highlight_count: 0 });
      if (notify) c.notification_count++;
      if (highlight) c.highlight_count++;
      if (threadId !== null && (c.notification_count > 0 || c.highlight_count > 0)) counts.threads.set(threadId, c);
    };
    // Everything at or below the common read position is read on every timeline.
    const lo = Math.max(rs.own, rs.unthreaded);
    if (upTo > lo) {
      const wanted = buckets.filter((b) => b >= userBucket(lo) && b <= userBucket(upTo));
      const pages = await Promise.all(
        wanted.map((b) =>
          this.ctx.all(
            `SELECT stream, notify, highlight, thread_id FROM push_actions_by_room
             WHERE user_id = ? AND bucket = ? AND room_id = ? AND stream > ? AND stream <= ?`,
            [userId, b, roomId, lo, upTo],
          ),
        ),
      );
      for (const row of pages.flat()) {
        const threadId = (row['thread_id'] as string) || null;
        if (num(row['stream']) <= readUpTo(rs, threadId)) continue;
        add(threadId, row['notify'] === true, row['highlight'] === true);
      }
    }
    const intervals = joinIntervals(history)
      .map(([s, e]): [number, number] => [Math.max(s, lo), Math.min(e, upTo)])
      .filter(([s, e]) => e > s);
    if (intervals.length > 0) {
      const bulkBuckets = await this.bulkBuckets(roomId);
      for (const [s, e] of intervals) {
        const wanted = bulkBuckets.filter((b) => b >= roomBucket(s) && b <= roomBucket(e));
        const pages = await Promise.all(
          wanted.map((b) =>
            this.ctx.all(
              `SELECT stream, sender, thread_id, notify, highlight, except_json FROM push_bulk
               WHERE room_id = ? AND bucket = ? AND stream > ? AND stream <= ?`,
              [roomId, b, s, e],
            ),
          ),
        );
        for (const row of pages.flat()) {
          if (!bulkApplies(row, userId)) continue;
          const threadId = (row['thread_id'] as string) || null;
          if (num(row['stream']) <= readUpTo(rs, threadId)) continue;
          add(threadId, row['notify'] === true, row['highlight'] === true);
        }
      }
    }
    return counts;
  }

  async getNotifications(userId: string, opts: { before?: number; limit: number; onlyHighlight: boolean }): Promise<NotificationRecord[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const before = opts.before ?? Number.MAX_SAFE_INTEGER;
    const wanted = (notify: boolean, highlight: boolean) => (opts.onlyHighlight ? highlight : notify || highlight);
    let rows: ListedRow[] = [];

    // Per-user rows, newest bucket first, until the page is full. Pages continue below the
    // last stream seen (exclusive bounds only: positions are sparse).
    for (const b of await this.userBuckets(userId)) {
      if (rows.length >= limit) break;
      if (b > userBucket(before)) continue;
      let below = before;
      for (;;) {
        const page = await this.ctx.execute(
          `SELECT stream, room_id, event_id, notify, highlight, thread_id, actions_json, ts FROM push_actions
           WHERE user_id = ? AND bucket = ? AND stream < ? LIMIT ?`,
          [userId, b, below, PAGE],
        );
        for (const r of page.rows) {
          if (rows.length >= limit) break;
          if (!wanted(r['notify'] === true, r['highlight'] === true)) continue;
          rows.push(toRow(r));
        }
        if (page.rowLength < PAGE || rows.length >= limit) break;
        below = num(page.rows[page.rowLength - 1]!['stream']);
      }
    }

    // Bulk rows: a page per join interval (lo, end] (any room the user was ever joined to),
    // below `before`, newest intervals first. Once `limit` rows are known only rows above the
    // oldest can still make the page, which bounds every later range.
    const intervals: { roomId: string; lo: number; end: number }[] = [];
    for (const [roomId, history] of await this.userHistory(userId)) {
      for (const [lo, end] of joinIntervals(history)) {
        if (lo < before) intervals.push({ roomId, lo, end });
      }
    }
    intervals.sort((a, b) => Math.min(b.end, before) - Math.min(a.end, before));
    // Intervals are read a group at a time in parallel; each group starts from the floor the
    // groups before it left.
    const buckets = new Map<string, Promise<number[]>>();
    const bucketsOf = (roomId: string) => {
      let p = buckets.get(roomId);
      if (p === undefined) buckets.set(roomId, (p = this.bulkBuckets(roomId)));
      return p;
    };
    for (let g = 0; g < intervals.length; g += PARALLEL) {
      const floor = rows.length >= limit ? rows[limit - 1]!.stream : 0;
      const found = await Promise.all(
        intervals.slice(g, g + PARALLEL).map((iv) => this.bulkPage(userId, iv, Math.max(iv.lo, floor), before, limit, wanted, bucketsOf)),
      );
      const more = found.flat();
      if (more.length === 0) continue;
      // A writer never lists a user both ways; if one did, the per-user row wins.
      const seen = new Set(rows.map((r) => r.stream));
      rows = [...rows, ...more.filter((r) => !seen.has(r.stream))].sort((a, b) => b.stream - a.stream).slice(0, limit);
    }
    rows.sort((a, b) => b.stream - a.stream);
    rows = rows.slice(0, limit);

    const own = await this.ownLatest(userId, [...new Set(rows.map((r) => r.roomId))]);
    const states = new Map<string, Promise<ReadState>>();
    const stateOf = (roomId: string) => {
      let p = states.get(roomId);
      if (p === undefined) states.set(roomId, (p = this.readState(userId, roomId, own.get(roomId) ?? 0)));
      return p;
    };
    const out: NotificationRecord[] = [];
    for (const r of rows) {
      const rs = await stateOf(r.roomId);
      const { threadId, ...rec } = r;
      out.push({ ...rec, read: r.stream <= readUpTo(rs, threadId) });
    }
    return out;
  }

  /** Up to `limit` of the room's bulk rows in (lo, iv.end] below `before` that list for the user, newest first. */
  private async bulkPage(
    userId: string,
    iv: { roomId: string; end: number },
    lo: number,
    before: number,
    limit: number,
    wanted: (notify: boolean, highlight: boolean) => boolean,
    bucketsOf: (roomId: string) => Promise<number[]>,
  ): Promise<ListedRow[]> {
    // The range's top: the interval's end (inclusive) or `before` (exclusive), the lower one.
    const top = iv.end < before ? { op: '<=', at: iv.end } : { op: '<', at: before };
    const more: ListedRow[] = [];
    if (top.at <= lo) return more;
    for (const b of await bucketsOf(iv.roomId)) {
      if (more.length >= limit) break;
      if (b > roomBucket(top.at) || b < roomBucket(lo)) continue;
      let upper = top;
      for (;;) {
        const page = await this.ctx.execute(
          `SELECT stream, room_id, event_id, sender, thread_id, notify, highlight, except_json, actions_json, ts FROM push_bulk
           WHERE room_id = ? AND bucket = ? AND stream > ? AND stream ${upper.op} ? LIMIT ?`,
          [iv.roomId, b, lo, upper.at, PAGE],
        );
        for (const r of page.rows) {
          if (more.length >= limit) break;
          if (!bulkApplies(r, userId) || !wanted(r['notify'] === true, r['highlight'] === true)) continue;
          more.push(toRow(r));
        }
        if (page.rowLength < PAGE || more.length >= limit) break;
        upper = { op: '<', at: num(page.rows[page.rowLength - 1]!['stream']) };
      }
    }
    return more;
  }

  /** `own`: the stream of the user's latest own event in the room (0 if none). */
  private async readState(userId: string, roomId: string, own: number): Promise<ReadState> {
    const rs: ReadState = { own, unthreaded: 0, byThread: new Map() };
    for (const r of await this.deps.receipts().getUserReceipts(roomId, userId)) {
      if (r.type !== 'm.read' && r.type !== 'm.read.private') continue;
      if (r.threadId === null) rs.unthreaded = Math.max(rs.unthreaded, r.eventStream);
      else rs.byThread.set(r.threadId, Math.max(rs.byThread.get(r.threadId) ?? 0, r.eventStream));
    }
    return rs;
  }

  /** The stream of the user's latest own event in each room (rooms without one are absent). */
  private async ownLatest(userId: string, roomIds: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < roomIds.length; i += IN_CHUNK) {
      const rows = await this.ctx.all('SELECT room_id, stream FROM notif_own_latest WHERE user_id = ? AND room_id IN ?', [
        userId,
        roomIds.slice(i, i + IN_CHUNK),
      ]);
      for (const r of rows) out.set(r['room_id'] as string, num(r['stream']));
    }
    return out;
  }

  /** The user's membership changes in each room, oldest first. */
  private async histories(userId: string, roomIds: string[]): Promise<Map<string, { stream: number; membership: string }[]>> {
    const out = new Map<string, { stream: number; membership: string }[]>();
    for (let i = 0; i < roomIds.length; i += IN_CHUNK) {
      const rows = await this.ctx.all('SELECT room_id, stream, membership FROM notif_memberships WHERE user_id = ? AND room_id IN ?', [
        userId,
        roomIds.slice(i, i + IN_CHUNK),
      ]);
      groupHistory(rows, out);
    }
    for (const list of out.values()) list.sort((a, b) => a.stream - b.stream);
    return out;
  }

  private async userBuckets(userId: string): Promise<number[]> {
    const rows = await this.ctx.all('SELECT bucket FROM push_user_buckets WHERE user_id = ?', [userId]);
    return rows.map((r) => num(r['bucket']));
  }

  private async bulkBuckets(roomId: string): Promise<number[]> {
    const rows = await this.ctx.all('SELECT bucket FROM push_bulk_buckets WHERE room_id = ?', [roomId]);
    return rows.map((r) => num(r['bucket']));
  }

  /** Every room's membership changes of the user, oldest first per room. */
  private async userHistory(userId: string): Promise<Map<string, { stream: number; membership: string }[]>> {
    const out = new Map<string, { stream: number; membership: string }[]>();
    groupHistory(await this.ctx.all('SELECT room_id, stream, membership FROM notif_memberships WHERE user_id = ?', [userId]), out);
    return out;
  }
}

function groupHistory(rows: { [k: string]: unknown }[], out: Map<string, { stream: number; membership: string }[]>): void {
  for (const r of rows) {
    const roomId = r['room_id'] as string;
    let list = out.get(roomId);
    if (list === undefined) out.set(roomId, (list = []));
    list.push({ stream: num(r['stream']), membership: r['membership'] as string });
  }
}

/** A bulk row applies to the user unless they sent the event or are in its except list. */
function bulkApplies(row: { [k: string]: unknown }, userId: string): boolean {
  if (row['sender'] === userId) return false;
  const except = row['except_json'] as string;
  // The JSON text of the ID is a cheap pre-check; parsing decides exactly.
  if (!except.includes(JSON.stringify(userId))) return true;
  return !jsonParse<string[]>(except).includes(userId);
}

function toRow(r: { [k: string]: unknown }): ListedRow {
  return {
    roomId: r['room_id'] as string,
    eventId: r['event_id'] as string,
    stream: num(r['stream']),
    actions: jsonParse<NotificationRecord['actions']>(r['actions_json'] as string),
    highlight: r['highlight'] === true,
    ts: num(r['ts']),
    threadId: (r['thread_id'] as string) || null,
  };
}
