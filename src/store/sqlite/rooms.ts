// RoomStore: rooms, events, state, memberships, aliases and the directory.

import type { JsonValue, RoomVersion } from '../../protocol/types.js';
import { compareCodePoints, parseTrustedJson } from '../../protocol/canonical-json.js';
import { referencedIds } from '../../protocol/events.js';
import {
  StoreConflictError,
  type Membership,
  type MembershipRecord,
  type PersistEventInput,
  type PersistEventResult,
  type StateGroupId,
  type TopologicalPosition,
  type RoomEventsQuery,
  type RoomRecord,
  type RoomStore,
  type StateEntry,
  type StoredEvent,
} from '../types.js';
import type { SqliteContext } from './context.js';
import { eventChange, getEventRow, REMOVED, nextBackfillPosition, prepareEvent, queryRoomEvents, TIMELINE, toStoredEvent, writeEvent } from './events.js';
import { authChainDifference, conflictedSubgraph } from './dag.js';
import { readStateGroup } from './state-groups.js';
import { writeOutbound } from './federation-queue.js';
import { writeExpiryRow } from './expiry.js';

interface StateRow {
  type: string;
  state_key: string;
  event_id: string;
}

interface MembershipRow {
  room_id: string;
  user_id: string;
  membership: Membership;
  event_id: string;
  stream: number;
}

const toState = (r: StateRow): StateEntry => ({ type: r.type, stateKey: r.state_key, eventId: r.event_id });
const toMembership = (r: MembershipRow): MembershipRecord => ({
  roomId: r.room_id,
  userId: r.user_id,
  membership: r.membership,
  eventId: r.event_id,
  stream: r.stream,
});

function placeholders(n: number): string {
  return new Array<string>(n).fill('?').join(', ');
}

export class SqliteRoomStore implements RoomStore {
  constructor(private readonly ctx: SqliteContext) {}

