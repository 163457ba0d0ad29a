// Event persistence (run inside the write queue's batch transaction) and event/timeline reads.
//
// Invariants kept here, whatever the caller passes:
// - Every event's DAG edges are stored; state events that are not rejected get an auth chain
//   index position (dag.ts).
// - Outliers (and rejected events stored without a state) have no state groups; every other
//   event has state_before/state_after groups.
// - Every inserted event with searchable text (search-text.ts) gets its event_search row in the
//   same transaction, whatever its status (search reads filter by status).
// - Only accepted events change the room's current state, extremities, memberships, relations,
//   push actions or redactions, and only they are returned by timeline reads.
// - A rejected, soft-failed or outlier event is never put into the current state or the forward
//   extremities, and an accepted event may not cite a rejected auth event: such a write throws.

import type { Pdu } from '../../protocol/types.js';
import { referencedIds, roomIdOf } from '../../protocol/events.js';
import type { EventChange } from '../change-types.js';
import {
  StoreConflictError,
  type Membership,
  type PersistEventInput,
  type RoomEventsQuery,
  type RoomRecord,
  type StoredEvent,
  type TopologicalPosition,
} from '../types.js';
import { jsonParse, type SqliteContext } from './context.js';
import { preparePushActions, preparePushBulk, writePushActions, writePushBulk, type PreparedPushAction, type PreparedPushBulk } from './notifications.js';
import { dropRelation, extractRelation, writeRelation, type PreparedRelation } from './relations.js';
import { indexAuthChain } from './dag.js';
import { createStateGroup, type StateChange } from './state-groups.js';
import { searchText } from './search-text.js';

const MEMBERSHIPS: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'leave', 'ban', 'knock']);
/** Memberships that bring a room back into the user's view, undoing an earlier forget. */
const UNFORGETTING: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'knock']);

export const EVENT_COLUMNS = 'stream, event_id, room_id, pdu_json, redacted_by, txn_device, txn_id, outlier, soft_failed, rejected';
/** The filter every timeline read applies; it matches the partial indexes of migration 7. */
export const TIMELINE = 'outlier = 0 AND soft_failed = 0 AND rejected IS NULL';

export interface EventRow {
  stream: number;
  event_id: string;
  room_id: string;
  pdu_json: string;
  redacted_by: string | null;
  txn_device: string | null;
  txn_id: string | null;
  outlier: number;
  soft_failed: number;
  rejected: string | null;
}

export function toStoredEvent(row: EventRow): StoredEvent {
  return {
    eventId: row.event_id,
    roomId: row.room_id,
    stream: row.stream,
    pdu: jsonParse<Pdu>(row.pdu_json),
    redactedBy: row.redacted_by,
    txn: row.txn_device !== null && row.txn_id !== null ? { deviceId: row.txn_device, txnId: row.txn_id } : null,
    outlier: row.outlier !== 0,
    softFailed: row.soft_failed !== 0,
    rejected: row.rejected,
  };
}

/** Everything writeEvent needs, captured when the write is queued so later caller mutation cannot leak in. */
export interface PreparedEvent {
  eventId: string;
  dependsOn: string | null;
  roomId: string;
  type: string;
  stateKey: string | null;
  sender: string;
  pduJson: string;
  /** The room record written with the event (PersistEventInput.createsRoom). */
  createsRoom: RoomRecord | null;
  /** content.membership of this event itself (used when its own state delta names it). */
  ownMembership: unknown;
  stateDelta: { type: string; stateKey: string; eventId: string }[];
  stateRemoved: { type: string; stateKey: string }[];
  forwardExtremities: string[];
  txn: { userId: string; deviceId: string; txnId: string; scope?: string } | null;
  redaction: { targetEventId: string; redactedPduJson: string } | null;
  relation: PreparedRelation | null;
  pushActions: PreparedPushAction[];
  pushBulk: PreparedPushBulk | null;
  originServerTs: number;
  depth: number;
  prevEvents: string[];
  authEvents: string[];
  status: 'accepted' | 'outlier' | 'soft_failed' | 'rejected';
  rejected: string | null;
  stateBefore: { group: number | null; delta: StateChange[] } | null;
  backfill: boolean;
  /** The event's searchable text and the content key it came from (searchText), or null. */
  search: { body: string; key: string } | null;
}

