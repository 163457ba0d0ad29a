// SearchStore on the FTS5 table event_search (migration 0009), whose rowid is events.stream.
// Reads only: writeEvent (events.ts) adds an event's row and triggers on `events` drop it on
// redaction or deletion, each inside the event's own transaction.

import type { SearchHit, SearchQuery, SearchStore } from '../types.js';
import type { SqliteContext } from './context.js';
import { EVENT_COLUMNS, toStoredEvent, typeCondition, type EventRow } from './events.js';

/** Each word as a quoted FTS5 prefix term: no user text is ever read as FTS5 query syntax. */
function matchExpression(words: string[]): string | null {
  const terms = words.filter((w) => w.length > 0).map((w) => `"${w.replace(/"/g, '""')}"*`);
  return terms.length > 0 ? terms.join(' AND ') : null;
}

const QUALIFIED = EVENT_COLUMNS.split(', ')
  .map((c) => `e.${c}`)
  .join(', ');

export class SqliteSearchStore implements SearchStore {
  constructor(private readonly ctx: SqliteContext) {}

  async searchEvents(q: SearchQuery): Promise<SearchHit[]> {
    this.ctx.checkOpen();
    const limit = Math.floor(q.limit);
    if (!(limit > 0)) return [];
    const built = this.where(q, true);
    if (!built) return [];
    const { where, params } = built;
    // s.rowid (= e.stream) lets FTS5 walk its matches newest first and stop at the limit.
    const order = q.order === 'rank' ? 's.rank, s.rowid DESC' : 's.rowid DESC';
    params.push(limit, q.order === 'rank' ? Math.max(0, Math.floor(q.offset ?? 0)) : 0);
    const rows = this.ctx
      .stmt(
        `SELECT ${QUALIFIED}, s.rank AS score FROM event_search s JOIN events e ON e.stream = s.rowid
         WHERE ${where} ORDER BY ${order} LIMIT ? OFFSET ?`,
      )
      .all(...params) as Array<EventRow & { score: number }>;
    // Zero when negated would print as -0 in JSON-unfriendly ways; keep it a plain number.
    return rows.map((r) => ({ event: toStoredEvent(r), rank: r.score === 0 ? 0 : -r.score }));
  }

  async countEvents(q: SearchQuery): Promise<number> {
    this.ctx.checkOpen();
    const built = this.where(q, false);
    if (!built) return 0;
    const row = this.ctx
      .stmt(`SELECT COUNT(*) AS n FROM event_search s JOIN events e ON e.stream = s.rowid WHERE ${built.where}`)
      .get(...built.params) as { n: number };
    return row.n;
  }

  private where(q: SearchQuery, paged: boolean): { where: string; params: unknown[] } | null {
    const match = matchExpression(q.words);
    if (match === null || q.roomIds.length === 0 || q.keys.length === 0) return null;
    const params: unknown[] = [match];
    // Accepted events only, as in timelines: outliers, soft-failed and rejected events are in none.
    const where = ['event_search MATCH ?', 'e.outlier = 0', 'e.soft_failed = 0', 'e.rejected IS NULL'];
    where.push(`s.room_id IN (${q.roomIds.map(() => '?').join(', ')})`);
    params.push(...q.roomIds);
    where.push(`s.key IN (${q.keys.map(() => '?').join(', ')})`);
    params.push(...q.keys);
    if (q.types !== undefined) where.push(typeCondition(q.types, params));
    if (q.notTypes !== undefined && q.notTypes.length > 0) where.push(`NOT ${typeCondition(q.notTypes, params)}`);
    if (q.senders !== undefined) {
      if (q.senders.length === 0) return null;
      where.push(`e.sender IN (${q.senders.map(() => '?').join(', ')})`);
      params.push(...q.senders);
    }
    if (q.notSenders !== undefined && q.notSenders.length > 0) {
      where.push(`e.sender NOT IN (${q.notSenders.map(() => '?').join(', ')})`);
      params.push(...q.notSenders);
    }
    if (paged && q.order === 'recent' && q.before !== undefined) {
      where.push('s.rowid < ?');
      params.push(q.before);
    }
    return { where: where.join(' AND '), params };
  }
}
