// persistEvent on Cassandra: one event of one room, atomically with everything that depends on it.
//
// How a write goes:
// 1. Queued behind the room's previous write in this process (the contract lets a room have one
//    writer; this also makes `dependsOn` a plain read: the dependency has settled by then). The
//    position is reserved at the call, so close() waits for queued writes too. Across processes
//    nothing here serialises a room: that is the room-ownership layer's job; the LWT claims
//    below still keep event and txn IDs unique if two processes write one room.
// 2. Reads and checks, all before anything is written: the dependency, duplicate event/txn IDs,
//    rejected auth events, timeline-only state entries and extremities, member events' memberships,
//    the room's head (current group, extremities). A failing check writes nothing.
// 3. The EventWriteHook statements (push actions, relations, search) are built.
// 4. Uniqueness claims with LWTs (IF NOT EXISTS), the txn ID and the event ID in parallel, in
//    side tables that only ever take LWTs. A claim lost here is a StoreConflictError. Claims are
//    released (conditional deletes) if anything fails before the batch is sent, or the node
//    refused the batch outright; otherwise they stay (a timed-out logged batch may still be
//    applied). A process dying between claim and batch leaves a claim without an event: that
//    event ID is then refused for good. Its txn ID is not: a fenced write (the room owner's,
//    PersistEventInput.fence, already checked by room-fence.ts) that finds the txn claimed by
//    an event that is not stored takes the claim over (LWT, IF event_id = the old one). The
//    claimer was an earlier writer of the room, which the fence stops from storing anything
//    now (this process's own earlier writes of the room have settled, step 1), except a
//    batch of ours that timed out and may still be applied: such claims are remembered and
//    answered as a conflict (retryable) instead. Without this a send whose owner died
//    mid-write could never be retried (a 500 for every retry of its txn ID).
// 4a. A fenced write takes neither claim in the common case: its reads in step 2 are already
//    authoritative for its room (the fence lets one writer commit, this process's earlier
//    writes of the room have settled, and a new owner's settle landed the last commit of the
//    one before, see room-fence.ts). Its txn row is a plain write in the batch of step 6 (so
//    a successor's settle lands it with the event), unless a claim left by an unfenced writer
//    must be taken over (the LWT above); and an event the caller built itself
//    (PersistEventInput.fresh) cannot be stored by anyone else, so it takes no event ID claim.
//    A received event still takes it: an unfenced writer (gap fill's outliers, backfill) may
//    be storing the same event at the same moment. This saves two of a send's three LWTs.
// 5. New state groups are written (unreferenced until step 6, see state-groups.ts).
// 5a. A fenced write (a cluster's room owner, PersistEventInput.fence) passes the room's commit
//    point here (room-fence.ts): one LWT that checks the owner epoch and claims the room's next
//    commit, recording the batch of step 6 so that a successor can land it. Refused
//    (StaleWriterError), nothing of the event is visible. Before step 2 the writer settled the
//    room at its epoch (older owners fenced off, their last commit landed), so its reads are
//    the room as the previous owner left it.
// 6. One logged batch (a fenced one at its commit's write timestamp, so a late batch never
//    overwrites a later commit's cells): the event row, DAG edges, timeline/topological rows, redaction rewrite,
//    state delta + history + current state, memberships, the room head, the hook statements.
//    A logged batch is all-or-nothing (eventually), but not isolated: a reader may briefly see
//    part of it before the write resolves. Readers bounded by currentPosition() never do: the
//    position completes only after the batch is acknowledged. Its size grows with the state
//    delta (about 1 KB per member key): a resolution naming more than ~1,000 member keys passes
//    batch_size_fail_threshold (1 MiB on the test node) and is refused, writing nothing.
//
// Change records come from the SQLite module's prepareEvent/eventChange, so both backends hand
// the read model byte-identical EventChange records.
//
// The statements of step 6 are built in event-statements.ts; backfill positions come from
// backfill-positions.ts.

import type { RoomVersion } from '../../protocol/types.js';
import { eventChange, prepareEvent, type PreparedEvent } from '../sqlite/events.js';
import {
  StaleWriterError,
  StoreConflictError,
  type PersistEventInput,
  type PersistEventResult,
  type RoomRecord,
} from '../types.js';
import { applied, jsonParse, num, numOrNull, type CassandraContext, type CqlStatement } from './context.js';
import { readEventRows } from './rooms-util.js';
import { GroupBuilder, type StateChange } from './state-groups.js';
import { chainIndexStatements } from './dag.js';
import { RoomCommits, type CommitHooks } from './room-fence.js';
import { BackfillPositions } from './backfill-positions.js';
import { eventStatements, isRejected, liveStatements } from './event-statements.js';

