// Memberships on Cassandra: the current membership is stored twice (per room for member lists,
// per user for a user's rooms), plus a per-user history keyed by stream for sync ranges.
// All three are written in the event's batch (events.ts); a member key dropped by state
// resolution deletes both current rows and records a leave at the resolving event, as on SQLite.

import type { Membership, MembershipRecord } from '../types.js';
import { num, type CassandraContext, type CqlStatement } from './context.js';
import type cassandra from 'cassandra-driver';

export function membershipStatements(roomId: string, userId: string, membership: string, eventId: string, pos: number): CqlStatement[] {
  return [
    {
      query: 'INSERT INTO memberships (room_id, user_id, membership, event_id, stream) VALUES (?, ?, ?, ?, ?)',
      params: [roomId, userId, membership, eventId, pos],
    },
    {
      query: 'INSERT INTO user_memberships (user_id, room_id, membership, event_id, stream) VALUES (?, ?, ?, ?, ?)',
      params: [userId, roomId, membership, eventId, pos],
    },
    {
      query: 'INSERT INTO membership_history (user_id, stream, room_id, membership, event_id) VALUES (?, ?, ?, ?, ?)',
      params: [userId, pos, roomId, membership, eventId],
    },
  ];
}

export function removeMembershipStatements(roomId: string, userId: string, eventId: string, pos: number): CqlStatement[] {
  return [
    { query: 'DELETE FROM memberships WHERE room_id = ? AND user_id = ?', params: [roomId, userId] },
    { query: 'DELETE FROM user_memberships WHERE user_id = ? AND room_id = ?', params: [userId, roomId] },
    {
      query: `INSERT INTO membership_history (user_id, stream, room_id, membership, event_id) VALUES (?, ?, ?, 'leave', ?)`,
      params: [userId, pos, roomId, eventId],
    },
  ];
}

function toRecord(r: cassandra.types.Row): MembershipRecord {
  return {
    roomId: r['room_id'] as string,
    userId: r['user_id'] as string,
    membership: r['membership'] as Membership,
    eventId: r['event_id'] as string,
    stream: num(r['stream']),
  };
}

export async function getMembership(ctx: CassandraContext, roomId: string, userId: string): Promise<MembershipRecord | null> {
  const row = (
    await ctx.execute('SELECT room_id, user_id, membership, event_id, stream FROM memberships WHERE room_id = ? AND user_id = ?', [roomId, userId])
  ).first();
  return row ? toRecord(row) : null;
}

export async function getRoomsForUser(ctx: CassandraContext, userId: string, memberships?: Membership[]): Promise<MembershipRecord[]> {
  if (memberships !== undefined && memberships.length === 0) return [];
  const rows = await ctx.all('SELECT room_id, user_id, membership, event_id, stream FROM user_memberships WHERE user_id = ?', [userId]);
  const keep = memberships ? new Set<string>(memberships) : null;
  return rows.map(toRecord).filter((m) => keep === null || keep.has(m.membership));
}

export async function getRoomMembers(ctx: CassandraContext, roomId: string, memberships: Membership[]): Promise<MembershipRecord[]> {
  if (memberships.length === 0) return [];
  const rows = await ctx.all('SELECT room_id, user_id, membership, event_id, stream FROM memberships WHERE room_id = ?', [roomId]);
  const keep = new Set<string>(memberships);
  return rows.map(toRecord).filter((m) => keep.has(m.membership));
}

/** The user's own membership changes in (from, to], latest per room, ordered by stream. */
export async function getMembershipChanges(ctx: CassandraContext, userId: string, fromExclusive: number, toInclusive: number): Promise<MembershipRecord[]> {
  if (toInclusive <= fromExclusive) return [];
  const rows = await ctx.all(
    'SELECT room_id, user_id, membership, event_id, stream FROM membership_history WHERE user_id = ? AND stream > ? AND stream <= ?',
    [userId, fromExclusive, toInclusive],
  );
  const latest = new Map<string, MembershipRecord>();
  for (const r of rows) latest.set(r['room_id'] as string, toRecord(r));
  return [...latest.values()].sort((a, b) => a.stream - b.stream);
}
