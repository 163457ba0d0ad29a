// User directory search and content reports on Cassandra.
//
// - Search has no tables of its own: candidates are the other joined members of the searcher's
//   joined rooms and the joined members of rooms whose current join rule is public or history
//   visibility world_readable and that one of our users is joined to (the contract,
//   src/store/chat-types.ts), read through the
//   RoomStore's own methods (so the directory follows memberships and state exactly as the room
//   module stores them), then their `users` rows (users without one, remote users, by the
//   display name and avatar of their latest join among those rooms). Matching and ranking are SQLite's
//   (src/store/sqlite/directory.ts), done here in code.
// - Finding the open rooms reads two state histories per room this server has: O(rooms) per
//   search, unlike SQLite's one indexed query. Good enough for the sizes this backend is tested
//   at; a table of open rooms kept by the room module's state writes would remove it.
// - Reports: partitions per month of the report (UTC), newest first by a time UUID;
//   `report_buckets` lists the months, so a listing reads back month by month.

import cassandra from 'cassandra-driver';
import type { DirectoryStore, DirectoryUser, ReportRecord, RoomStore } from '../types.js';
import { textOrNull, storedText } from './accounts.js';
import { num, type CassandraContext } from './context.js';
import { mapLimited } from './e2ee-common.js';

/** Lower case, whitespace runs as one space, trimmed: "a word of a name" follows a space. */
function fold(s: string): string {
  return s.toLowerCase().replace(/\s+/g, ' ').trim();
}

interface Candidate {
  userId: string;
  displayname: string | null;
  avatarUrl: string | null;
  uid: string;
  name: string | null;
}

function matches(c: Candidate, w: string): boolean {
  return c.uid.startsWith(w) || c.uid.slice(1).startsWith(w) || (c.name !== null && ` ${c.name}`.includes(` ${w}`));
}