export function prepareEvent(input: PersistEventInput): PreparedEvent {
  const { pdu } = input;
  return {
    eventId: input.eventId,
    roomId: roomIdOf(pdu, input.eventId),
    type: pdu.type,
    stateKey: pdu.state_key ?? null,
    sender: pdu.sender,
    pduJson: JSON.stringify(pdu),
    createsRoom: input.createsRoom ? { ...input.createsRoom } : null,
    ownMembership: pdu.content.membership,
    stateDelta: input.stateDelta.map((e) => ({ type: e.type, stateKey: e.stateKey, eventId: e.eventId })),
    stateRemoved: (input.stateRemoved ?? []).map((e) => ({ type: e.type, stateKey: e.stateKey })),
    forwardExtremities: [...input.forwardExtremities],
    dependsOn: input.dependsOn ?? null,
    txn: input.txn ? { ...input.txn } : null,
    redaction: input.redaction
      ? { targetEventId: input.redaction.targetEventId, redactedPduJson: JSON.stringify(input.redaction.redactedPdu) }
      : null,
    relation: extractRelation(pdu.content),
    pushActions: preparePushActions(input.pushActions),
    pushBulk: preparePushBulk(input.pushBulk),
    originServerTs: pdu.origin_server_ts,
    depth: typeof pdu.depth === 'number' ? pdu.depth : 0,
    prevEvents: referencedIds(pdu.prev_events),
    authEvents: referencedIds(pdu.auth_events),
    status: input.rejected !== undefined ? 'rejected' : input.outlier ? 'outlier' : input.softFailed ? 'soft_failed' : 'accepted',
    rejected: input.rejected ?? null,
    stateBefore:
      input.stateBefore && !input.outlier
        ? { group: input.stateBefore.group, delta: input.stateBefore.delta.map((e) => ({ type: e.type, stateKey: e.stateKey, eventId: e.eventId })) }
        : null,
    backfill: input.backfill === true,
    search: searchText(pdu),
  };
}

/** The completion hook's record of a persisted event (see change-types.ts). */
export function eventChange(ev: PreparedEvent, pos: number): EventChange {
  return {
    kind: 'event',
    stream: pos,
    roomId: ev.roomId,
    eventId: ev.eventId,
    pduJson: ev.pduJson,
    txn: ev.txn ? { deviceId: ev.txn.deviceId, txnId: ev.txn.txnId } : null,
    stateDelta: ev.stateDelta.map((e) => ({ ...e })),
    stateRemoved: ev.stateRemoved.map((e) => ({ ...e })),
    redaction: ev.redaction ? { ...ev.redaction } : null,
    relatesTo: ev.relation?.relatesTo ?? null,
    sender: ev.sender,
    push: {
      actions: ev.pushActions.map((a) => ({ userId: a.userId, notify: a.notify !== 0, highlight: a.highlight !== 0, threadId: a.threadId })),
      bulk: ev.pushBulk
        ? {
            notify: ev.pushBulk.notify !== 0,
            highlight: ev.pushBulk.highlight !== 0,
            threadId: ev.pushBulk.threadId,
            except: JSON.parse(ev.pushBulk.exceptJson) as string[],
          }
        : null,
    },
  };
}

/** The position a backfilled event gets: below every stored event, never a stream position. */
export function nextBackfillPosition(ctx: SqliteContext): number {
  const row = ctx.stmt('SELECT MIN(stream) AS m FROM events').get() as { m: number | null };
  return Math.min(row.m ?? 0, 0) - 1;
}

/**
 * The first of `ids` that was rejected, if any (one query: auth_events has at most 10 entries).
 * Through the partial index of rejected events (migration 25), named because without ANALYZE
 * statistics the planner takes the unique event_id index and reads each events row.
 */
