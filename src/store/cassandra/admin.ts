// AdminStore on Cassandra: account and room listings, admin-only flags, room deletion and
// history purge. Same results as ../sqlite/admin.ts; what differs is cost:
//
// - Listings scan their whole table (users, rooms) and sort here: Cassandra orders only inside
//   a partition. Fine at one homeserver's sizes, and only admins call them.
// - deleteRoom finds every table with a room_id column at run time (system_schema), as SQLite
//   does, so tables added by later migrations are covered without editing this file. Where
//   room_id is the whole partition key the partition is deleted; otherwise the rows (or
//   partitions) holding the room are found with a filtering query, which scans the table. Rows
//   keyed only by an ID of the room's (ROOM_KEYED: state group entries, auth chain links) go
//   first, while the rows naming their room still exist. blocked_rooms names its key blocked_room so the block
//   survives. Not one transaction: a deletion that fails half-way is finished by running it
//   again (every step is idempotent).
// - purgeHistory reads the events to purge through the RoomStore (the timeline: accepted
//   events) and deletes their rows from the rooms module's event tables (EVENT_TABLES, named
//   in migrations/0002-rooms.ts) and from this backend's derived tables (push actions,
//   relations, search documents). Receipts, state and memberships that name a purged event are
//   kept, as on SQLite.
// - Both report { kind: 'room_purged' } to the unpositioned-change listener once done.
// - `users` is the accounts module's table (migrations/0004-users.ts), read with its mapping;
//   setAdmin and reactivateUser update existing rows only (an UPDATE of a missing row would
//   create a half row).

import type { AdminStore, RoomListEntry, StoredEvent, UserListQuery, UserRecord } from '../types.js';
import { USER_COLUMNS, toUser } from './accounts.js';
import { num, type CassandraContext, type CqlStatement } from './context.js';
import { mapLimit, roomBucket, userBucket, type DerivedDeps } from './derived-common.js';

const PARALLEL = 16;
const CHUNK = 100;

/** Tables that must never lose rows to a room deletion (bookkeeping, not room data). */
const KEEP = new Set(['schema_migrations', 'stream_seq', 'blocked_rooms']);

/**
 * The rooms module's per-event tables, whose rows of a purged event go with it (see
 * migrations/0002-rooms.ts). Absent tables are skipped.
 */
const EVENT_TABLES = ['events', 'event_claims', 'event_txns', 'room_timeline', 'room_topo'];

/**
 * Partitions keyed by an ID of the room's rather than its room_id (migration 0002): the IDs are
 * read from `source` (which names the room) before `source` itself is deleted.
 */
const ROOM_KEYED: { source: string; key: string; targets: { table: string; column: string }[] }[] = [
  { source: 'state_groups', key: 'group_id', targets: [{ table: 'state_group_entries', column: 'group_id' }] },
  {
    source: 'auth_chains',
    key: 'chain_id',
    targets: [
      { table: 'auth_chain_links', column: 'origin_chain' },
      { table: 'auth_chain_links_in', column: 'target_chain' },
    ],
  },
];

/**
 * Tables other modules write only with LWTs (migrations 0002 and 0004): their rows are deleted
 * with `IF EXISTS` too, so plain and conditional writes never mix on their cells.
 */
const LWT_TABLES = new Set(['rooms', 'event_claims', 'event_txns', 'room_aliases', 'user_ids', 'stream_seq']);

interface TableShape {
  name: string;
  partition: string[];
  clustering: string[];
  columns: Set<string>;
}

export class CassandraAdminStore implements AdminStore {
  constructor(
    private readonly ctx: CassandraContext,
    private readonly deps: DerivedDeps,
  ) {}

