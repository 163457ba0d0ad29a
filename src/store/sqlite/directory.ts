// User directory search and content reports.

import type { DirectoryStore, DirectoryUser, ReportRecord } from '../chat-types.js';
import type { SqliteContext } from './context.js';
import type { Db } from './db.js';

/**
 * SQLite's lower() and LIKE fold ASCII only; display names are often not ASCII. The function is
 * used in queries only (never in the schema), so the file stays readable by plain sqlite3.
 * Whitespace runs become one space, so "a word of the display name" is whatever follows a space.
 */
export function registerDirectoryFunctions(db: Db): void {
  db.function('hearth_fold', { deterministic: true }, (s: unknown) =>
    typeof s === 'string' ? s.toLowerCase().replace(/\s+/g, ' ').trim() : null,
  );
}

function fold(s: string): string {
  return s.toLowerCase().replace(/\s+/g, ' ').trim();
}

/**
 * Candidates are the spec's minimum set (C-S "User directory"): the other joined members of the
 * searcher's joined rooms, and the joined members of rooms whose current join rule is `public` or
 * whose current history visibility is `world_readable` while one of our users is joined to them
 * (a room this server has left is no longer kept current; Synapse drops its users from the
 * directory too). Publishing a room in the room directory
 * does not count: an invite-only room can be listed, and its members are not public. The searcher
 * is a candidate only through a public room, since sharing a room means sharing it with someone
 * else (Synapse reads it the same way). Rooms come from the rooms table with one primary-key lookup of
 * each room's join rule and history visibility, which bounds the work by the room count and those
 * rooms' sizes instead of the user table. Users without a local profile row (remote users) are
 * known by the display name and avatar of their latest join event among those rooms (Synapse
 * reads remote profiles from room state the same way).
 *
 * Each word must match a prefix of the user ID, of the localpart (the ID after '@'), or of a
 * display-name word (' ' || name contains ' ' || word). substr/instr compare exactly, so words
 * need no escaping as LIKE/GLOB patterns would.
 *
 * Ranking: display name equal to the term, or ID/localpart equal to it, first; then display
 * names starting with the whole term; then IDs starting with the first word; then the rest.
 */
function searchSql(words: number): string {
  const conds: string[] = [];
  for (let i = 0; i < words; i++) {
    conds.push(`(substr(c.uid, 1, length(@w${i})) = @w${i} OR substr(c.uid, 2, length(@w${i})) = @w${i}
                 OR instr(' ' || c.name, ' ' || @w${i}) > 0)`);
  }
  return `
    WITH open_rooms AS (
      SELECT r.room_id FROM rooms r
      JOIN current_state cs ON cs.room_id = r.room_id AND cs.type = 'm.room.join_rules' AND cs.state_key = ''
      JOIN events e ON e.event_id = cs.event_id
      WHERE json_extract(e.pdu_json, '$.content.join_rule') = 'public'
      UNION
      SELECT r.room_id FROM rooms r
      JOIN current_state cs ON cs.room_id = r.room_id AND cs.type = 'm.room.history_visibility' AND cs.state_key = ''
      JOIN events e ON e.event_id = cs.event_id
      WHERE json_extract(e.pdu_json, '$.content.history_visibility') = 'world_readable'
    ),
    -- ... while one of our users (the ones with a users row) is joined: a room we have left is not kept current.
    public_rooms AS (
      SELECT o.room_id FROM open_rooms o
      WHERE EXISTS (SELECT 1 FROM memberships lm JOIN users lu ON lu.user_id = lm.user_id WHERE lm.room_id = o.room_id AND lm.membership = 'join')
    ),
    members AS (
      SELECT m.user_id, m.event_id, m.stream FROM memberships s
      JOIN memberships m ON m.room_id = s.room_id AND m.membership = 'join' AND m.user_id <> @searcher
      WHERE s.user_id = @searcher AND s.membership = 'join'
      UNION
      SELECT m.user_id, m.event_id, m.stream FROM public_rooms p JOIN memberships m ON m.room_id = p.room_id AND m.membership = 'join'
    ),
    -- One row per user: their latest join (SQLite takes the bare event_id from the MAX row).
    latest AS (SELECT user_id, event_id, MAX(stream) AS stream FROM members GROUP BY user_id),
    p AS (
      SELECT l.user_id,
        CASE WHEN u.user_id IS NOT NULL THEN u.displayname
             WHEN json_type(e.pdu_json, '$.content.displayname') = 'text' THEN json_extract(e.pdu_json, '$.content.displayname') END AS displayname,
        CASE WHEN u.user_id IS NOT NULL THEN u.avatar_url
             WHEN json_type(e.pdu_json, '$.content.avatar_url') = 'text' THEN json_extract(e.pdu_json, '$.content.avatar_url') END AS avatar_url
      FROM latest l LEFT JOIN users u ON u.user_id = l.user_id LEFT JOIN events e ON e.event_id = l.event_id
      WHERE COALESCE(u.deactivated, 0) = 0
    ),
    c AS (
      SELECT p.user_id, p.displayname, p.avatar_url, hearth_fold(p.user_id) AS uid, hearth_fold(p.displayname) AS name FROM p
    )
    SELECT c.user_id, c.displayname, c.avatar_url FROM c
    WHERE ${conds.join(' AND ')}
    ORDER BY
      CASE
        WHEN c.name = @term OR c.uid = @term OR substr(c.uid, 2) = @term THEN 0
        WHEN substr(c.name, 1, length(@term)) = @term THEN 1
        WHEN substr(c.uid, 1, length(@w0)) = @w0 OR substr(c.uid, 2, length(@w0)) = @w0 THEN 2
        ELSE 3
      END,
      COALESCE(c.name, substr(c.uid, 2)), c.user_id
    LIMIT @limit`;
}

