// The statements of step 6 of Cassandra's persistEvent (events.ts's header): the event row and
// its timeline rows, and what an accepted, non-backfilled event changes besides itself
// (redaction, state, memberships, the room head, the write hooks). Invariants: liveStatements
// makes every check (state entries and extremities are not outliers, soft-failed or rejected;
// member events carry a valid membership) before it appends a statement, so a failing check
// leaves the batch as it was; the room's new current state shares the event's after-group when
// the event extends the only extremity, and gets a group of its own after a fork; nothing here
// is sent: events.ts sends the batch.

import type cassandra from 'cassandra-driver';
import type { PreparedEvent } from '../sqlite/events.js';
import type { Membership, PersistEventInput, RoomRecord } from '../types.js';
import { jsonParse, type CassandraContext, type CqlStatement } from './context.js';
import { depthBucket, KIND_STATE, KIND_TIMELINE, KIND_TOPO, mapLimit, streamBucket } from './rooms-util.js';
import { removalChanges, type GroupBuilder, type StateChange } from './state-groups.js';
import { membershipStatements, removeMembershipStatements } from './memberships.js';

const MEMBERSHIPS: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'leave', 'ban', 'knock']);
/** Memberships that bring a room back into the user's view, undoing an earlier forget. */
const UNFORGETTING: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'knock']);
/** state_history/state_changes event_id for a key removed at that position. */
export const REMOVED = '';

const MAX_DEPTH = Number.MAX_SAFE_INTEGER;

