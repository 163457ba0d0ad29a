// RoomStore on Cassandra: rooms, events, state, DAG, memberships, aliases and the directory.
// The write path is events.ts; timeline paging timeline.ts; state groups state-groups.ts; auth
// chain questions dag.ts; memberships memberships.ts. Schema: migrations/0002-rooms.ts.
//
// Invariants:
// - Uniqueness (room IDs, aliases, event IDs, txn IDs) is decided by LWTs on tables that take
//   nothing but LWTs; everything else is plain writes.
// - Reads return what SQLite returns for the same writes, in the same order (see each method).

import type { RoomVersion } from '../../protocol/types.js';
import {
  StoreConflictError,
  type Membership,
  type MembershipRecord,
  type PersistEventInput,
  type PersistEventResult,
  type RoomEventsQuery,
  type RoomRecord,
  type RoomStore,
  type StateEntry,
  type StateGroupId,
  type StoredEvent,
  type TopologicalPosition,
} from '../types.js';
import { applied, num, numOrNull, type CassandraContext } from './context.js';
import { authChainDifference, conflictedSubgraph } from './dag.js';
import { EventWriter, REMOVED } from './events.js';
import type { CommitHooks } from './room-fence.js';
import * as members from './memberships.js';
import { byKey, streamBucket, getStoredEvents, KIND_STATE, mapLimit, readEventRows, roomBuckets, scan } from './rooms-util.js';
import { stateGroupEntries } from './state-groups.js';
import { queryRoomEvents, roomMaxStream } from './timeline.js';

export class CassandraRoomStore implements RoomStore {
  private readonly writer: EventWriter;

  constructor(
    private readonly ctx: CassandraContext,
    commitHooks?: CommitHooks,
  ) {
    this.writer = new EventWriter(ctx, commitHooks);
  }