interface ReportRow {
  room_id: string;
  event_id: string | null;
  reporter: string;
  reason: string | null;
  score: number | null;
  ts: number;
}

export class SqliteDirectoryStore implements DirectoryStore {
  constructor(private readonly ctx: SqliteContext) {}

  async searchUsers(searcherId: string, term: string, limit: number): Promise<DirectoryUser[]> {
    this.ctx.checkOpen();
    const folded = fold(term);
    const words = folded === '' ? [] : folded.split(' ');
    const max = Math.floor(limit);
    // No words would match everyone visible; a directory search for nothing finds nothing.
    if (words.length === 0 || !(max >= 0)) return [];
    // The statement shape depends only on the word count; capping it keeps the statement cache
    // small and stops a pathological term from building a huge query. Words past the cap are
    // ignored (the result is then a superset), which no real display name search reaches.
    const used = words.slice(0, 8);
    const params: Record<string, unknown> = { searcher: searcherId, term: folded, limit: max + 1 };
    used.forEach((w, i) => (params[`w${i}`] = w));
    const rows = this.ctx.stmt(searchSql(used.length)).all(params) as {
      user_id: string;
      displayname: string | null;
      avatar_url: string | null;
    }[];
    return rows.map((r) => ({ userId: r.user_id, displayname: r.displayname, avatarUrl: r.avatar_url }));
  }

  async addReport(report: ReportRecord): Promise<void> {
    this.ctx.checkOpen();
    const r = { ...report };
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt('INSERT INTO event_reports (room_id, event_id, reporter, reason, score, ts) VALUES (?, ?, ?, ?, ?, ?)')
        .run(r.roomId, r.eventId, r.reporter, r.reason, r.score, r.ts);
    });
  }

  async listReports(limit: number): Promise<ReportRecord[]> {
    this.ctx.checkOpen();
    const max = Math.floor(limit);
    if (!(max > 0)) return [];
    // Newest first by insertion (the rowid), which needs no sort; ts is the caller's clock.
    const rows = this.ctx
      .stmt('SELECT room_id, event_id, reporter, reason, score, ts FROM event_reports ORDER BY id DESC LIMIT ?')
      .all(max) as ReportRow[];
    return rows.map((r) => ({ roomId: r.room_id, eventId: r.event_id, reporter: r.reporter, reason: r.reason, score: r.score, ts: r.ts }));
  }
}
