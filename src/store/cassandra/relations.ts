// Relations (m.relates_to), threads and bundled aggregations. Same results as
// ../sqlite/relations.ts.
//
// - The hook writes each accepted relating event's rows in the event's logged batch: relations
//   (per target, by stream), relations_by_type (per target, by type then stream: thread replies,
//   edits and references are slices), relation_of_event (where those rows are, for a redaction).
//   A redaction deletes the three rows in the redaction's batch, so reads never see redacted
//   relations and never join events.
// - threads holds each thread's latest reply, written USING TIMESTAMP <position>: the highest
//   position wins whatever order the writes land in, and a redaction re-points it (or deletes it)
//   at the redaction's position, above every reply it has seen. thread_activity lists every
//   reply by position (hour buckets, thread_buckets lists them): getThreads walks it newest
//   first and keeps a row only while it is its thread's latest in `threads`, so a page costs
//   the replies since its oldest thread's activity, not a read of every thread of the room.
//   Counts, participants and the latest reply come from the thread's relations_by_type slice.
// - Reads are scoped to the target's room: an event in another room may name any event ID.
// - Root senders and targets' type/sender come from RoomStore.getEvents (the rooms module).

import type { Aggregations, PersistEventInput, RelationQuery, RelationStore, ThreadSummary } from '../types.js';
import { extractRelation } from '../sqlite/relations.js';
import { num, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import { mapLimit, roomBucket, type DerivedDeps } from './derived-common.js';

const THREAD = 'm.thread';
const PARALLEL = 16;
/** Activity rows read per round trip while listing threads. */
const PAGE = 100;

export class CassandraRelationStore implements RelationStore {
  constructor(
    private readonly ctx: CassandraContext,
    private readonly deps: DerivedDeps,
  ) {}

  readonly hook: EventWriteHook = {
    forEvent: (input, pos) => this.statementsFor(input, pos),
    forRedaction: (roomId, targetEventId, pos) => this.redactionStatements(roomId, targetEventId, pos),
  };

  private statementsFor(input: PersistEventInput, pos: number): CqlStatement[] {
    const rel = extractRelation(input.pdu.content);
    if (rel === null) return [];
    const roomId = input.pdu.room_id ?? '';
    const { type, sender } = input.pdu;
    const out: CqlStatement[] = [
      {
        query: `INSERT INTO relations (room_id, relates_to, stream, event_id, rel_type, event_type, sender) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        params: [roomId, rel.relatesTo, pos, input.eventId, rel.relType, type, sender],
      },
      {
        query: `INSERT INTO relations_by_type (room_id, relates_to, rel_type, stream, event_id, event_type, sender) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        params: [roomId, rel.relatesTo, rel.relType, pos, input.eventId, type, sender],
      },
      {
        query: `INSERT INTO relation_of_event (event_id, room_id, relates_to, rel_type, stream) VALUES (?, ?, ?, ?, ?)`,
        params: [input.eventId, roomId, rel.relatesTo, rel.relType, pos],
      },
    ];
    if (rel.relType === THREAD) {
      const bucket = roomBucket(pos);
      out.push(
        {
          query: `INSERT INTO threads (room_id, root_event_id, latest_stream, latest_event_id) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`,
          params: [roomId, rel.relatesTo, pos, input.eventId, pos],
        },
        {
          query: 'INSERT INTO thread_activity (room_id, bucket, stream, root_event_id) VALUES (?, ?, ?, ?)',
          params: [roomId, bucket, pos, rel.relatesTo],
        },
        { query: 'INSERT INTO thread_buckets (room_id, bucket) VALUES (?, ?)', params: [roomId, bucket] },
      );
    }
    return out;
  }

  private async redactionStatements(roomId: string, targetEventId: string, pos: number): Promise<CqlStatement[]> {
    const row = (
      await this.ctx.execute('SELECT room_id, relates_to, rel_type, stream FROM relation_of_event WHERE event_id = ?', [targetEventId])
    ).first();
    // Scoped to the room: a redaction never reaches into another room's events.
    if (row === null || row['room_id'] !== roomId) return [];
    const relatesTo = row['relates_to'] as string;
    const relType = row['rel_type'] as string;
    const stream = num(row['stream']);
    const out: CqlStatement[] = [
      { query: 'DELETE FROM relations WHERE room_id = ? AND relates_to = ? AND stream = ?', params: [roomId, relatesTo, stream] },
      {
        query: 'DELETE FROM relations_by_type WHERE room_id = ? AND relates_to = ? AND rel_type = ? AND stream = ?',
        params: [roomId, relatesTo, relType, stream],
      },
      { query: 'DELETE FROM relation_of_event WHERE event_id = ?', params: [targetEventId] },
    ];
    if (relType === THREAD) {
      // The thread's latest reply once the redacted one is gone (the next older one, if any).
      const latest = (
        await this.ctx.execute(
          `SELECT stream, event_id FROM relations_by_type WHERE room_id = ? AND relates_to = ? AND rel_type = ?
           ORDER BY rel_type DESC, stream DESC LIMIT 2`,
          [roomId, relatesTo, THREAD],
        )
      ).rows.find((r) => r['event_id'] !== targetEventId);
      out.push(
        latest === undefined
          ? { query: 'DELETE FROM threads USING TIMESTAMP ? WHERE room_id = ? AND root_event_id = ?', params: [pos, roomId, relatesTo] }
          : {
              query: 'UPDATE threads USING TIMESTAMP ? SET latest_stream = ?, latest_event_id = ? WHERE room_id = ? AND root_event_id = ?',
              params: [pos, num(latest['stream']), latest['event_id'], roomId, relatesTo],
            },
      );
    }
    return out;
  }

  async getRelations(query: RelationQuery): Promise<Array<{ eventId: string; stream: number }>> {
    this.ctx.checkOpen();
    const limit = Math.floor(query.limit);
    if (!(limit > 0)) return [];
    const where = ['room_id = ?', 'relates_to = ?'];
    const params: unknown[] = [query.roomId, query.eventId];
    const byType = query.relType !== undefined;
    if (byType) {
      where.push('rel_type = ?');
      params.push(query.relType);
    }
    // `from` is exclusive in both directions, so a page's last stream is the next page's `from`.
    if (query.from !== undefined) {
      where.push(query.dir === 'b' ? 'stream < ?' : 'stream > ?');
      params.push(query.from);
    }
    // Filtering on event_type stays inside the one partition (the target's relations).
    let filtering = '';
    if (query.eventType !== undefined) {
      where.push('event_type = ?');
      params.push(query.eventType);
      filtering = ' ALLOW FILTERING';
    }
    const dir = query.dir === 'b' ? 'DESC' : 'ASC';
    const order = byType ? `rel_type ${dir}, stream ${dir}` : `stream ${dir}`;
    params.push(limit);
    const rows = await this.ctx.execute(
      `SELECT event_id, stream FROM ${byType ? 'relations_by_type' : 'relations'} WHERE ${where.join(' AND ')}
       ORDER BY ${order} LIMIT ?${filtering}`,
      params,
    );
    return rows.rows.map((r) => ({ eventId: r['event_id'] as string, stream: num(r['stream']) }));
  }

  async getThreads(roomId: string, opts: { participant?: string; before?: number; limit: number }): Promise<ThreadSummary[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(opts.limit);
    if (!(limit > 0)) return [];
    const before = opts.before ?? Number.MAX_SAFE_INTEGER;
    const out: ThreadSummary[] = [];
    const seen = new Set<string>();
    const buckets = (await this.ctx.all('SELECT bucket FROM thread_buckets WHERE room_id = ?', [roomId])).map((r) => num(r['bucket']));
    for (const bucket of buckets) {
      if (bucket > roomBucket(before)) continue;
      let below = before;
      for (;;) {
        const page = await this.ctx.execute(
          'SELECT stream, root_event_id FROM thread_activity WHERE room_id = ? AND bucket = ? AND stream < ? LIMIT ?',
          [roomId, bucket, below, PAGE],
        );
        const roots = [...new Set(page.rows.map((r) => r['root_event_id'] as string).filter((id) => !seen.has(id)))];
        const latest = new Map<string, number>();
        if (roots.length > 0) {
          const rows = await this.ctx.execute('SELECT root_event_id, latest_stream FROM threads WHERE room_id = ? AND root_event_id IN ?', [
            roomId,
            roots,
          ]);
          for (const r of rows.rows) latest.set(r['root_event_id'] as string, num(r['latest_stream']));
        }
        // A row that is not its thread's latest is an older reply (or a redacted one): the
        // thread is listed at its latest reply's row.
        const live: string[] = [];
        for (const r of page.rows) {
          const root = r['root_event_id'] as string;
          if (seen.has(root) || latest.get(root) !== num(r['stream'])) continue;
          seen.add(root);
          live.push(root);
        }
        if (live.length > 0) {
          const events = await this.deps.rooms().getEvents(live);
          const summaries = await mapLimit(live, PARALLEL, (root) => {
            const ev = events.get(root);
            return this.summary(roomId, root, ev !== undefined && ev.roomId === roomId ? ev.pdu.sender : null);
          });
          for (const s of summaries) {
            if (s === null || (opts.participant !== undefined && !s.participants.includes(opts.participant))) continue;
            out.push(s);
            if (out.length >= limit) return out;
          }
        }
        if (page.rowLength < PAGE) break;
        below = num(page.rows[page.rowLength - 1]!['stream']);
      }
    }
    return out;
  }

  async getAggregations(eventIds: string[]): Promise<Map<string, Aggregations>> {
    this.ctx.checkOpen();
    const out = new Map<string, Aggregations>();
    const ids = [...new Set(eventIds)];
    if (ids.length === 0) return out;
    const events = await this.deps.rooms().getEvents(ids);
    const found = await mapLimit(ids, PARALLEL, async (eventId): Promise<Aggregations | null> => {
      const ev = events.get(eventId);
      if (ev === undefined) return null;
      const [thread, edit, refs] = await Promise.all([
        this.summary(ev.roomId, eventId, ev.pdu.sender),
        // Walks the target's edits newest first; the sender/type check usually passes on the first.
        this.ctx.execute(
          `SELECT event_id FROM relations_by_type
           WHERE room_id = ? AND relates_to = ? AND rel_type = 'm.replace' AND sender = ? AND event_type = ?
           ORDER BY rel_type DESC, stream DESC LIMIT 1 ALLOW FILTERING`,
          [ev.roomId, eventId, ev.pdu.sender, ev.pdu.type],
        ),
        this.ctx.all(
          `SELECT event_id FROM relations_by_type WHERE room_id = ? AND relates_to = ? AND rel_type = 'm.reference'
           ORDER BY rel_type ASC, stream ASC`,
          [ev.roomId, eventId],
        ),
      ]);
      const agg: Aggregations = { references: refs.map((r) => r['event_id'] as string) };
      if (thread !== null) agg.thread = thread;
      const e = edit.first();
      if (e !== null) agg.replaceEventId = e['event_id'] as string;
      return agg.thread !== undefined || agg.replaceEventId !== undefined || agg.references.length > 0 ? agg : null;
    });
    ids.forEach((id, i) => {
      const agg = found[i];
      if (agg) out.set(id, agg);
    });
    return out;
  }

  /** From the thread's replies; null when it has none. `rootSender` null: root not stored. */
  private async summary(roomId: string, rootEventId: string, rootSender: string | null): Promise<ThreadSummary | null> {
    const rows = await this.ctx.all(
      `SELECT stream, event_id, sender FROM relations_by_type WHERE room_id = ? AND relates_to = ? AND rel_type = ?`,
      [roomId, rootEventId, THREAD],
    );
    if (rows.length === 0) return null;
    let latest = rows[0]!;
    const participants = new Set<string>();
    for (const r of rows) {
      if (num(r['stream']) > num(latest['stream'])) latest = r;
      participants.add(r['sender'] as string);
    }
    if (rootSender !== null) participants.add(rootSender);
    return {
      rootEventId,
      latestEventId: latest['event_id'] as string,
      count: rows.length,
      participants: [...participants].sort(),
      latestStream: num(latest['stream']),
    };
  }
}