  async createRoom(room: RoomRecord): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(room.roomId, room.roomVersion, room.creator, room.createdTs);
      if (res.changes === 0) throw new StoreConflictError(`room ${room.roomId} already exists`);
    });
  }

  async getRoom(roomId: string): Promise<RoomRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT room_id, room_version, creator, created_ts FROM rooms WHERE room_id = ?').get(roomId) as
      | { room_id: string; room_version: RoomVersion; creator: string; created_ts: number }
      | undefined;
    return row ? { roomId: row.room_id, roomVersion: row.room_version, creator: row.creator, createdTs: row.created_ts } : null;
  }

  async persistEvent(input: PersistEventInput): Promise<PersistEventResult> {
    this.ctx.checkOpen();
    const prepared = prepareEvent(input);
    if (prepared.backfill) {
      // Outside the global stream: no position is reserved, so the watermark is untouched.
      return this.ctx.queue.write(() => {
        const pos = nextBackfillPosition(this.ctx);
        return { stream: pos, ...writeEvent(this.ctx, prepared, pos) };
      });
    }
    // Only accepted events reach the completion hook's readers: the others are in no timeline.
    // writeEvent only reads `prepared` (captured above) and the database: replayable.
    // The event's outbound PDU rides in the same transaction, at the event's position.
    const outbound = prepared.status === 'accepted' && input.outbound && input.outbound.destinations.length > 0 ? { destinations: [...input.outbound.destinations], body: JSON.stringify(input.outbound.pdu) } : null;
    // So is a self-destructing message's due time (src/store/expiry-types.ts).
    const expiresTs = prepared.status === 'accepted' ? (input.selfDestructAt ?? null) : null;
    return this.ctx.queue.writeAtPosition(
      (pos) => {
        const written = writeEvent(this.ctx, prepared, pos);
        if (outbound) writeOutbound(this.ctx, outbound.destinations, pos, 'pdu', prepared.roomId, outbound.body);
        if (expiresTs !== null) writeExpiryRow(this.ctx, { eventId: input.eventId, roomId: prepared.roomId, expiresTs });
        return { stream: pos, ...written };
      },
      (_r, pos) => (prepared.status === 'accepted' ? eventChange(prepared, pos) : null),
      { replayable: true },
    );
  }

  async getEvent(eventId: string): Promise<StoredEvent | null> {
    this.ctx.checkOpen();
    const row = getEventRow(this.ctx, eventId);
    return row ? toStoredEvent(row) : null;
  }

  async getEvents(eventIds: string[]): Promise<Map<string, StoredEvent>> {
    this.ctx.checkOpen();
    // One indexed lookup per ID beats a long IN (...) list in SQLite and keeps one cached statement.
    const out = new Map<string, StoredEvent>();
    for (const id of eventIds) {
      if (out.has(id)) continue;
      const row = getEventRow(this.ctx, id);
      if (row) out.set(id, toStoredEvent(row));
    }
    return out;
  }

  async getEventIdForTxn(roomId: string, userId: string, deviceId: string, txnId: string, scope = ''): Promise<string | null> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt('SELECT event_id FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?')
      .get(roomId, userId, deviceId, scope, txnId) as { event_id: string } | undefined;
    return row ? row.event_id : null;
  }

  async getForwardExtremities(roomId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt('SELECT event_id FROM forward_extremities WHERE room_id = ? ORDER BY event_id').all(roomId) as {
      event_id: string;
    }[];
    return rows.map((r) => r.event_id);
  }

  async getCurrentState(roomId: string): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT type, state_key, event_id FROM current_state WHERE room_id = ? ORDER BY type, state_key')
      .all(roomId) as StateRow[];
    return rows.map(toState);
  }

  async getStateAt(roomId: string, stream: number): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    // Only events that changed the room's group are indexed (migration 20): the latest of them
    // at or before `stream` has the group every later event up to `stream` kept.
    const row = this.ctx
      .stmt(
        'SELECT room_state FROM events WHERE room_id = ? AND stream <= ? AND room_state IS NOT NULL AND room_state IS NOT state_before ORDER BY stream DESC LIMIT 1',
      )
      .get(roomId, stream) as { room_state: number } | undefined;
    return row ? this.groupEntries(row.room_state) : [];
  }

  private groupEntries(group: number): StateEntry[] {
    return [...readStateGroup(this.ctx.stmt, group).values()].sort((a, b) =>
      a.type === b.type ? (a.stateKey < b.stateKey ? -1 : a.stateKey > b.stateKey ? 1 : 0) : a.type < b.type ? -1 : 1,
    );
  }

  async getPrevEvents(eventIds: string[]): Promise<Map<string, string[]>> {
    this.ctx.checkOpen();
    // The PDU is the edge list (redaction keeps prev_events); nothing on the send path writes
    // another copy of it (migration 23 dropped event_edges).
    const stmt = this.ctx.stmt("SELECT json_extract(pdu_json, '$.prev_events') AS prev FROM events WHERE event_id = ?");
    const out = new Map<string, string[]>();
    for (const id of eventIds) {
      if (out.has(id)) continue;
      const row = stmt.get(id) as { prev: string | null } | undefined;
      if (row === undefined) continue;
      const prev = row.prev === null ? [] : referencedIds(parseTrustedJson<JsonValue>(row.prev));
      // Distinct and in code point order (UTF-8 byte order), as the edge table's key gave them.
      out.set(id, [...new Set(prev)].sort(compareCodePoints));
    }
    return out;
  }

  async getEventStateGroups(eventIds: string[]): Promise<Map<string, { before: StateGroupId; after: StateGroupId }>> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt('SELECT state_before, state_after FROM events WHERE event_id = ? AND state_before IS NOT NULL');
    const out = new Map<string, { before: number; after: number }>();
    for (const id of eventIds) {
      const row = stmt.get(id) as { state_before: number; state_after: number } | undefined;
      if (row) out.set(id, { before: row.state_before, after: row.state_after });
    }
    return out;
  }

  async getStateGroup(group: StateGroupId): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    return this.groupEntries(group);
  }

  async getCurrentStateGroup(roomId: string): Promise<StateGroupId | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT group_id FROM room_current_group WHERE room_id = ?').get(roomId) as { group_id: number } | undefined;
    return row ? row.group_id : null;
  }

  async getStateAtEvent(eventId: string, when: 'before' | 'after'): Promise<StateEntry[] | null> {
    this.ctx.checkOpen();
    const groups = await this.getEventStateGroups([eventId]);
    const g = groups.get(eventId);
    return g ? this.groupEntries(when === 'before' ? g.before : g.after) : null;
  }

  async getAuthChainDifference(roomId: string, stateSets: string[][]): Promise<Set<string>> {
    this.ctx.checkOpen();
    return authChainDifference(this.ctx.stmt, roomId, stateSets);
  }

  async getConflictedSubgraph(roomId: string, eventIds: string[]): Promise<Set<string>> {
    this.ctx.checkOpen();
    return conflictedSubgraph(this.ctx.stmt, roomId, eventIds);
  }

  async getTopologicalPositions(eventIds: string[]): Promise<Map<string, TopologicalPosition>> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt('SELECT depth, stream FROM events WHERE event_id = ?');
    const out = new Map<string, TopologicalPosition>();
    for (const id of eventIds) {
      const row = stmt.get(id) as { depth: number; stream: number } | undefined;
      if (row) out.set(id, { depth: row.depth, stream: row.stream });
    }
    return out;
  }

  async getStateChanges(roomId: string, fromExclusive: number, toInclusive: number): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    // SQLite returns the bare columns of the row holding MAX(stream), i.e. the latest per key.
    const rows = this.ctx
      .stmt(
        `SELECT type, state_key, event_id, MAX(stream) AS stream FROM state_history
         WHERE room_id = ? AND stream > ? AND stream <= ?
         GROUP BY type, state_key ORDER BY type, state_key`,
      )
      .all(roomId, fromExclusive, toInclusive) as StateRow[];
    // A key whose latest change is a removal has no entry to report.
    return rows.filter((r) => r.event_id !== REMOVED).map(toState);
  }

  async getStateHistory(roomId: string, type: string, stateKey: string): Promise<Array<{ stream: number; eventId: string | null }>> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT stream, event_id FROM state_history WHERE room_id = ? AND type = ? AND state_key = ? ORDER BY stream')
      .all(roomId, type, stateKey) as { stream: number; event_id: string }[];
    return rows.map((r) => ({ stream: r.stream, eventId: r.event_id === REMOVED ? null : r.event_id }));
  }

  async getRoomEvents(query: RoomEventsQuery): Promise<StoredEvent[]> {
    this.ctx.checkOpen();
    return queryRoomEvents(this.ctx, query);
  }

  async getRoomsMaxStream(roomIds: string[]): Promise<Map<string, number>> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(`SELECT MAX(stream) AS m FROM events WHERE room_id = ? AND ${TIMELINE}`);
    const out = new Map<string, number>();
    for (const roomId of roomIds) {
      const row = stmt.get(roomId) as { m: number | null };
      if (row.m !== null) out.set(roomId, row.m);
    }
    return out;
  }

  async getMembership(roomId: string, userId: string): Promise<MembershipRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT * FROM memberships WHERE room_id = ? AND user_id = ?').get(roomId, userId) as
      | MembershipRow
      | undefined;
    return row ? toMembership(row) : null;
  }

  async getRoomsForUser(userId: string, memberships?: Membership[]): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    let rows: MembershipRow[];
    if (memberships === undefined) {
      rows = this.ctx.stmt('SELECT * FROM memberships WHERE user_id = ? ORDER BY room_id').all(userId) as MembershipRow[];
    } else if (memberships.length === 0) {
      rows = [];
    } else {
      rows = this.ctx
        .stmt(`SELECT * FROM memberships WHERE user_id = ? AND membership IN (${placeholders(memberships.length)}) ORDER BY room_id`)
        .all(userId, ...memberships) as MembershipRow[];
    }
    return rows.map(toMembership);
  }

  async getMembershipChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt(
        `SELECT room_id, user_id, membership, event_id, MAX(stream) AS stream FROM membership_history
         WHERE user_id = ? AND stream > ? AND stream <= ? GROUP BY room_id ORDER BY stream`,
      )
      .all(userId, fromExclusive, toInclusive) as MembershipRow[];
    return rows.map(toMembership);
  }

  async getRoomMembers(roomId: string, memberships: Membership[] = ['join']): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    if (memberships.length === 0) return [];
    const rows = this.ctx
      .stmt(`SELECT * FROM memberships WHERE room_id = ? AND membership IN (${placeholders(memberships.length)}) ORDER BY user_id`)
      .all(roomId, ...memberships) as MembershipRow[];
    return rows.map(toMembership);
  }

  async forgetRoom(userId: string, roomId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('INSERT INTO forgotten_rooms (user_id, room_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(userId, roomId);
    });
  }

  async isRoomForgotten(userId: string, roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.stmt('SELECT 1 FROM forgotten_rooms WHERE user_id = ? AND room_id = ?').get(userId, roomId) !== undefined;
  }

  async createAlias(alias: string, roomId: string, creator: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(alias, roomId, creator);
      if (res.changes === 0) throw new StoreConflictError(`alias ${alias} already exists`);
    });
  }

  async getAlias(alias: string): Promise<{ roomId: string; creator: string } | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT room_id, creator FROM room_aliases WHERE alias = ?').get(alias) as
      | { room_id: string; creator: string }
      | undefined;
    return row ? { roomId: row.room_id, creator: row.creator } : null;
  }

  async deleteAlias(alias: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => this.ctx.stmt('DELETE FROM room_aliases WHERE alias = ?').run(alias).changes > 0);
  }

  async getAliasesForRoom(roomId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt('SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias').all(roomId) as { alias: string }[];
    return rows.map((r) => r.alias);
  }

  async setRoomVisibility(roomId: string, visibility: 'public' | 'private'): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt('INSERT INTO room_visibility (room_id, visibility) VALUES (?, ?) ON CONFLICT DO UPDATE SET visibility = excluded.visibility')
        .run(roomId, visibility);
    });
  }

  async getRoomVisibility(roomId: string): Promise<'public' | 'private'> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT visibility FROM room_visibility WHERE room_id = ?').get(roomId) as
      | { visibility: 'public' | 'private' }
      | undefined;
    return row ? row.visibility : 'private';
  }

  async listPublicRooms(): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt("SELECT room_id FROM room_visibility WHERE visibility = 'public' ORDER BY room_id").all() as {
      room_id: string;
    }[];
    return rows.map((r) => r.room_id);
  }
}