function firstRejected(ctx: SqliteContext, ids: readonly string[]): string | undefined {
  if (ids.length === 0) return undefined;
  const row = ctx
    .stmt(`SELECT event_id FROM events INDEXED BY events_rejected WHERE event_id IN (${placeholders(ids.length)}) AND rejected IS NOT NULL LIMIT 1`)
    .get(...ids) as { event_id: string } | undefined;
  return row?.event_id;
}

/** "?, ?, ?" for n parameters; the strings for the usual counts are made once. */
function placeholders(n: number): string {
  return PLACEHOLDERS[n] ?? Array.from({ length: n }, () => '?').join(', ');
}
const PLACEHOLDERS = Array.from({ length: 11 }, (_, n) => Array.from({ length: n }, () => '?').join(', '));

/**
 * Forward extremities must be timeline events. State entries may also be outliers: a room joined
 * over federation gets its state as outliers (the send_join answer, whose prev events we never
 * see), but never soft-failed or rejected events.
 */
function assertTimelineEvent(ctx: SqliteContext, eventId: string, what: string, allowOutlier = false): void {
  const row = ctx.stmt('SELECT outlier, soft_failed, rejected FROM events WHERE event_id = ?').get(eventId) as
    | { outlier: number; soft_failed: number; rejected: string | null }
    | undefined;
  if (row && ((row.outlier !== 0 && !allowOutlier) || row.soft_failed !== 0 || row.rejected !== null)) {
    throw new Error(`${what} ${eventId} is an outlier, soft-failed or rejected event`);
  }
}

function currentGroup(ctx: SqliteContext, roomId: string): number | null {
  const row = ctx.stmt('SELECT group_id FROM room_current_group WHERE room_id = ?').get(roomId) as { group_id: number } | undefined;
  return row ? row.group_id : null;
}

/**
 * Writes one event with everything that must be atomic with it. Runs inside a savepoint, so
 * throwing undoes every statement made here and nothing else in the batch.
 */