  async listUsers(q: UserListQuery): Promise<{ users: UserRecord[]; total: number }> {
    this.ctx.checkOpen();
    const needle = q.name !== undefined && q.name !== '' ? q.name.toLowerCase() : null;
    const users = (await this.ctx.all(`SELECT ${USER_COLUMNS} FROM users`))
      // A row without created_ts is a half row (an update that raced a deletion): no account.
      .filter((r) => r['created_ts'] !== null && r['created_ts'] !== undefined)
      .map(toUser)
      .filter((u) => q.deactivated || !u.deactivated)
      .filter((u) => needle === null || u.userId.toLowerCase().includes(needle) || (u.displayname ?? '').toLowerCase().includes(needle))
      .sort((a, b) => compareCodePoints(a.userId, b.userId));
    const from = Math.max(0, Math.floor(q.from));
    return { users: users.slice(from, from + Math.max(0, Math.floor(q.limit))), total: users.length };
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    this.ctx.checkOpen();
    if (!(await this.userExists(userId))) return;
    await this.ctx.execute('UPDATE users SET admin = ? WHERE user_id = ?', [admin, userId]);
  }

  async reactivateUser(userId: string): Promise<void> {
    this.ctx.checkOpen();
    if (!(await this.userExists(userId))) return;
    await this.ctx.execute('UPDATE users SET deactivated = false WHERE user_id = ?', [userId]);
  }

  async listRooms(): Promise<RoomListEntry[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT room_id, room_version, creator FROM rooms');
    return rows
      .filter((r) => typeof r['room_version'] === 'string')
      .map((r) => ({ roomId: r['room_id'] as string, roomVersion: r['room_version'] as string, creator: r['creator'] as string }))
      .sort((a, b) => compareCodePoints(a.roomId, b.roomId));
  }

  async deleteRoom(roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    const known = (await this.deps.rooms().getRoom(roomId)) !== null;
    const tables = await this.tables();
    for (const dep of ROOM_KEYED) {
      const source = tables.get(dep.source);
      if (source === undefined || !source.columns.has('room_id') || !source.columns.has(dep.key)) continue;
      // bigint keys arrive as Longs: deduplicated by their text.
      const keys = new Map<string, unknown>();
      for (const r of await this.ctx.all(`SELECT "${dep.key}" FROM "${dep.source}" WHERE room_id = ? ALLOW FILTERING`, [roomId])) {
        keys.set(String(r[dep.key]), r[dep.key]);
      }
      for (const target of dep.targets) {
        const t = tables.get(target.table);
        if (t === undefined || t.partition.length !== 1 || t.partition[0] !== target.column) continue;
        await mapLimit([...keys.values()], PARALLEL, (k) => this.ctx.execute(`DELETE FROM "${target.table}" WHERE "${target.column}" = ?`, [k]));
      }
    }
    for (const t of tables.values()) {
      if (KEEP.has(t.name) || !t.columns.has('room_id')) continue;
      await this.deleteWhere(t, 'room_id', roomId);
    }
    this.ctx.unpositioned({ kind: 'room_purged', roomId });
    return known;
  }

  async purgeHistory(roomId: string, upToStream: number, opts: { includeLocal: boolean; serverName: string }): Promise<number> {
    this.ctx.checkOpen();
    const rooms = this.deps.rooms();
    const extremities = new Set(await rooms.getForwardExtremities(roomId));
    // State events stay: current state, state at any point and auth all refer to them.
    const doomed: StoredEvent[] = [];
    let from = -Number.MAX_SAFE_INTEGER;
    for (;;) {
      const page = await rooms.getRoomEvents({ roomId, dir: 'f', from, to: upToStream, limit: 500 });
      for (const ev of page) {
        if (ev.pdu.state_key !== undefined || extremities.has(ev.eventId)) continue;
        if (!opts.includeLocal && serverOf(ev.pdu.sender) === opts.serverName) continue;
        doomed.push(ev);
      }
      if (page.length < 500) break;
      from = page[page.length - 1]!.stream;
    }
    if (doomed.length === 0) return 0;
    const ids = doomed.map((e) => e.eventId);
    await this.purgeDerived(roomId, doomed);
    const tables = await this.tables();
    for (const name of EVENT_TABLES) {
      const t = tables.get(name);
      if (t === undefined || !t.columns.has('event_id')) continue;
      for (let i = 0; i < ids.length; i += CHUNK) await this.deleteWhere(t, 'event_id', ids.slice(i, i + CHUNK), roomId);
    }
    this.ctx.unpositioned({ kind: 'room_purged', roomId });
    return doomed.length;
  }