export { REMOVED } from './event-statements.js';

const CHECK_COLUMNS = 'event_id, room_id, pdu_json, outlier, soft_failed, rejected, chain_id, chain_seq';

export class EventWriter {
  private readonly tails = new Map<string, Promise<void>>();
  private readonly backfill: BackfillPositions;
  private readonly rooms = new Map<string, RoomRecord>();
  readonly commits: RoomCommits;
  /** Txn claims whose batch timed out here (it may still be applied): never taken over. */
  private readonly ambiguousTxns = new Set<string>();

  constructor(
    private readonly ctx: CassandraContext,
    private readonly hooks: CommitHooks = {},
  ) {
    this.backfill = new BackfillPositions(ctx);
    this.commits = new RoomCommits(ctx, notApplied, hooks);
  }

  persist(input: PersistEventInput): Promise<PersistEventResult> {
    this.ctx.checkOpen();
    const prepared = prepareEvent(input);
    // Hooks run later; they must see the input as it was at the call (null-prototype JSON, like
    // everything read back from storage).
    const hookInput = jsonParse<PersistEventInput>(JSON.stringify(input));
    const roomId = prepared.roomId;
    // Only events that name their room can be fenced (see room-fence.ts).
    const fence = input.fence !== undefined && typeof input.pdu.room_id === 'string' ? input.fence.epoch : undefined;
    const prev = this.tails.get(roomId) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(roomId, tail);
    const done = (): void => {
      release();
      if (this.tails.get(roomId) === tail) this.tails.delete(roomId);
    };
    const run = async (pos: number): Promise<PersistEventResult> => {
      await prev;
      try {
        return { stream: pos, ...(await this.write(prepared, hookInput, pos, fence)) };
      } finally {
        done();
      }
    };
    const p = prepared.backfill
      ? prev.then(() => this.backfill.take()).then(run)
      : this.ctx.writeAtPosition(run, (_r, pos) => (prepared.status === 'accepted' ? eventChange(prepared, pos) : null));
    p.then(done, done);
    return p;
  }

  private async room(roomId: string, ev: PreparedEvent): Promise<RoomRecord> {
    const cached = this.rooms.get(roomId);
    if (cached) return { ...cached };
    const row = (await this.ctx.execute('SELECT room_version, creator, created_ts FROM rooms WHERE room_id = ?', [roomId])).first();
    if (!row) {
      // Events may be stored for a room without a record (the contract does not require one):
      // hooks then get the create event's version if this is it, else the default.
      const v = ev.type === 'm.room.create' && ev.stateKey === '' ? jsonParse<{ content: { room_version?: unknown } }>(ev.pduJson).content.room_version : undefined;
      return { roomId, roomVersion: (typeof v === 'string' ? v : '1') as RoomVersion, creator: ev.sender, createdTs: ev.originServerTs };
    }
    const rec: RoomRecord = {
      roomId,
      roomVersion: row['room_version'] as RoomVersion,
      creator: row['creator'] as string,
      createdTs: num(row['created_ts']),
    };
    // Room records never change; the cache only bounds how many it keeps.
    if (this.rooms.size >= 10_000) this.rooms.clear();
    this.rooms.set(roomId, rec);
    return { ...rec };
  }