export function writeEvent(
  ctx: SqliteContext,
  ev: PreparedEvent,
  pos: number,
): { stateGroupBefore: number | null; stateGroupAfter: number | null } {
  const { eventId, roomId } = ev;
  const accepted = ev.status === 'accepted';
  if (ev.createsRoom !== null) {
    // Inside the event's savepoint: a conflict here leaves neither the record nor the event.
    const room = ev.createsRoom;
    if (room.roomId !== roomId) throw new Error(`createsRoom names ${room.roomId}, the event is in ${roomId}`);
    const res = ctx
      .stmt('INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
      .run(room.roomId, room.roomVersion, room.creator, room.createdTs);
    if (res.changes === 0) throw new StoreConflictError(`room ${room.roomId} already exists`);
  }
  if (ev.dependsOn !== null && ctx.stmt('SELECT 1 FROM events WHERE event_id = ? AND room_id = ?').get(ev.dependsOn, roomId) === undefined) {
    throw new StoreConflictError(`event ${eventId} depends on ${ev.dependsOn}, which is not stored`);
  }

  if (ev.txn && accepted) {
    const { userId, deviceId, txnId } = ev.txn;
    const res = ctx
      .stmt(
        `INSERT INTO event_txns (room_id, user_id, device_id, scope, txn_id, event_id) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
      )
      .run(roomId, userId, deviceId, ev.txn.scope ?? '', txnId, eventId);
    if (res.changes === 0) {
      throw new StoreConflictError(`transaction ${txnId} of ${userId}/${deviceId} in ${roomId} already used`);
    }
  }

  // A plain timeline event (accepted, no state of its own, extending the current state: most
  // messages) changes no state group: its before, after and room state are the room's current
  // group, known now, so the row is inserted complete and the room's group row left as it is.
  const plain = accepted && !ev.backfill && ev.stateKey === null && ev.stateBefore === null && ev.stateDelta.length === 0 && ev.stateRemoved.length === 0;
  const plainGroup = plain ? currentGroup(ctx, roomId) : null;
  const inserted = ctx
    .stmt(
      `INSERT INTO events (stream, event_id, room_id, type, state_key, sender, pdu_json, redacted_by, txn_device, txn_id,
                           depth, outlier, soft_failed, rejected, state_before, state_after, room_state)
       VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
    )
    .run(
      pos,
      eventId,
      roomId,
      ev.type,
      ev.stateKey,
      ev.sender,
      ev.pduJson,
      accepted ? (ev.txn?.deviceId ?? null) : null,
      accepted ? (ev.txn?.txnId ?? null) : null,
      ev.depth,
      ev.status === 'outlier' ? 1 : 0,
      ev.status === 'soft_failed' ? 1 : 0,
      ev.rejected,
      plainGroup,
      plainGroup,
      plainGroup,
    );
  if (inserted.changes === 0) throw new StoreConflictError(`event ${eventId} already persisted`);
  if (ev.search !== null) {
    // Every inserted row, whatever its status, as the insert trigger did: search reads filter.
    ctx.stmt('INSERT INTO event_search (rowid, body, room_id, key) VALUES (?, ?, ?, ?)').run(pos, ev.search.body, roomId, ev.search.key);
  }

  if (ev.status !== 'rejected') {
    const bad = firstRejected(ctx, ev.authEvents);
    if (bad !== undefined) throw new Error(`event ${eventId} cites rejected auth event ${bad}`);
    if (ev.stateKey !== null) indexAuthChain(ctx.stmt, eventId, ev.authEvents);
  }
  // A rejected event that never got as far as the state check has no meaningful state either.
  if (ev.status === 'outlier' || (ev.status === 'rejected' && ev.stateBefore === null)) {
    return { stateGroupBefore: null, stateGroupAfter: null };
  }

  const previous = plainGroup ?? currentGroup(ctx, roomId);
  let before: number;
  if (ev.stateBefore) before = createStateGroup(ctx.stmt, roomId, ev.stateBefore.group, ev.stateBefore.delta);
  else before = previous ?? createStateGroup(ctx.stmt, roomId, null, []);
  const own: StateChange[] = ev.stateKey !== null && ev.status !== 'rejected' ? [{ type: ev.type, stateKey: ev.stateKey, eventId }] : [];
  const after = createStateGroup(ctx.stmt, roomId, before, own);
  if (!accepted || ev.backfill) {
    ctx.stmt('UPDATE events SET state_before = ?, state_after = ? WHERE event_id = ?').run(before, after, eventId);
    return { stateGroupBefore: before, stateGroupAfter: after };
  }

  if (ev.redaction) {
    // Scoped to the room: a redaction can never reach into another room's events.
    ctx
      .stmt('UPDATE events SET pdu_json = ?, redacted_by = ? WHERE event_id = ? AND room_id = ?')
      .run(ev.redaction.redactedPduJson, eventId, ev.redaction.targetEventId, roomId);
    dropRelation(ctx, roomId, ev.redaction.targetEventId);
  }

  if (ev.relation) writeRelation(ctx, ev, ev.relation, pos);
  writePushActions(ctx, roomId, eventId, pos, ev.originServerTs, ev.pushActions);
  writePushBulk(ctx, roomId, eventId, ev.sender, pos, ev.originServerTs, ev.pushBulk);

  const history = ctx.stmt(
    `INSERT INTO state_history (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT DO UPDATE SET event_id = excluded.event_id`,
  );
  const current = ctx.stmt(
    `INSERT INTO current_state (room_id, type, state_key, event_id, stream) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT DO UPDATE SET event_id = excluded.event_id, stream = excluded.stream`,
  );
  for (const entry of ev.stateDelta) {
    if (entry.eventId !== eventId) assertTimelineEvent(ctx, entry.eventId, 'state entry', true);
    history.run(roomId, entry.type, entry.stateKey, pos, entry.eventId);
    current.run(roomId, entry.type, entry.stateKey, entry.eventId, pos);
    if (entry.type === 'm.room.member') {
      // State resolution may put an older member event back into the state, so the membership
      // comes from whichever event the delta names, not necessarily the one being persisted.
      const membership = entry.eventId === eventId ? ev.ownMembership : loadMembership(ctx, entry.eventId);
      writeMembership(ctx, roomId, entry.stateKey, membership, entry.eventId, pos);
    }
  }
  for (const gone of ev.stateRemoved) {
    ctx.stmt('DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?').run(roomId, gone.type, gone.stateKey);
    // state_history.event_id is NOT NULL (it predates removals): '' records "no value from here".
    history.run(roomId, gone.type, gone.stateKey, pos, REMOVED);
    if (gone.type === 'm.room.member') removeMembership(ctx, roomId, gone.stateKey, eventId, pos);
  }
  const removals: StateChange[] = ev.stateRemoved.map((e) => ({ type: e.type, stateKey: e.stateKey, eventId: null }));

  // The common case (the event extends the only extremity) shares the event's own after-group
  // as the room's new current state; a resolution after a fork gets a group of its own.
  const linear =
    (ev.stateBefore === null || (ev.stateBefore.group === previous && ev.stateBefore.delta.length === 0 && previous !== null)) &&
    removals.length === 0 &&
    ev.stateDelta.length === own.length &&
    ev.stateDelta.every((e, i) => e.type === own[i].type && e.stateKey === own[i].stateKey && e.eventId === own[i].eventId);
  const roomState = linear
    ? after
    : previous === null
      ? createStateGroup(ctx.stmt, roomId, null, ev.stateDelta)
      : createStateGroup(ctx.stmt, roomId, previous, [...ev.stateDelta, ...removals]);
  if (plainGroup === null) {
    // One UPDATE of the row just inserted for all three groups (nothing above reads them back).
    ctx.stmt('UPDATE events SET state_before = ?, state_after = ?, room_state = ? WHERE event_id = ?').run(before, after, roomState, eventId);
    ctx
      .stmt('INSERT INTO room_current_group (room_id, group_id) VALUES (?, ?) ON CONFLICT DO UPDATE SET group_id = excluded.group_id')
      .run(roomId, roomState);
  } else if (before !== plainGroup || after !== plainGroup || roomState !== plainGroup) {
    throw new Error(`plain event ${eventId} changed the state group`); // unreachable: the three are derived from it
  }

  ctx.stmt('DELETE FROM forward_extremities WHERE room_id = ?').run(roomId);
  const extremity = ctx.stmt('INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING');
  for (const id of ev.forwardExtremities) {
    if (id !== eventId) assertTimelineEvent(ctx, id, 'forward extremity');
    extremity.run(roomId, id);
  }
  return { stateGroupBefore: before, stateGroupAfter: after };
}

function loadMembership(ctx: SqliteContext, eventId: string): unknown {
  const row = ctx.stmt('SELECT pdu_json FROM events WHERE event_id = ?').get(eventId) as { pdu_json: string } | undefined;
  if (!row) throw new Error(`state delta names unknown member event ${eventId}`);
  return jsonParse<Pdu>(row.pdu_json).content.membership;
}

/**
 * A member key dropped by state resolution: the user has no membership row. The history records
 * it as a leave at the resolving event, because membership_history readers ask "joined at S?"
 * and its event_id column cannot be empty.
 */
/** state_history's event_id for a key removed at that position (see getStateHistory). */
export const REMOVED = '';

function removeMembership(ctx: SqliteContext, roomId: string, userId: string, eventId: string, pos: number): void {
  ctx.stmt('DELETE FROM memberships WHERE room_id = ? AND user_id = ?').run(roomId, userId);
  ctx
    .stmt(
      `INSERT INTO membership_history (user_id, stream, room_id, membership, event_id) VALUES (?, ?, ?, 'leave', ?)
       ON CONFLICT DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id`,
    )
    .run(userId, pos, roomId, eventId);
}

function writeMembership(ctx: SqliteContext, roomId: string, userId: string, membership: unknown, eventId: string, pos: number): void {
  if (typeof membership !== 'string' || !MEMBERSHIPS.has(membership)) {
    throw new Error(`member event ${eventId} has invalid membership ${JSON.stringify(membership)}`);
  }
  ctx
    .stmt(
      `INSERT INTO memberships (room_id, user_id, membership, event_id, stream) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id, stream = excluded.stream`,
    )
    .run(roomId, userId, membership, eventId, pos);
  ctx
    .stmt(
      `INSERT INTO membership_history (user_id, stream, room_id, membership, event_id) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id`,
    )
    .run(userId, pos, roomId, membership, eventId);
  if (UNFORGETTING.has(membership)) {
    ctx.stmt('DELETE FROM forgotten_rooms WHERE user_id = ? AND room_id = ?').run(userId, roomId);
  }
}

export function getEventRow(ctx: SqliteContext, eventId: string): EventRow | undefined {
  return ctx.stmt(`SELECT ${EVENT_COLUMNS} FROM events WHERE event_id = ?`).get(eventId) as EventRow | undefined;
}

/** Escapes a Matrix filter pattern for GLOB: only '*' stays a wildcard; GLOB is case-sensitive like Matrix. */
function toGlob(pattern: string): string {
  return pattern.replace(/[?[]/g, (c) => `[${c}]`);
}

/** SQL condition matching `type` against Matrix filter entries ('*' is a wildcard). */
export function typeCondition(types: string[], params: unknown[]): string {
  const exact = types.filter((t) => !t.includes('*'));
  const globs = types.filter((t) => t.includes('*'));
  const parts: string[] = [];
  if (exact.length > 0) {
    parts.push(`type IN (${exact.map(() => '?').join(', ')})`);
    params.push(...exact);
  }
  for (const g of globs) {
    parts.push('type GLOB ?');
    params.push(toGlob(g));
  }
  return parts.length > 0 ? `(${parts.join(' OR ')})` : '0';
}

export function queryRoomEvents(ctx: SqliteContext, q: RoomEventsQuery): StoredEvent[] {
  const limit = Math.floor(q.limit);
  if (!(limit > 0)) return [];
  const where = ['room_id = ?', TIMELINE];
  const params: unknown[] = [q.roomId];
  const topo = q.order === 'topological';
  // Row values compare (depth, stream) lexicographically and use the (room_id, depth, stream) index.
  const bound = (op: string, stream: number, pos: TopologicalPosition | undefined): void => {
    if (topo && pos) {
      where.push(`(depth, stream) ${op} (?, ?)`);
      params.push(pos.depth, pos.stream);
    } else {
      where.push(`stream ${op} ?`);
      params.push(stream);
    }
  };
  if (q.dir === 'b') {
    bound('<=', q.from, q.fromTopo);
    if (q.to !== undefined || (topo && q.toTopo)) bound('>', q.to ?? 0, q.toTopo);
  } else {
    bound('>', q.from, q.fromTopo);
    if (q.to !== undefined || (topo && q.toTopo)) bound('<=', q.to ?? 0, q.toTopo);
  }
  if (q.maxStream !== undefined) {
    where.push('stream <= ?');
    params.push(q.maxStream);
  }
  // An explicitly empty allow-list matches nothing, as in Matrix filters.
  if (q.types !== undefined) where.push(typeCondition(q.types, params));
  if (q.notTypes !== undefined && q.notTypes.length > 0) where.push(`NOT ${typeCondition(q.notTypes, params)}`);
  if (q.senders !== undefined) {
    if (q.senders.length === 0) where.push('0');
    else {
      where.push(`sender IN (${q.senders.map(() => '?').join(', ')})`);
      params.push(...q.senders);
    }
  }
  if (q.notSenders !== undefined && q.notSenders.length > 0) {
    where.push(`sender NOT IN (${q.notSenders.map(() => '?').join(', ')})`);
    params.push(...q.notSenders);
  }
  params.push(limit);
  const d = q.dir === 'b' ? 'DESC' : 'ASC';
  // Topological pages walk the (room, depth, stream) index in order even when bounded by a
  // stream token; left to itself SQLite would pick the stream index and sort the whole room.
  const sql = `SELECT ${EVENT_COLUMNS} FROM events ${topo ? 'INDEXED BY events_room_topo' : ''} WHERE ${where.join(' AND ')}
               ORDER BY ${topo ? `depth ${d}, stream ${d}` : `stream ${d}`} LIMIT ?`;
  const rows = ctx.stmt(sql).all(...params) as EventRow[];
  return rows.map(toStoredEvent);
}