/** The event row (its prev_events list is the DAG edge: no reverse index) and (accepted events) its timeline rows. */
export function eventStatements(
  ev: PreparedEvent,
  pos: number,
  before: number | null,
  after: number | null,
  chain: { chain: number; seq: number } | undefined,
): CqlStatement[] {
  const accepted = ev.status === 'accepted';
  // bigint column: a PDU depth that is not a safe integer (never valid Matrix JSON) is floored
  // and clamped rather than failing the write.
  const depth = Number.isSafeInteger(ev.depth) ? ev.depth : Math.max(-MAX_DEPTH, Math.min(MAX_DEPTH, Math.floor(ev.depth) || 0));
  const out: CqlStatement[] = [
    {
      query: `INSERT INTO events (event_id, room_id, stream, type, state_key, sender, pdu_json, txn_device, txn_id, depth,
                outlier, soft_failed, rejected, state_before, state_after, prev_events, chain_id, chain_seq)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      params: [
        ev.eventId,
        ev.roomId,
        pos,
        ev.type,
        ev.stateKey ?? undefined,
        ev.sender,
        ev.pduJson,
        accepted ? ev.txn?.deviceId : undefined,
        accepted ? ev.txn?.txnId : undefined,
        depth,
        ev.status === 'outlier',
        ev.status === 'soft_failed',
        ev.rejected ?? undefined,
        before ?? undefined,
        after ?? undefined,
        [...new Set(ev.prevEvents)].sort(),
        chain?.chain,
        chain?.seq,
      ],
    },
  ];
  if (accepted) {
    const b = streamBucket(pos);
    const d = depthBucket(depth);
    out.push(
      {
        query: 'INSERT INTO room_timeline (room_id, bucket, stream, event_id, type, sender) VALUES (?, ?, ?, ?, ?, ?)',
        params: [ev.roomId, b, pos, ev.eventId, ev.type, ev.sender],
      },
      { query: 'INSERT INTO room_buckets (room_id, kind, bucket) VALUES (?, ?, ?)', params: [ev.roomId, KIND_TIMELINE, b] },
      {
        query: 'INSERT INTO room_topo (room_id, bucket, depth, stream, event_id, type, sender) VALUES (?, ?, ?, ?, ?, ?, ?)',
        params: [ev.roomId, d, depth, pos, ev.eventId, ev.type, ev.sender],
      },
      { query: 'INSERT INTO room_buckets (room_id, kind, bucket) VALUES (?, ?, ?)', params: [ev.roomId, KIND_TOPO, d] },
    );
  }
  return out;
}

/**
 * What an accepted, non-backfilled event changes besides itself: redaction, state, memberships,
 * room head. Appends to `batch`; returns the hook statements.
 */
export async function liveStatements(
  ctx: CassandraContext,
  /** The event's room record, for the hooks (read only when a hook is registered). */
  roomOf: () => Promise<RoomRecord>,
  ev: PreparedEvent,
  pos: number,
  rows: Map<string, cassandra.types.Row>,
  previous: number | null,
  after: number,
  own: StateChange[],
  groups: GroupBuilder,
  hookInput: PersistEventInput,
  batch: CqlStatement[],
): Promise<CqlStatement[]> {
  const { eventId, roomId } = ev;
  // Checks first (they throw), statements after.
  const memberships = new Map<string, string>();
  for (const entry of ev.stateDelta) {
    const row = entry.eventId === eventId ? undefined : rows.get(entry.eventId);
    if (row && (row['soft_failed'] === true || isRejected(row))) {
      throw new Error(`state entry ${entry.eventId} is an outlier, soft-failed or rejected event`);
    }
    if (entry.type === 'm.room.member') {
      let membership: unknown;
      if (entry.eventId === eventId) membership = ev.ownMembership;
      else if (!row) throw new Error(`state delta names unknown member event ${entry.eventId}`);
      else membership = jsonParse<{ content: { membership?: unknown } }>(row['pdu_json'] as string).content.membership;
      if (typeof membership !== 'string' || !MEMBERSHIPS.has(membership)) {
        throw new Error(`member event ${entry.eventId} has invalid membership ${JSON.stringify(membership)}`);
      }
      memberships.set(entry.stateKey, membership);
    }
  }
  for (const id of ev.forwardExtremities) {
    const row = id === eventId ? undefined : rows.get(id);
    if (row && (row['outlier'] === true || row['soft_failed'] === true || isRejected(row))) {
      throw new Error(`forward extremity ${id} is an outlier, soft-failed or rejected event`);
    }
  }

  // Un-forgetting needs to know which users forgot the room (a row rewritten only when set).
  const unforget = [...memberships].filter(([, m]) => UNFORGETTING.has(m)).map(([u]) => u);
  const forgotten = await mapLimit(
    unforget,
    64,
    async (u) => {
      const r = (await ctx.execute('SELECT forgotten FROM forgotten_rooms WHERE user_id = ? AND room_id = ?', [u, roomId])).first();
      return r?.['forgotten'] === true ? u : null;
    },
  );
  const forgottenUsers = new Set(forgotten.filter((u): u is string => u !== null));

  if (ev.redaction) {
    const target = rows.get(ev.redaction.targetEventId);
    // Scoped to the room; an UPDATE of a missing row would create one, so only stored targets.
    if (target && target['room_id'] === roomId) {
      batch.push({
        query: 'UPDATE events SET pdu_json = ?, redacted_by = ? WHERE event_id = ?',
        params: [ev.redaction.redactedPduJson, eventId, ev.redaction.targetEventId],
      });
    }
  }

  const b = streamBucket(pos);
  let stateRows = false;
  for (const entry of ev.stateDelta) {
    stateRows = true;
    batch.push(
      {
        query: 'INSERT INTO state_history (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)',
        params: [roomId, entry.type, entry.stateKey, pos, entry.eventId],
      },
      {
        query: 'INSERT INTO state_changes (room_id, bucket, stream, type, state_key, event_id) VALUES (?, ?, ?, ?, ?, ?)',
        params: [roomId, b, pos, entry.type, entry.stateKey, entry.eventId],
      },
      {
        query: 'INSERT INTO current_state (room_id, type, state_key, event_id, stream) VALUES (?, ?, ?, ?, ?)',
        params: [roomId, entry.type, entry.stateKey, entry.eventId, pos],
      },
    );
    if (entry.type === 'm.room.member') {
      const membership = memberships.get(entry.stateKey) as string;
      batch.push(...membershipStatements(roomId, entry.stateKey, membership, entry.eventId, pos));
      if (forgottenUsers.has(entry.stateKey)) {
        batch.push({
          query: 'INSERT INTO forgotten_rooms (user_id, room_id, forgotten) VALUES (?, ?, false)',
          params: [entry.stateKey, roomId],
        });
      }
    }
  }
  for (const gone of ev.stateRemoved) {
    stateRows = true;
    batch.push(
      { query: 'DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?', params: [roomId, gone.type, gone.stateKey] },
      {
        query: 'INSERT INTO state_history (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)',
        params: [roomId, gone.type, gone.stateKey, pos, REMOVED],
      },
      {
        query: 'INSERT INTO state_changes (room_id, bucket, stream, type, state_key, event_id) VALUES (?, ?, ?, ?, ?, ?)',
        params: [roomId, b, pos, gone.type, gone.stateKey, REMOVED],
      },
    );
    if (gone.type === 'm.room.member') batch.push(...removeMembershipStatements(roomId, gone.stateKey, eventId, pos));
  }

  // The common case (the event extends the only extremity) shares the event's own after-group
  // as the room's new current state; a resolution after a fork gets a group of its own.
  const removals = removalChanges(ev.stateRemoved);
  const linear =
    (ev.stateBefore === null || (ev.stateBefore.group === previous && ev.stateBefore.delta.length === 0 && previous !== null)) &&
    removals.length === 0 &&
    ev.stateDelta.length === own.length &&
    ev.stateDelta.every((e, i) => e.type === own[i]!.type && e.stateKey === own[i]!.stateKey && e.eventId === own[i]!.eventId);
  const roomState = linear
    ? after
    : previous === null
      ? await groups.create(null, ev.stateDelta)
      : await groups.create(previous, [...ev.stateDelta, ...removals]);
  if (roomState !== previous) {
    stateRows = true;
    batch.push({ query: 'INSERT INTO state_log (room_id, bucket, stream, group_id) VALUES (?, ?, ?, ?)', params: [roomId, b, pos, roomState] });
  }
  if (stateRows) batch.push({ query: 'INSERT INTO room_buckets (room_id, kind, bucket) VALUES (?, ?, ?)', params: [roomId, KIND_STATE, b] });
  batch.push({
    query: 'INSERT INTO room_heads (room_id, extremities, current_group) VALUES (?, ?, ?)',
    params: [roomId, [...new Set(ev.forwardExtremities)], roomState],
  });

  const hooks: CqlStatement[] = [];
  if (ctx.eventHooks.length > 0) {
    const room = await roomOf();
    for (const hook of ctx.eventHooks) {
      hooks.push(...(await hook.forEvent(hookInput, pos, room)));
      if (ev.redaction && hook.forRedaction) hooks.push(...(await hook.forRedaction(roomId, ev.redaction.targetEventId, pos)));
    }
  }
  return hooks;
}


export function isRejected(row: cassandra.types.Row | undefined): boolean {
  const r = row?.['rejected'];
  return r !== null && r !== undefined;
}
