// Relations (m.relates_to), threads and bundled aggregations.
//
// Rows are derived by persistEvent and removed when the relating event is redacted, so every
// read below sees only live relations without joining events. Reads are always scoped to the
// room of the target: an event in another room may name any event ID in its m.relates_to.

import type { JsonObject } from '../../protocol/types.js';
import type { Aggregations, RelationQuery, RelationStore, ThreadSummary } from '../chat-types.js';
import type { SqliteContext } from './context.js';

const THREAD = 'm.thread';

export interface PreparedRelation {
  relatesTo: string;
  relType: string;
}

/** The relation an event's content declares, if it is well-formed enough to index. */
export function extractRelation(content: JsonObject): PreparedRelation | null {
  const rel = content['m.relates_to'];
  if (rel === null || typeof rel !== 'object' || Array.isArray(rel)) return null;
  const { rel_type: relType, event_id: relatesTo } = rel;
  if (typeof relType !== 'string' || typeof relatesTo !== 'string') return null;
  return { relatesTo, relType };
}

/** Runs inside persistEvent's savepoint, after the event row was inserted. */
export function writeRelation(
  ctx: SqliteContext,
  ev: { eventId: string; roomId: string; type: string; sender: string },
  rel: PreparedRelation,
  pos: number,
): void {
  ctx
    .stmt(
      `INSERT INTO event_relations (event_id, relates_to, rel_type, event_type, sender, room_id, stream)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(ev.eventId, rel.relatesTo, rel.relType, ev.type, ev.sender, ev.roomId, pos);
  if (rel.relType === THREAD) {
    // Positions of one room are handed out in persist order, but the guard keeps the summary
    // right even if an older position were ever persisted after a newer one.
    ctx
      .stmt(
        `INSERT INTO threads (room_id, root_event_id, latest_stream, latest_event_id, count) VALUES (?, ?, ?, ?, 1)
         ON CONFLICT DO UPDATE SET count = count + 1,
           latest_event_id = CASE WHEN excluded.latest_stream > latest_stream THEN excluded.latest_event_id ELSE latest_event_id END,
           latest_stream = MAX(latest_stream, excluded.latest_stream)`,
      )
      .run(ev.roomId, rel.relatesTo, pos, ev.eventId);
  }
}

/** Runs inside the redaction's savepoint: the redacted event no longer relates to anything. */
export function dropRelation(ctx: SqliteContext, roomId: string, eventId: string): void {
  const row = ctx.stmt('SELECT relates_to, rel_type FROM event_relations WHERE event_id = ? AND room_id = ?').get(eventId, roomId) as
    | { relates_to: string; rel_type: string }
    | undefined;
  if (row === undefined) return;
  ctx.stmt('DELETE FROM event_relations WHERE event_id = ?').run(eventId);
  if (row.rel_type !== THREAD) return;
  // SQLite returns the bare event_id of the row holding MAX(stream).
  const agg = ctx
    .stmt(
      `SELECT event_id, MAX(stream) AS s, COUNT(*) AS n FROM event_relations
       WHERE relates_to = ? AND rel_type = '${THREAD}' AND room_id = ?`,
    )
    .get(row.relates_to, roomId) as { event_id: string | null; s: number | null; n: number };
  if (agg.n === 0 || agg.event_id === null || agg.s === null) {
    ctx.stmt('DELETE FROM threads WHERE room_id = ? AND root_event_id = ?').run(roomId, row.relates_to);
  } else {
    ctx
      .stmt('UPDATE threads SET count = ?, latest_stream = ?, latest_event_id = ? WHERE room_id = ? AND root_event_id = ?')
      .run(agg.n, agg.s, agg.event_id, roomId, row.relates_to);
  }
}

interface ThreadRow {
  root_event_id: string;
  latest_event_id: string;
  latest_stream: number;
  count: number;
}

export class SqliteRelationStore implements RelationStore {
  constructor(private readonly ctx: SqliteContext) {}

  async getRelations(query: RelationQuery): Promise<Array<{ eventId: string; stream: number }>> {
    this.ctx.checkOpen();
    const limit = Math.floor(query.limit);
    if (!(limit > 0)) return [];
    const where = ['relates_to = ?', 'room_id = ?'];
    const params: unknown[] = [query.eventId, query.roomId];
    if (query.relType !== undefined) {
      where.push('rel_type = ?');
      params.push(query.relType);
    }
    if (query.eventType !== undefined) {
      where.push('event_type = ?');
      params.push(query.eventType);
    }
    // `from` is exclusive in both directions, so a page's last stream is the next page's `from`.
    if (query.from !== undefined) {
      where.push(query.dir === 'b' ? 'stream < ?' : 'stream > ?');
      params.push(query.from);
    }
    params.push(limit);
    const rows = this.ctx
      .stmt(
        `SELECT event_id, stream FROM event_relations WHERE ${where.join(' AND ')}
         ORDER BY stream ${query.dir === 'b' ? 'DESC' : 'ASC'} LIMIT ?`,
      )
      .all(...params) as { event_id: string; stream: number }[];
    return rows.map((r) => ({ eventId: r.event_id, stream: r.stream }));
  }

  async getThreads(roomId: string, opts: { participant?: string; before?: number; limit: number }): Promise<ThreadSummary[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const before = opts.before ?? Number.MAX_SAFE_INTEGER;
    let rows: ThreadRow[];
    if (opts.participant === undefined) {
      rows = this.ctx
        .stmt(
          `SELECT root_event_id, latest_event_id, latest_stream, count FROM threads
           WHERE room_id = ? AND latest_stream < ? ORDER BY latest_stream DESC LIMIT ?`,
        )
        .all(roomId, before, limit) as ThreadRow[];
    } else {
      // Walks the room's threads newest first and stops after `limit` matches; each check is a
      // key seek (reply by the user, or the root sent by the user).
      rows = this.ctx
        .stmt(
          `SELECT t.root_event_id, t.latest_event_id, t.latest_stream, t.count FROM threads t
           WHERE t.room_id = @room AND t.latest_stream < @before
             AND (EXISTS (SELECT 1 FROM event_relations r
                          WHERE r.relates_to = t.root_event_id AND r.rel_type = '${THREAD}'
                            AND r.room_id = t.room_id AND r.sender = @user)
                  OR EXISTS (SELECT 1 FROM events e
                             WHERE e.event_id = t.root_event_id AND e.room_id = t.room_id AND e.sender = @user))
           ORDER BY t.latest_stream DESC LIMIT @limit`,
        )
        .all({ room: roomId, before, user: opts.participant, limit }) as ThreadRow[];
    }
    return rows.map((r) => this.summary(roomId, r, this.rootSender(roomId, r.root_event_id)));
  }

  async getAggregations(eventIds: string[]): Promise<Map<string, Aggregations>> {
    this.ctx.checkOpen();
    const out = new Map<string, Aggregations>();
    const target = this.ctx.stmt('SELECT room_id, type, sender FROM events WHERE event_id = ?');
    const thread = this.ctx.stmt(
      'SELECT root_event_id, latest_event_id, latest_stream, count FROM threads WHERE room_id = ? AND root_event_id = ?',
    );
    // Walks the target's edits newest first; the sender/type check usually passes on the first.
    const replace = this.ctx.stmt(
      `SELECT event_id FROM event_relations
       WHERE relates_to = ? AND rel_type = 'm.replace' AND room_id = ? AND sender = ? AND event_type = ?
       ORDER BY stream DESC LIMIT 1`,
    );
    const references = this.ctx.stmt(
      `SELECT event_id FROM event_relations WHERE relates_to = ? AND rel_type = 'm.reference' AND room_id = ? ORDER BY stream`,
    );
    for (const eventId of new Set(eventIds)) {
      const ev = target.get(eventId) as { room_id: string; type: string; sender: string } | undefined;
      if (ev === undefined) continue;
      const agg: Aggregations = { references: [] };
      const t = thread.get(ev.room_id, eventId) as ThreadRow | undefined;
      if (t !== undefined) agg.thread = this.summary(ev.room_id, t, ev.sender);
      const edit = replace.get(eventId, ev.room_id, ev.sender, ev.type) as { event_id: string } | undefined;
      if (edit !== undefined) agg.replaceEventId = edit.event_id;
      agg.references = (references.all(eventId, ev.room_id) as { event_id: string }[]).map((r) => r.event_id);
      if (agg.thread !== undefined || agg.replaceEventId !== undefined || agg.references.length > 0) out.set(eventId, agg);
    }
    return out;
  }

  private rootSender(roomId: string, rootEventId: string): string | null {
    const row = this.ctx.stmt('SELECT sender FROM events WHERE event_id = ? AND room_id = ?').get(rootEventId, roomId) as
      | { sender: string }
      | undefined;
    return row ? row.sender : null;
  }

  /** `rootSender` is null when the root is not stored (e.g. not yet backfilled). */
  private summary(roomId: string, t: ThreadRow, rootSender: string | null): ThreadSummary {
    const senders = this.ctx
      .stmt(`SELECT DISTINCT sender FROM event_relations WHERE relates_to = ? AND rel_type = '${THREAD}' AND room_id = ?`)
      .all(t.root_event_id, roomId) as { sender: string }[];
    const participants = new Set(senders.map((r) => r.sender));
    if (rootSender !== null) participants.add(rootSender);
    return {
      rootEventId: t.root_event_id,
      latestEventId: t.latest_event_id,
      count: t.count,
      participants: [...participants].sort(),
      latestStream: t.latest_stream,
    };
  }
}