  async streamBeforeTs(roomId: string, ts: number): Promise<number> {
    this.ctx.checkOpen();
    // Newest first: the first event older than ts has the highest stream of those. `from` is
    // inclusive going backwards, so each next page repeats the previous page's last event.
    let from = Number.MAX_SAFE_INTEGER;
    let seen: number | null = null;
    for (;;) {
      const page = (await this.deps.rooms().getRoomEvents({ roomId, dir: 'b', from, limit: 200 })).filter((e) => e.stream !== seen);
      const hit = page.find((e) => e.pdu.origin_server_ts < ts);
      if (hit !== undefined) return hit.stream;
      if (page.length === 0) return 0;
      from = seen = page[page.length - 1]!.stream;
    }
  }

  async setRoomBlocked(roomId: string, blocked: boolean): Promise<void> {
    this.ctx.checkOpen();
    if (blocked) await this.ctx.execute('INSERT INTO blocked_rooms (blocked_room, blocked_ts) VALUES (?, ?)', [roomId, Date.now()]);
    else await this.ctx.execute('DELETE FROM blocked_rooms WHERE blocked_room = ?', [roomId]);
  }

  async isRoomBlocked(roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    return (await this.ctx.execute('SELECT blocked_room FROM blocked_rooms WHERE blocked_room = ?', [roomId])).rowLength > 0;
  }

  private async userExists(userId: string): Promise<boolean> {
    const row = (await this.ctx.execute('SELECT created_ts FROM users WHERE user_id = ?', [userId])).first();
    return row !== null && row['created_ts'] !== null;
  }