  async createRoom(room: RoomRecord): Promise<void> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute(
      'INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?) IF NOT EXISTS',
      [room.roomId, room.roomVersion, room.creator, room.createdTs],
    );
    if (!applied(rs)) throw new StoreConflictError(`room ${room.roomId} already exists`);
  }

  async getRoom(roomId: string): Promise<RoomRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT room_version, creator, created_ts FROM rooms WHERE room_id = ?', [roomId])).first();
    return row
      ? { roomId, roomVersion: row['room_version'] as RoomVersion, creator: row['creator'] as string, createdTs: num(row['created_ts']) }
      : null;
  }

  persistEvent(input: PersistEventInput): Promise<PersistEventResult> {
    try {
      return this.writer.persist(input);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async fenceRoom(roomId: string, epoch: number): Promise<void> {
    this.ctx.checkOpen();
    await this.writer.commits.settle(roomId, epoch);
  }

  async getEvent(eventId: string): Promise<StoredEvent | null> {
    this.ctx.checkOpen();
    return (await getStoredEvents(this.ctx, [eventId])).get(eventId) ?? null;
  }

  async getEvents(eventIds: string[]): Promise<Map<string, StoredEvent>> {
    this.ctx.checkOpen();
    return getStoredEvents(this.ctx, eventIds);
  }

  async getEventIdForTxn(roomId: string, userId: string, deviceId: string, txnId: string, scope = ''): Promise<string | null> {
    this.ctx.checkOpen();
    const row = (
      await this.ctx.execute('SELECT event_id FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?', [
        roomId,
        userId,
        deviceId,
        scope,
        txnId,
      ])
    ).first();
    if (!row) return null;
    // The claim is taken before the event's batch: report it only once the event is stored.
    const eventId = row['event_id'] as string;
    const ev = (await this.ctx.execute('SELECT room_id FROM events WHERE event_id = ?', [eventId])).first();
    return ev ? eventId : null;
  }

  async getForwardExtremities(roomId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT extremities FROM room_heads WHERE room_id = ?', [roomId])).first();
    const ids = (row?.['extremities'] as string[] | null | undefined) ?? [];
    return [...ids].sort();
  }

  async getCurrentState(roomId: string): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT type, state_key, event_id FROM current_state WHERE room_id = ?', [roomId]);
    return rows.map((r) => ({ type: r['type'] as string, stateKey: r['state_key'] as string, eventId: r['event_id'] as string }));
  }

  async getStateAt(roomId: string, stream: number): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    for await (const bucket of roomBuckets(this.ctx, roomId, KIND_STATE, Number.MIN_SAFE_INTEGER, streamBucket(stream), true)) {
      const row = (
        await this.ctx.execute('SELECT group_id FROM state_log WHERE room_id = ? AND bucket = ? AND stream <= ? ORDER BY stream DESC LIMIT 1', [
          roomId,
          bucket,
          stream,
        ])
      ).first();
      if (row) return stateGroupEntries(this.ctx, num(row['group_id']));
    }
    return [];
  }

  async getPrevEvents(eventIds: string[]): Promise<Map<string, string[]>> {
    this.ctx.checkOpen();
    const rows = await readEventRows(this.ctx, eventIds, 'event_id, prev_events');
    const out = new Map<string, string[]>();
    for (const id of eventIds) {
      const row = rows.get(id);
      if (row && !out.has(id)) out.set(id, [...((row['prev_events'] as string[] | null) ?? [])]);
    }
    return out;
  }

  async getEventStateGroups(eventIds: string[]): Promise<Map<string, { before: StateGroupId; after: StateGroupId }>> {
    this.ctx.checkOpen();
    const rows = await readEventRows(this.ctx, eventIds, 'event_id, state_before, state_after');
    const out = new Map<string, { before: number; after: number }>();
    for (const id of eventIds) {
      const row = rows.get(id);
      const before = row ? numOrNull(row['state_before']) : null;
      const after = row ? numOrNull(row['state_after']) : null;
      if (before !== null && after !== null) out.set(id, { before, after });
    }
    return out;
  }

  async getStateGroup(group: StateGroupId): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    return stateGroupEntries(this.ctx, group);
  }

  async getCurrentStateGroup(roomId: string): Promise<StateGroupId | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT current_group FROM room_heads WHERE room_id = ?', [roomId])).first();
    return row ? numOrNull(row['current_group']) : null;
  }

  async getStateAtEvent(eventId: string, when: 'before' | 'after'): Promise<StateEntry[] | null> {
    this.ctx.checkOpen();
    const g = (await this.getEventStateGroups([eventId])).get(eventId);
    return g ? stateGroupEntries(this.ctx, when === 'before' ? g.before : g.after) : null;
  }

  async getAuthChainDifference(roomId: string, stateSets: string[][]): Promise<Set<string>> {
    this.ctx.checkOpen();
    return authChainDifference(this.ctx, roomId, stateSets);
  }

  async getConflictedSubgraph(roomId: string, eventIds: string[]): Promise<Set<string>> {
    this.ctx.checkOpen();
    return conflictedSubgraph(this.ctx, roomId, eventIds);
  }

  async getTopologicalPositions(eventIds: string[]): Promise<Map<string, TopologicalPosition>> {
    this.ctx.checkOpen();
    const rows = await readEventRows(this.ctx, eventIds, 'event_id, depth, stream');
    const out = new Map<string, TopologicalPosition>();
    for (const [id, row] of rows) out.set(id, { depth: num(row['depth']), stream: num(row['stream']) });
    return out;
  }

  async getStateChanges(roomId: string, fromExclusive: number, toInclusive: number): Promise<StateEntry[]> {
    this.ctx.checkOpen();
    if (toInclusive <= fromExclusive) return [];
    const latest = new Map<string, StateEntry>();
    const q = 'SELECT type, state_key, event_id FROM state_changes WHERE room_id = ? AND bucket = ? AND stream > ? AND stream <= ?';
    for await (const bucket of roomBuckets(this.ctx, roomId, KIND_STATE, streamBucket(fromExclusive + 1), streamBucket(toInclusive), false)) {
      for await (const r of scan(this.ctx, q, [roomId, bucket, fromExclusive, toInclusive], 1000)) {
        const type = r['type'] as string;
        const stateKey = r['state_key'] as string;
        latest.set(`${type}\u0000${stateKey}`, { type, stateKey, eventId: r['event_id'] as string });
      }
    }
    // A key whose latest change is a removal has no entry to report.
    return [...latest.values()].filter((e) => e.eventId !== REMOVED).sort(byKey);
  }

  async getStateHistory(roomId: string, type: string, stateKey: string): Promise<Array<{ stream: number; eventId: string | null }>> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT stream, event_id FROM state_history WHERE room_id = ? AND type = ? AND state_key = ?', [
      roomId,
      type,
      stateKey,
    ]);
    return rows.map((r) => {
      const id = r['event_id'] as string;
      return { stream: num(r['stream']), eventId: id === REMOVED ? null : id };
    });
  }

  async getRoomEvents(query: RoomEventsQuery): Promise<StoredEvent[]> {
    this.ctx.checkOpen();
    return queryRoomEvents(this.ctx, query);
  }

  async getRoomsMaxStream(roomIds: string[]): Promise<Map<string, number>> {
    this.ctx.checkOpen();
    const unique = [...new Set(roomIds)];
    const maxes = await mapLimit(unique, 32, (r) => roomMaxStream(this.ctx, r));
    const out = new Map<string, number>();
    unique.forEach((r, i) => {
      const m = maxes[i];
      if (m !== null && m !== undefined) out.set(r, m);
    });
    return out;
  }

  async getMembership(roomId: string, userId: string): Promise<MembershipRecord | null> {
    this.ctx.checkOpen();
    return members.getMembership(this.ctx, roomId, userId);
  }

  async getRoomsForUser(userId: string, memberships?: Membership[]): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    return members.getRoomsForUser(this.ctx, userId, memberships);
  }

  async getMembershipChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    return members.getMembershipChanges(this.ctx, userId, fromExclusive, toInclusive);
  }

  async getRoomMembers(roomId: string, memberships: Membership[] = ['join']): Promise<MembershipRecord[]> {
    this.ctx.checkOpen();
    return members.getRoomMembers(this.ctx, roomId, memberships);
  }

  async forgetRoom(userId: string, roomId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('INSERT INTO forgotten_rooms (user_id, room_id, forgotten) VALUES (?, ?, true)', [userId, roomId]);
  }

  async isRoomForgotten(userId: string, roomId: string): Promise<boolean> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT forgotten FROM forgotten_rooms WHERE user_id = ? AND room_id = ?', [userId, roomId])).first();
    return row?.['forgotten'] === true;
  }

  async createAlias(alias: string, roomId: string, creator: string): Promise<void> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?) IF NOT EXISTS', [alias, roomId, creator]);
    if (!applied(rs)) throw new StoreConflictError(`alias ${alias} already exists`);
    await this.ctx.execute('INSERT INTO room_alias_index (room_id, alias) VALUES (?, ?)', [roomId, alias]);
  }

  async getAlias(alias: string): Promise<{ roomId: string; creator: string } | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT room_id, creator FROM room_aliases WHERE alias = ?', [alias])).first();
    return row ? { roomId: row['room_id'] as string, creator: row['creator'] as string } : null;
  }

  async deleteAlias(alias: string): Promise<boolean> {
    this.ctx.checkOpen();
    // The index row needs the alias's room, which a conditional delete does not return: read it,
    // then delete only if the alias still points there (it may be re-created in between).
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.ctx.execute('SELECT room_id FROM room_aliases WHERE alias = ?', [alias], { consistency: 0x0009 });
      const roomId = cur.first()?.['room_id'] as string | undefined;
      if (roomId === undefined) return false;
      const rs = await this.ctx.execute('DELETE FROM room_aliases WHERE alias = ? IF room_id = ?', [alias, roomId]);
      if (!applied(rs)) continue;
      await this.ctx.execute('DELETE FROM room_alias_index WHERE room_id = ? AND alias = ?', [roomId, alias]);
      return true;
    }
    throw new Error(`alias ${alias} changed under every delete attempt`);
  }

  async getAliasesForRoom(roomId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT alias FROM room_alias_index WHERE room_id = ?', [roomId]);
    const aliases = rows.map((r) => r['alias'] as string);
    // The index is written after the LWT that owns the alias: confirm each entry against it.
    const owners = await mapLimit(aliases, 16, async (a) => (await this.getAlias(a))?.roomId);
    return aliases.filter((a, i) => owners[i] === roomId);
  }

  async setRoomVisibility(roomId: string, visibility: 'public' | 'private'): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.batch([
      { query: 'INSERT INTO room_visibility (room_id, visibility) VALUES (?, ?)', params: [roomId, visibility] },
      visibility === 'public'
        ? { query: 'INSERT INTO public_rooms (shard, room_id) VALUES (0, ?)', params: [roomId] }
        : { query: 'DELETE FROM public_rooms WHERE shard = 0 AND room_id = ?', params: [roomId] },
    ]);
  }

  async getRoomVisibility(roomId: string): Promise<'public' | 'private'> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT visibility FROM room_visibility WHERE room_id = ?', [roomId])).first();
    return row?.['visibility'] === 'public' ? 'public' : 'private';
  }

  async listPublicRooms(): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT room_id FROM public_rooms WHERE shard = 0');
    return rows.map((r) => r['room_id'] as string);
  }
}
