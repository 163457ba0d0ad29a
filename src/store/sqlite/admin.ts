// AdminStore: account and room listings, admin-only flags, and room deletion / history purge.
// Deletion finds every table with a room_id column at run time, so tables added by later
// migrations are covered without editing this file; the search index follows through the
// triggers on `events` (migration 0009).

import type { AdminStore, RoomListEntry, UserListQuery, UserRecord } from '../types.js';
import type { SqliteContext } from './context.js';
import { toUser, type UserRow } from './accounts.js';

/** LIKE pattern for a substring, with the user's % and _ taken literally. */
function likeSubstring(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Message events of a purge that depend on the deleted events and mean nothing without them. */
const PURGE_DEPENDENTS = [
  'DELETE FROM event_relations WHERE room_id = ? AND event_id NOT IN (SELECT event_id FROM events WHERE room_id = ?)',
  'DELETE FROM push_actions WHERE room_id = ? AND event_id NOT IN (SELECT event_id FROM events WHERE room_id = ?)',
  'DELETE FROM push_bulk WHERE room_id = ? AND event_id NOT IN (SELECT event_id FROM events WHERE room_id = ?)',
  'DELETE FROM event_txns WHERE room_id = ? AND event_id NOT IN (SELECT event_id FROM events WHERE room_id = ?)',
  'DELETE FROM threads WHERE room_id = ? AND root_event_id NOT IN (SELECT event_id FROM events WHERE room_id = ?)',
];

export class SqliteAdminStore implements AdminStore {
  constructor(private readonly ctx: SqliteContext) {}

  async listUsers(q: UserListQuery): Promise<{ users: UserRecord[]; total: number }> {
    this.ctx.checkOpen();
    const where: string[] = [];
    const params: unknown[] = [];
    if (!q.deactivated) where.push('deactivated = 0');
    if (q.name !== undefined && q.name !== '') {
      where.push("(user_id LIKE ? ESCAPE '\\' OR displayname LIKE ? ESCAPE '\\')");
      params.push(likeSubstring(q.name), likeSubstring(q.name));
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const total = (this.ctx.stmt(`SELECT COUNT(*) AS n FROM users ${clause}`).get(...params) as { n: number }).n;
    const rows = this.ctx
      .stmt(
        `SELECT user_id, password_hash, admin, deactivated, created_ts, displayname, avatar_url, is_guest FROM users ${clause}
         ORDER BY user_id LIMIT ? OFFSET ?`,
      )
      .all(...params, Math.max(0, Math.floor(q.limit)), Math.max(0, Math.floor(q.from))) as UserRow[];
    return { users: rows.map(toUser), total };
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE users SET admin = ? WHERE user_id = ?').run(admin ? 1 : 0, userId);
    });
  }

  async reactivateUser(userId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE users SET deactivated = 0 WHERE user_id = ?').run(userId);
    });
  }

  async listRooms(): Promise<RoomListEntry[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt('SELECT room_id, room_version, creator FROM rooms ORDER BY room_id').all() as {
      room_id: string;
      room_version: string;
      creator: string;
    }[];
    return rows.map((r) => ({ roomId: r.room_id, roomVersion: r.room_version, creator: r.creator }));
  }

  async deleteRoom(roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      const known = this.ctx.stmt('SELECT 1 FROM rooms WHERE room_id = ?').get(roomId) !== undefined;
      // Rows keyed by something other than room_id (migration 0007's DAG tables) go first,
      // while the rows that name their room still exist.
      this.ctx.stmt('DELETE FROM state_group_entries WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = ?)').run(roomId);
      this.ctx
        .stmt('DELETE FROM auth_chain_links WHERE origin_chain IN (SELECT chain_id FROM events WHERE room_id = ? AND chain_id IS NOT NULL)')
        .run(roomId);
      // Events first, so the search triggers see each row; then every other table keyed by room.
      this.ctx.stmt('DELETE FROM events WHERE room_id = ?').run(roomId);
      for (const table of this.roomTables()) {
        this.ctx.stmt(`DELETE FROM "${table}" WHERE room_id = ?`).run(roomId);
      }
      return known;
    }, { kind: 'room_purged', roomId });
  }

  async purgeHistory(roomId: string, upToStream: number, opts: { includeLocal: boolean; serverName: string }): Promise<number> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      // State events stay: current state, state at any point and auth all refer to them. So do
      // events that changed the room's state group (a fork's resolution): getStateAt finds the
      // group at a position through them alone (migration 20).
      const local = opts.includeLocal ? '' : "AND substr(sender, instr(sender, ':') + 1) != ?";
      const params: unknown[] = [roomId, upToStream, roomId];
      if (!opts.includeLocal) params.push(opts.serverName);
      const res = this.ctx
        .stmt(
          `DELETE FROM events WHERE room_id = ? AND stream <= ? AND state_key IS NULL
             AND (room_state IS NULL OR room_state IS state_before)
             AND event_id NOT IN (SELECT event_id FROM forward_extremities WHERE room_id = ?) ${local}`,
        )
        .run(...params);
      if (res.changes > 0) for (const sql of PURGE_DEPENDENTS) this.ctx.stmt(sql).run(roomId, roomId);
      return res.changes;
    }, { kind: 'room_purged', roomId });
  }

  async streamBeforeTs(roomId: string, ts: number): Promise<number> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt("SELECT MAX(stream) AS s FROM events WHERE room_id = ? AND json_extract(pdu_json, '$.origin_server_ts') < ?")
      .get(roomId, ts) as { s: number | null };
    return row.s ?? 0;
  }

  async setRoomBlocked(roomId: string, blocked: boolean): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      if (blocked) {
        this.ctx.stmt('INSERT INTO blocked_rooms (blocked_room, blocked_ts) VALUES (?, ?) ON CONFLICT DO NOTHING').run(roomId, Date.now());
      } else {
        this.ctx.stmt('DELETE FROM blocked_rooms WHERE blocked_room = ?').run(roomId);
      }
    });
  }

  async isRoomBlocked(roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.stmt('SELECT 1 FROM blocked_rooms WHERE blocked_room = ?').get(roomId) !== undefined;
  }

  /** Ordinary tables with a room_id column (not the FTS table: its triggers keep it in step). */
  private roomTables(): string[] {
    const tables = this.ctx
      .stmt("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'events'")
      .all() as { name: string; sql: string | null }[];
    return tables
      .filter((t) => !/^\s*CREATE\s+VIRTUAL/i.test(t.sql ?? ''))
      .filter((t) => (this.ctx.stmt(`SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = 'room_id'`).get(t.name) as { n: number }).n > 0)
      .map((t) => t.name);
  }
}