  /** Push actions, bulk results, relations, threads rooted at them and search documents of purged events. */
  private async purgeDerived(roomId: string, events: StoredEvent[]): Promise<void> {
    const ids = events.map((e) => e.eventId);
    const stmts: CqlStatement[] = [];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      // Per-user rows live in the notified users' partitions: found by filtering on the event.
      const pushed = await this.ctx.all('SELECT user_id, bucket, stream, room_id FROM push_actions WHERE event_id IN ? ALLOW FILTERING', [chunk]);
      for (const r of pushed) {
        if (r['room_id'] !== roomId) continue;
        stmts.push(
          { query: 'DELETE FROM push_actions WHERE user_id = ? AND bucket = ? AND stream = ?', params: [r['user_id'], r['bucket'], r['stream']] },
          {
            query: 'DELETE FROM push_actions_by_room WHERE user_id = ? AND bucket = ? AND room_id = ? AND stream = ?',
            params: [r['user_id'], userBucket(num(r['stream'])), roomId, r['stream']],
          },
        );
      }
      const rels = await this.ctx.all('SELECT event_id, room_id, relates_to, rel_type, stream FROM relation_of_event WHERE event_id IN ?', [chunk]);
      for (const r of rels) {
        if (r['room_id'] !== roomId) continue;
        stmts.push(
          { query: 'DELETE FROM relations WHERE room_id = ? AND relates_to = ? AND stream = ?', params: [roomId, r['relates_to'], r['stream']] },
          {
            query: 'DELETE FROM relations_by_type WHERE room_id = ? AND relates_to = ? AND rel_type = ? AND stream = ?',
            params: [roomId, r['relates_to'], r['rel_type'], r['stream']],
          },
          { query: 'DELETE FROM relation_of_event WHERE event_id = ?', params: [r['event_id']] },
        );
      }
      const docs = await this.ctx.all('SELECT event_id, room_id, stream FROM search_of_event WHERE event_id IN ?', [chunk]);
      for (const r of docs) {
        if (r['room_id'] !== roomId) continue;
        stmts.push(
          {
            query: 'DELETE FROM search_docs WHERE room_id = ? AND bucket = ? AND stream = ?',
            params: [roomId, roomBucket(num(r['stream'])), r['stream']],
          },
          { query: 'DELETE FROM search_of_event WHERE event_id = ?', params: [r['event_id']] },
        );
      }
    }
    const pos = this.ctx.currentPosition();
    for (const ev of events) {
      stmts.push({
        query: 'DELETE FROM push_bulk WHERE room_id = ? AND bucket = ? AND stream = ?',
        params: [roomId, roomBucket(ev.stream), ev.stream],
      });
      // threads is written USING TIMESTAMP <position>: a later reply may start the row again.
      stmts.push({ query: 'DELETE FROM threads USING TIMESTAMP ? WHERE room_id = ? AND root_event_id = ?', params: [pos, roomId, ev.eventId] });
    }
    await mapLimit(stmts, PARALLEL, (s) => this.ctx.execute(s.query, s.params));
  }

  /** Deletes the rows of `t` whose `column` is `value` (or one of `value`), optionally only in `roomId`. */
  private async deleteWhere(t: TableShape, column: string, value: string | string[], roomId?: string): Promise<void> {
    const many = Array.isArray(value);
    const ifExists = LWT_TABLES.has(t.name) ? ' IF EXISTS' : '';
    if (t.partition.length === 1 && t.partition[0] === column) {
      const values = many ? value : [value];
      await mapLimit(values, PARALLEL, (v) => this.ctx.execute(`DELETE FROM "${t.name}" WHERE "${column}" = ?${ifExists}`, [v]));
      return;
    }
    // Whole partitions where the column is part of the partition key, else single rows.
    const key = t.partition.includes(column) ? t.partition : [...t.partition, ...t.clustering];
    const where = [`"${column}" ${many ? 'IN' : '='} ?`];
    const params: unknown[] = [value];
    if (roomId !== undefined && column !== 'room_id' && t.columns.has('room_id')) {
      where.push('"room_id" = ?');
      params.push(roomId);
    }
    const cols = key.map((c) => `"${c}"`).join(', ');
    const rows = await this.ctx.all(
      `SELECT ${key === t.partition ? 'DISTINCT ' : ''}${cols} FROM "${t.name}" WHERE ${where.join(' AND ')} ALLOW FILTERING`,
      params,
    );
    const del = `DELETE FROM "${t.name}" WHERE ${key.map((c) => `"${c}" = ?`).join(' AND ')}${ifExists}`;
    await mapLimit(rows, PARALLEL, (r) => this.ctx.execute(del, key.map((c) => r[c])));
  }

  /** The keyspace's tables and their key columns, from system_schema. */
  private async tables(): Promise<Map<string, TableShape>> {
    const ks = this.ctx.client.keyspace;
    const rows = await this.ctx.all(
      'SELECT table_name, column_name, kind, position FROM system_schema.columns WHERE keyspace_name = ?',
      [ks],
    );
    const out = new Map<string, TableShape & { pk: [number, string][]; ck: [number, string][] }>();
    for (const r of rows) {
      const name = r['table_name'] as string;
      let t = out.get(name);
      if (t === undefined) out.set(name, (t = { name, partition: [], clustering: [], columns: new Set(), pk: [], ck: [] }));
      const col = r['column_name'] as string;
      t.columns.add(col);
      if (r['kind'] === 'partition_key') t.pk.push([r['position'] as number, col]);
      else if (r['kind'] === 'clustering') t.ck.push([r['position'] as number, col]);
    }
    for (const t of out.values()) {
      t.partition = t.pk.sort((a, b) => a[0] - b[0]).map(([, c]) => c);
      t.clustering = t.ck.sort((a, b) => a[0] - b[0]).map(([, c]) => c);
    }
    return out;
  }
}

function serverOf(userId: string): string {
  const i = userId.indexOf(':');
  return i < 0 ? '' : userId.slice(i + 1);
}

/** SQLite's BINARY collation on UTF-8 text: code point order. */
function compareCodePoints(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return Buffer.compare(x, y);
}