  private async write(
    ev: PreparedEvent,
    hookInput: PersistEventInput,
    pos: number,
    fence: number | undefined,
  ): Promise<{ stateGroupBefore: number | null; stateGroupAfter: number | null }> {
    const { eventId, roomId } = ev;
    if (fence !== undefined) await this.commits.settle(roomId, fence);
    if (ev.createsRoom !== null) {
      // Before anything of the event: a room that exists gets nothing written. No batch spans
      // both tables' LWTs, so a later failure of this event leaves the record, as a createRoom
      // call before it would.
      const room = ev.createsRoom;
      if (room.roomId !== roomId) throw new Error(`createsRoom names ${room.roomId}, the event is in ${roomId}`);
      const rs = await this.ctx.execute(
        'INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?) IF NOT EXISTS',
        [room.roomId, room.roomVersion, room.creator, room.createdTs],
      );
      if (!applied(rs)) throw new StoreConflictError(`room ${room.roomId} already exists`);
    }
    const accepted = ev.status === 'accepted';
    const live = accepted && !ev.backfill;

    // --- reads and checks (nothing written yet) ---
    const want = new Set<string>([eventId]);
    if (ev.dependsOn !== null) want.add(ev.dependsOn);
    if (ev.status !== 'rejected') for (const id of ev.authEvents) want.add(id);
    if (live) {
      for (const e of ev.stateDelta) want.add(e.eventId);
      for (const id of ev.forwardExtremities) want.add(id);
      if (ev.redaction) want.add(ev.redaction.targetEventId);
    }
    const txnKey = ev.txn && accepted ? [roomId, ev.txn.userId, ev.txn.deviceId, ev.txn.scope ?? '', ev.txn.txnId] : null;
    const stateless = ev.status === 'outlier' || (ev.status === 'rejected' && ev.stateBefore === null);
    const [rows, txnRow, head] = await Promise.all([
      readEventRows(this.ctx, want, CHECK_COLUMNS),
      txnKey
        ? this.ctx.execute('SELECT event_id FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?', txnKey)
        : null,
      stateless ? null : this.ctx.execute('SELECT current_group FROM room_heads WHERE room_id = ?', [roomId]),
    ]);
    if (ev.dependsOn !== null && rows.get(ev.dependsOn)?.['room_id'] !== roomId) {
      throw new StoreConflictError(`event ${eventId} depends on ${ev.dependsOn}, which is not stored`);
    }
    // The event ID holding the txn's claim, when this write may take the claim over.
    let supersede: string | null = null;
    const claimedBy = txnRow?.first()?.['event_id'] as string | undefined;
    if (claimedBy !== undefined) {
      if (fence === undefined || this.ambiguousTxns.has(JSON.stringify(txnKey))) throw txnConflict(ev);
      const stored = (await this.ctx.execute('SELECT room_id FROM events WHERE event_id = ?', [claimedBy])).first();
      if (stored) throw txnConflict(ev);
      supersede = claimedBy;
    }
    if (rows.has(eventId)) throw new StoreConflictError(`event ${eventId} already persisted`);
    let chain: { position: { chain: number; seq: number }; statements: CqlStatement[] } | undefined;
    if (ev.status !== 'rejected') {
      const bad = ev.authEvents.find((id) => isRejected(rows.get(id)));
      if (bad !== undefined) throw new Error(`event ${eventId} cites rejected auth event ${bad}`);
      if (ev.stateKey !== null) chain = await chainIndexStatements(this.ctx, roomId, eventId, pos, ev.authEvents, rows);
    }

    const batch: CqlStatement[] = [];
    const groups = new GroupBuilder(this.ctx, roomId, pos);
    let before: number | null = null;
    let after: number | null = null;
    let hookStatements: CqlStatement[] = [];

    if (!stateless) {
      const headRow = head?.first();
      const previous = headRow ? numOrNull(headRow['current_group']) : null;
      if (ev.stateBefore) before = await groups.create(ev.stateBefore.group, ev.stateBefore.delta);
      else before = previous ?? (await groups.create(null, []));
      const own: StateChange[] = ev.stateKey !== null && ev.status !== 'rejected' ? [{ type: ev.type, stateKey: ev.stateKey, eventId }] : [];
      after = await groups.create(before, own);
      if (live) {
        hookStatements = await liveStatements(this.ctx, () => this.room(roomId, ev), ev, pos, rows, previous, after, own, groups, hookInput, batch);
      }
    }

    batch.unshift(...eventStatements(ev, pos, before, after, chain?.position), ...(chain?.statements ?? []));

    // --- claims, then the writes ---
    // A fenced write needs no LWT for what its own reads above already settled (step 4a): its
    // txn row goes into its batch, and a fresh event's ID takes no claim.
    const plainTxn = fence !== undefined && txnKey !== null && supersede === null;
    const claimEvent = fence === undefined || hookInput.fresh !== true;
    if (plainTxn) {
      batch.push({
        query: 'INSERT INTO event_txns (room_id, user_id, device_id, scope, txn_id, event_id) VALUES (?, ?, ?, ?, ?, ?)',
        params: [...txnKey, eventId],
      });
    }
    // Both claims in parallel (each LWT is several round trips); one lost releases the other.
    const claimed: Array<() => Promise<unknown>> = [];
    // Set once something that may land has been sent (the commit LWT, or an unfenced batch).
    let sent = false;
    let commit: { seq: number; ts: number } | undefined;
    try {
      const [txnClaim, eventClaim] = await Promise.allSettled([
        txnKey && !plainTxn
          ? supersede === null
            ? this.ctx.execute(
                'INSERT INTO event_txns (room_id, user_id, device_id, scope, txn_id, event_id) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS',
                [...txnKey, eventId],
              )
            : this.ctx.execute(
                'UPDATE event_txns SET event_id = ? WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ? IF event_id = ?',
                [eventId, ...txnKey, supersede],
              )
          : null,
        claimEvent ? this.ctx.execute('INSERT INTO event_claims (event_id, room_id) VALUES (?, ?) IF NOT EXISTS', [eventId, roomId]) : null,
      ]);
      if (txnKey && txnClaim.status === 'fulfilled' && txnClaim.value && applied(txnClaim.value)) {
        claimed.push(() =>
          this.ctx.execute(
            'DELETE FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ? IF event_id = ?',
            [...txnKey, eventId],
          ),
        );
      }
      if (eventClaim.status === 'fulfilled' && eventClaim.value && applied(eventClaim.value)) {
        claimed.push(() => this.ctx.execute('DELETE FROM event_claims WHERE event_id = ? IF room_id = ?', [eventId, roomId]));
      }
      if (txnClaim.status === 'rejected') throw txnClaim.reason;
      if (eventClaim.status === 'rejected') throw eventClaim.reason;
      if (txnClaim.value && !applied(txnClaim.value)) throw txnConflict(ev);
      if (eventClaim.value && !applied(eventClaim.value)) throw new StoreConflictError(`event ${eventId} already persisted`);
      await groups.write();
      // A worker whose lease was revoked while it was frozen sends nothing more (positions.ts).
      await this.ctx.confirmLease?.();
      const statements = [...batch, ...hookStatements];
      let ts: number | undefined;
      if (fence !== undefined) {
        try {
          commit = await this.commits.commit(roomId, fence, eventId, statements, () => (sent = true));
          ts = commit.ts;
        } catch (err) {
          // A refused commit (stale epoch) landed nothing; an unknown outcome (timeout) may have.
          if (err instanceof StaleWriterError) sent = false;
          throw err;
        }
      }
      sent = true;
      await this.ctx.batch(statements, ts !== undefined ? { timestamp: ts } : undefined);
      await this.hooks.afterBatch?.(roomId, eventId);
    } catch (err) {
      // A fenced write whose outcome is unknown finds it out before its position is released:
      // landed, it completes (its change record published, the caller answered); given up, a
      // later settle could land it below the watermark where no incremental sync looks.
      if (fence !== undefined && sent && !notApplied(err) && !(err instanceof StaleWriterError)) {
        const statements = [...batch, ...hookStatements];
        const stored = async () => (await this.ctx.execute('SELECT event_id FROM events WHERE event_id = ?', [eventId])).first() != null;
        const outcome = await this.commits.resolve(roomId, fence, statements, commit, stored);
        if (outcome === 'landed') return { stateGroupBefore: before, stateGroupAfter: after };
        if (outcome === 'absent') sent = false;
      }
      // Once the batch (or the commit carrying it) was sent it may still be applied (a timeout
      // is not a failure): keep the claims then, so the event can never be stored twice, unless
      // the node refused it outright.
      const refused = !sent || notApplied(err);
      if (commit) {
        // A void that fails is harmless: the next settle's replay is refused the same way and voids it.
        if (refused) await this.commits.void(roomId, commit.seq).catch(() => undefined);
        // The next write of the room settles it again, landing this commit if it can.
        this.commits.unsettled(roomId);
      }
      if (refused) await Promise.allSettled(claimed.map((f) => f()));
      else if (txnKey) {
        if (this.ambiguousTxns.size >= 10_000) this.ambiguousTxns.delete(this.ambiguousTxns.values().next().value!);
        this.ambiguousTxns.add(JSON.stringify(txnKey));
      }
      throw err;
    }
    return { stateGroupBefore: before, stateGroupAfter: after };
  }

}

/**
 * Errors after which the node certainly did not apply the statement: it refused it (invalid,
 * e.g. a batch above batch_size_fail_threshold; unavailable; overloaded; bootstrapping), or the
 * driver never sent it. Timeouts are not among them.
 */
function notApplied(err: unknown): boolean {
  const e = err as { name?: string; code?: number; innerErrors?: Record<string, { name?: string }> };
  if (e?.name === 'ResponseError' && e.code !== undefined) return [0x2000, 0x2100, 0x2200, 0x1000, 0x1001, 0x1002].includes(e.code);
  if (e?.name === 'NoHostAvailableError' && e.innerErrors) {
    const inner = Object.values(e.innerErrors);
    return inner.length > 0 && inner.every((x) => x?.name === 'BusyConnectionError');
  }
  return false;
}


function txnConflict(ev: PreparedEvent): StoreConflictError {
  const t = ev.txn!;
  return new StoreConflictError(`transaction ${t.txnId} of ${t.userId}/${t.deviceId} in ${ev.roomId} already used`);
}


