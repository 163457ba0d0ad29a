// Writing a judged event of RoomInput (room-input.ts) to the store, then advancing the writer's
// in-memory state and waking readers. Invariants: only called from inside the room's queue job
// (RoomQueue), so the in-memory state it advances is owned by that job; the in-memory state
// only ever holds what the store holds or is about to (a pipelined write), and any write that may
// have failed drops it so the next job reloads it from the store; readers are woken and
// onPersisted called only once the event is durable; a pipelined write names its predecessor
// (`dependsOn`) so nothing is durable on top of a lost event.

import type { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { prevEventIds } from '../protocol/events.js';
import type { JsonObject, Pdu } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { RoomRecord, StateEntry, StateKeyRef } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import { selfDestructAt } from '../store/expiry-types.js';
import { changedEntries, removedKeys, toEntries, type DagState } from './dag-state.js';
import type { Prepared } from './event-builder.js';
import type { Verdict } from './event-judge.js';
import type { PushOutcome, RoomInputDeps, SubmitResult } from './room-input-types.js';
import type { RoomQueue, Tail } from './room-queue.js';
import type { RoomState } from './room-state.js';
import type { StateMap } from './state-resolver.js';

export interface CommitContext {
  deps: RoomInputDeps;
  queue: RoomQueue;
  /** The writer's cached room states (RoomInput's): an entry deleted here is reloaded next job. */
  states: LRUCache<string, RoomState>;
  dag: DagState;
  fenceOf: (roomId: string) => { epoch: number } | undefined;
}

export class EventCommitter {
  constructor(private readonly ctx: CommitContext) {}

  /**
   * Queues an accepted event whose state before is the room's current state, advances the
   * in-memory state at once, and returns a promise of its durability (see Pipelining). Must be
   * called synchronously after the caller's last await in the job, so queue order is room order.
   */
  queueLinear(roomId: string, p: Prepared, state: RoomState, push: PushOutcome, extremities: string[], createsRoom?: RoomRecord): Promise<SubmitResult> {
    const own: StateEntry[] = p.pdu.state_key !== undefined ? [{ type: p.pdu.type, stateKey: p.pdu.state_key, eventId: p.eventId }] : [];
    const tail = this.ctx.queue.tail(roomId);
    const outbound = this.outboundOf(p, state);
    const written = this.ctx.deps.store.rooms.persistEvent({
      eventId: p.eventId,
      pdu: p.pdu,
      stateDelta: own,
      forwardExtremities: extremities,
      dependsOn: tail !== undefined && tail.state === state ? tail.eventId : undefined,
      txn: p.txn,
      redaction: p.redaction,
      pushActions: push.rows,
      pushBulk: push.bulk,
      fence: this.ctx.fenceOf(roomId),
      fresh: true,
      createsRoom,
      outbound,
      selfDestructAt: this.selfDestructAt(p.pdu),
    });
    state.applyPersisted(p.eventId, p.pdu, extremities);
    if (p.redaction) state.applyRedaction(p.redaction.targetEventId, p.redaction.redactedPdu);
    const entry: Tail = { eventId: p.eventId, state, done: written };
    this.ctx.queue.setTail(roomId, entry);
    return written.then(
      ({ stream }) => {
        this.ctx.queue.settled(roomId, entry);
        return this.announce(roomId, p, stream, push, own, outbound?.destinations);
      },
      (err: unknown) => {
        this.ctx.queue.settled(roomId, entry);
        // The in-memory state holds this event; the store does not. Reload it (after the
        // pipeline drains) unless a reload already replaced it.
        if (this.ctx.states.get(roomId) === state) this.ctx.states.delete(roomId);
        if (err instanceof StoreConflictError && tail !== undefined && /depends on/.test(err.message)) {
          throw new MatrixError('M_UNKNOWN', 'An earlier event in this room could not be stored; try again', { retry_after_ms: 100 }, 503);
        }
        throw err;
      },
    );
  }

  /** Persists an event with its verdict, then updates the in-memory state and wakes readers. */
  /** `relayFrom`: a remote event the origin handed us to pass on (RoomInput.receive's `relay`). */
  async commit(roomId: string, p: Prepared, state: RoomState, verdict: Verdict, relayFrom?: string): Promise<SubmitResult> {
    const { rooms } = this.ctx.deps.store;
    if (verdict.kind !== 'accepted') {
      let stateBefore = verdict.kind !== 'outlier' ? verdict.before?.stored : undefined;
      if (verdict.kind !== 'outlier' && verdict.before?.isCurrent) {
        const group = await rooms.getCurrentStateGroup(roomId);
        stateBefore = { group, delta: group === null ? toEntries(state.stateMap()) : [] };
      }
      const { stream } = await rooms.persistEvent({
        eventId: p.eventId,
        pdu: p.pdu,
        stateDelta: [],
        forwardExtremities: [],
        outlier: verdict.kind === 'outlier' || undefined,
        softFailed: verdict.kind === 'soft_failed' || undefined,
        rejected: verdict.kind === 'rejected' ? verdict.reason : undefined,
        stateBefore,
        fence: this.ctx.fenceOf(roomId),
      });
      return { eventId: p.eventId, stream, deduplicated: false };
    }

    const { before } = verdict;
    const extremities = extremitiesAfter(state, p);
    const own: StateEntry[] = p.pdu.state_key !== undefined ? [{ type: p.pdu.type, stateKey: p.pdu.state_key, eventId: p.eventId }] : [];
    let stateDelta = own;
    let stateRemoved: StateKeyRef[] = [];
    const linear = before.isCurrent;
    if (!linear) {
      const after = new Map(before.map);
      for (const e of own) after.set(stateTuple(e.type, e.stateKey), e.eventId);
      let current: StateMap = after;
      if (extremities.length > 1) {
        // A fork: the room's state is the resolution of every extremity's state.
        const others = extremities.filter((id) => id !== p.eventId);
        const groups = await rooms.getEventStateGroups(others);
        const maps = await Promise.all(others.map((id) => this.ctx.dag.groupState((groups.get(id) as { after: number }).after)));
        current = await this.ctx.dag.resolve(roomId, state.version, [after, ...maps], [{ eventId: p.eventId, pdu: p.pdu }]);
      }
      const was = state.stateMap();
      stateDelta = changedEntries(was, current);
      stateRemoved = removedKeys(was, current);
    }

    let stream: number;
    const push = this.ctx.deps.pushActions ? await this.ctx.deps.pushActions(p.eventId, p.pdu, state) : { rows: [], all: [] };
    const outbound = this.outboundOf(p, state, relayFrom);
    try {
      ({ stream } = await rooms.persistEvent({
        eventId: p.eventId,
        pdu: p.pdu,
        stateDelta,
        stateRemoved: stateRemoved.length > 0 ? stateRemoved : undefined,
        forwardExtremities: extremities,
        stateBefore: before.stored,
        txn: p.txn,
        redaction: p.redaction,
        pushActions: push.rows,
        pushBulk: push.bulk,
        fence: this.ctx.fenceOf(roomId),
        outbound,
        selfDestructAt: this.selfDestructAt(p.pdu),
      }));
    } catch (err) {
      // The store may or may not have written; reload state from it next time.
      this.ctx.states.delete(roomId);
      throw err;
    }
    if (linear) {
      state.applyPersisted(p.eventId, p.pdu, extremities);
      if (p.redaction) state.applyRedaction(p.redaction.targetEventId, p.redaction.redactedPdu);
    } else {
      // Resolution changed exactly the entries of stateDelta.
      const ids = stateDelta.map((e) => e.eventId).filter((id) => id !== p.eventId);
      const found = await rooms.getEvents(ids);
      const changed = stateDelta.map((e) => ({ eventId: e.eventId, pdu: e.eventId === p.eventId ? p.pdu : found.get(e.eventId)?.pdu }));
      if (changed.every((c): c is { eventId: string; pdu: Pdu } => c.pdu !== undefined)) {
        state.applyResolved(changed, stateRemoved, extremities, { eventId: p.eventId, pdu: p.pdu });
        if (p.redaction) state.applyRedaction(p.redaction.targetEventId, p.redaction.redactedPdu);
      } else {
        this.ctx.states.delete(roomId);
      }
    }
    return this.announce(roomId, p, stream, push, [...stateDelta, ...stateRemoved], outbound?.destinations);
  }

  private selfDestructAt(pdu: Pdu): number | undefined {
    return this.ctx.deps.selfDestruct ? (selfDestructAt(pdu) ?? undefined) : undefined;
  }

  /** The PDU to queue with an accepted event (see RoomInputDeps.pduDestinations). */
  private outboundOf(p: Prepared, before: RoomState, relayFrom?: string): { destinations: string[]; pdu: JsonObject } | undefined {
    const destinations = this.ctx.deps.pduDestinations?.(p.eventId, p.pdu, before, relayFrom);
    if (destinations === undefined) return undefined;
    const { unsigned: _u, ...pdu } = p.pdu;
    return { destinations, pdu: pdu as JsonObject };
  }

  /** After an accepted event is durable: hands it on and wakes the readers of `changed` members. */
  private announce(roomId: string, p: Prepared, stream: number, push: PushOutcome, changed: readonly StateKeyRef[], queuedFor?: readonly string[]): SubmitResult {
    this.ctx.deps.onPersisted?.({ eventId: p.eventId, pdu: p.pdu, stream, pushActions: push.all, ...(queuedFor ? { queuedFor } : {}) });
    const userIds = changed.filter((e) => e.type === 'm.room.member').map((e) => e.stateKey);
    this.ctx.deps.notifier.publish({ stream, roomId, userIds: userIds.length > 0 ? userIds : undefined });
    return { eventId: p.eventId, stream, deduplicated: false };
  }
}

/** The forward extremities once `p` (whose state before is linear or resolved) is in the room. */
export function extremitiesAfter(state: RoomState, p: Prepared): string[] {
  const prevSet = new Set(prevEventIds(p.pdu));
  return [...state.extremities.filter((id) => !prevSet.has(id)), p.eventId];
}