/** Exact name/ID first, then names starting with the term, then IDs starting with the first word. */
function rank(c: Candidate, term: string, w0: string): number {
  if (c.name === term || c.uid === term || c.uid.slice(1) === term) return 0;
  if (c.name !== null && c.name.startsWith(term)) return 1;
  if (c.uid.startsWith(w0) || c.uid.slice(1).startsWith(w0)) return 2;
  return 3;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The UTC month of `ms` as yyyymm. */
function monthOf(ms: number): number {
  const d = new Date(ms);
  return d.getUTCFullYear() * 100 + d.getUTCMonth() + 1;
}

export class CassandraDirectoryStore implements DirectoryStore {
  constructor(
    private readonly ctx: CassandraContext,
    private readonly rooms: () => RoomStore,
    /** Every room this server has (the admin module's listing). */
    private readonly allRooms: () => Promise<string[]>,
  ) {}

  /** Rooms whose current join rule is public or history visibility world_readable. */
  private async openRooms(): Promise<string[]> {
    const rooms = this.rooms();
    const ids = await this.allRooms();
    const current = async (roomId: string, type: string): Promise<string | null> => {
      const h = await rooms.getStateHistory(roomId, type, '');
      return h.length > 0 ? h[h.length - 1]!.eventId : null;
    };
    const heads = await mapLimited(ids, 16, async (roomId) => ({
      roomId,
      joinRule: await current(roomId, 'm.room.join_rules'),
      visibility: await current(roomId, 'm.room.history_visibility'),
    }));
    const events = await rooms.getEvents(heads.flatMap((h) => [h.joinRule, h.visibility].filter((x): x is string => x !== null)));
    const field = (id: string | null, key: string) => (id === null ? undefined : events.get(id)?.pdu.content[key]);
    return heads
      .filter((h) => field(h.joinRule, 'join_rule') === 'public' || field(h.visibility, 'history_visibility') === 'world_readable')
      .map((h) => h.roomId);
  }

  async searchUsers(searcherId: string, term: string, limit: number): Promise<DirectoryUser[]> {
    this.ctx.checkOpen();
    const folded = fold(term);
    const max = Math.floor(limit);
    // No words would match everyone visible; a directory search for nothing finds nothing.
    if (folded === '' || !(max >= 0)) return [];
    // Words past eight are ignored, as on SQLite (the result is then a superset).
    const words = folded.split(' ').slice(0, 8);
    const w0 = words[0]!;

    const rooms = this.rooms();
    const [shared, open] = await Promise.all([rooms.getRoomsForUser(searcherId, ['join']).then((l) => l.map((m) => m.roomId)), this.openRooms()]);
    const sharedMembers = await mapLimited(shared, 16, (r) => rooms.getRoomMembers(r, ['join']));
    const openMembers = await mapLimited(open, 16, (r) => rooms.getRoomMembers(r, ['join']));
    // Local users are those with a `users` row; remote users have none.
    const byId = new Map<string, cassandra.types.Row>();
    const everyone = [...new Set([...sharedMembers, ...openMembers].flatMap((l) => l.map((m) => m.userId)))];
    for (let i = 0; i < everyone.length; i += 50) {
      const chunk = everyone.slice(i, i + 50);
      const rows = await this.ctx.execute(
        `SELECT user_id, displayname, avatar_url, deactivated FROM users WHERE user_id IN (${chunk.map(() => '?').join(', ')})`,
        chunk,
      );
      for (const r of rows.rows) byId.set(r['user_id'] as string, r);
    }
    // Each candidate's latest join among those rooms: a remote user's profile comes from it.
    const latestJoin = new Map<string, { eventId: string; stream: number }>();
    const note = (m: { userId: string; eventId: string; stream: number }) => {
      const had = latestJoin.get(m.userId);
      if (!had || m.stream > had.stream) latestJoin.set(m.userId, { eventId: m.eventId, stream: m.stream });
    };
    // Sharing a room means sharing it with someone else: the searcher only through an open room.
    for (const p of sharedMembers) for (const m of p) if (m.userId !== searcherId) note(m);
    // An open room counts while one of our users is joined to it: once the last one leaves, what
    // we hold of it is no longer kept current.
    for (const p of openMembers) if (p.some((m) => byId.has(m.userId))) for (const m of p) note(m);

    const candidates: Candidate[] = [];
    const ids = [...latestJoin.keys()];
    // Users without a local profile row (remote users): the profile of their latest join.
    const joins = await rooms.getEvents(ids.filter((u) => !byId.has(u)).map((u) => latestJoin.get(u)!.eventId));
    const fromJoin = (userId: string, key: string): string | null => {
      const v = joins.get(latestJoin.get(userId)!.eventId)?.pdu.content[key];
      return typeof v === 'string' ? v : null;
    };
    for (const userId of ids) {
      const row = byId.get(userId);
      if (row?.['deactivated'] === true) continue;
      const displayname = row ? textOrNull(row['displayname']) : fromJoin(userId, 'displayname');
      candidates.push({
        userId,
        displayname,
        avatarUrl: row ? textOrNull(row['avatar_url']) : fromJoin(userId, 'avatar_url'),
        uid: fold(userId),
        name: displayname === null ? null : fold(displayname),
      });
    }

    const found = candidates.filter((c) => words.every((w) => matches(c, w)));
    const keyed = found.map((c) => ({ c, r: rank(c, folded, w0), k: c.name ?? c.uid.slice(1) }));
    keyed.sort((a, b) => a.r - b.r || cmp(a.k, b.k) || cmp(a.c.userId, b.c.userId));
    return keyed.slice(0, max + 1).map(({ c }) => ({ userId: c.userId, displayname: c.displayname, avatarUrl: c.avatarUrl }));
  }

  async addReport(report: ReportRecord): Promise<void> {
    this.ctx.checkOpen();
    const r = { ...report };
    const bucket = monthOf(Date.now());
    await this.ctx.batch([
      {
        query: `INSERT INTO event_reports (bucket, id, room_id, event_id, reporter, reason, has_reason, score, has_score, ts)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [
          bucket,
          cassandra.types.TimeUuid.now(),
          r.roomId,
          storedText(r.eventId),
          r.reporter,
          r.reason ?? '',
          r.reason !== null,
          r.score ?? 0,
          r.score !== null,
          r.ts,
        ],
      },
      { query: `INSERT INTO report_buckets (k, bucket) VALUES ('all', ?)`, params: [bucket] },
    ]);
  }

  async listReports(limit: number): Promise<ReportRecord[]> {
    this.ctx.checkOpen();
    const max = Math.floor(limit);
    if (!(max > 0)) return [];
    const out: ReportRecord[] = [];
    const buckets = await this.ctx.all(`SELECT bucket FROM report_buckets WHERE k = 'all'`);
    for (const b of buckets) {
      const rows = await this.ctx.execute(
        'SELECT room_id, event_id, reporter, reason, has_reason, score, has_score, ts FROM event_reports WHERE bucket = ? LIMIT ?',
        [b['bucket'], max - out.length],
      );
      for (const row of rows.rows) {
        out.push({
          roomId: row['room_id'] as string,
          eventId: textOrNull(row['event_id']),
          reporter: row['reporter'] as string,
          reason: row['has_reason'] === true ? ((row['reason'] as string | null) ?? '') : null,
          score: row['has_score'] === true ? (row['score'] as number) : null,
          ts: num(row['ts']),
        });
      }
      if (out.length >= max) break;
    }
    return out;
  }
}
