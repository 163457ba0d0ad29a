// RoomInput's writes for rooms this server knows only through other servers: a room joined
// through another server (send_join), a remote invite, knock or its rejection recorded as a stub,
// and backfilled history. Invariants: every write runs on the room's queue (RoomQueue), as
// RoomInput's own do, so one writer per room holds; a stub (an invite or knock with no state of
// ours) is the room's only extremity until a join brings the real state; backfilled events sit
// below every other event (negative positions) and never change the state or the extremities.
// Checks 1-4 of the events handed in are the caller's.

import type { Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { StateEntry } from '../store/types.js';
import type { Prepared } from './event-builder.js';
import type { Verdict } from './event-judge.js';
import type { RoomInputDeps, SubmitResult } from './room-input-types.js';
import type { RoomQueue } from './room-queue.js';
import { RoomState } from './room-state.js';
import type { StateMap } from './state-resolver.js';

export interface RemoteWritesContext {
  deps: RoomInputDeps;
  queue: RoomQueue;
  now: () => number;
  /** Drops the writer's cached state of the room (reloaded by its next job). */
  forget: (roomId: string) => void;
  load: (roomId: string) => Promise<RoomState | null>;
  commit: (roomId: string, p: Prepared, state: RoomState, verdict: Verdict) => Promise<SubmitResult>;
  fenceOf: (roomId: string) => { epoch: number } | undefined;
}

export class RemoteRoomWrites {
  constructor(private readonly ctx: RemoteWritesContext) {}

  /**
   * A room joined through another server (send_join): `outliers` (the auth chain and the state,
   * already checked by the caller with checks 1-4) are stored without state, then `join` is
   * stored as the room's first timeline event with `stateBefore` as the state before it.
   */
  adoptRoom(
    roomId: string,
    version: RoomVersion,
    creator: string,
    outliers: Array<{ eventId: string; pdu: Pdu }>,
    join: { eventId: string; pdu: Pdu },
    stateBefore: StateEntry[],
  ): Promise<SubmitResult> {
    return this.ctx.queue.enqueue(roomId, async () => {
      const { rooms } = this.ctx.deps.store;
      if (!(await rooms.getRoom(roomId))) await rooms.createRoom({ roomId, roomVersion: version, creator, createdTs: this.ctx.now() });
      else this.ctx.forget(roomId);
      const have = await rooms.getEvents(outliers.map((o) => o.eventId));
      for (const o of outliers) {
        if (!have.has(o.eventId)) await rooms.persistEvent({ eventId: o.eventId, pdu: o.pdu, stateDelta: [], forwardExtremities: [], outlier: true, fence: this.ctx.fenceOf(roomId) });
      }
      const map: StateMap = new Map(stateBefore.map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
      // A room known only through an invite (recordRemoteInvite) has no real state to build on:
      // the join's state replaces it, and the join becomes the only extremity.
      const loaded = await this.ctx.load(roomId);
      const base = loaded?.get('m.room.create', '') ? loaded : RoomState.empty(version);
      try {
        return await this.ctx.commit(roomId, join, base, { kind: 'accepted', before: { isCurrent: false, map, stored: { group: null, delta: stateBefore } } });
      } finally {
        if (base !== loaded) this.ctx.forget(roomId);
      }
    });
  }

  /**
   * An invite from another server to a room this server is not in: the room is recorded (if
   * unknown) with the invite as its only event and state, or (known, every member of ours gone)
   * the invite replaces its extremities as the invitee's membership, so the invitee's /sync shows
   * it until a join through that server (adoptRoom) brings the real state. Checks 1-3 are the
   * caller's.
   */
  recordRemoteInvite(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu): Promise<void> {
    return this.ctx.queue.enqueue(roomId, async () => {
      const { rooms } = this.ctx.deps.store;
      if (await rooms.getRoom(roomId)) {
        // Known only through a stub (our user's knock, an earlier invite), or every member of ours
        // left: the new membership takes the stub's place (callers never use this for a room we
        // are in, which gets the invite through /send).
        if (await rooms.getEvent(eventId)) return; // a retried /invite
        await this.ctx.queue.drained(roomId);
        await this.recordStub(roomId, eventId, pdu, undefined, version);
        return;
      }
      await rooms.createRoom({ roomId, roomVersion: version, creator: pdu.sender, createdTs: this.ctx.now() });
      await this.recordStub(roomId, eventId, pdu, { group: null, delta: [] }, version);
    });
  }


  /**
   * History fetched from another server (checks 1-4 are the caller's), stored below every other
   * event (negative positions, outside the stream: /sync never sees it, /messages pages into it),
   * oldest lowest. Neither the state nor the extremities change. Returns how many were new.
   */
  storeBackfill(roomId: string, events: Array<{ eventId: string; pdu: Pdu }>): Promise<number> {
    return this.ctx.queue.enqueue(roomId, async () => {
      const { rooms } = this.ctx.deps.store;
      const have = await rooms.getEvents(events.map((e) => e.eventId));
      let added = 0;
      for (const e of [...events].sort((a, b) => b.pdu.depth - a.pdu.depth)) {
        if (have.has(e.eventId)) continue;
        await rooms.persistEvent({ eventId: e.eventId, pdu: e.pdu, stateDelta: [], forwardExtremities: [], backfill: true, stateBefore: { group: null, delta: [] } });
        added++;
      }
      return added;
    });
  }

  /**
   * The rejection of such an invite, made and accepted through the inviting server (make_leave,
   * send_leave): it replaces the invite here, as the only extremity.
   */
  recordRemoteLeave(roomId: string, eventId: string, pdu: Pdu): Promise<void> {
    return this.ctx.queue.enqueue(roomId, async () => {
      if (!(await this.ctx.deps.store.rooms.getRoom(roomId))) return;
      await this.recordStub(roomId, eventId, pdu);
    });
  }

  /** `version` given: an invite, which notifies its target (push rules, evaluated without the room's state, which we lack). */
  private async recordStub(roomId: string, eventId: string, pdu: Pdu, stateBefore?: { group: null; delta: StateEntry[] }, version?: RoomVersion): Promise<void> {
    const entry = { type: 'm.room.member', stateKey: pdu.state_key as string, eventId };
    const invite = version !== undefined && pdu.content.membership === 'invite';
    const push = invite && this.ctx.deps.pushActions ? await this.ctx.deps.pushActions(eventId, pdu, RoomState.empty(version)) : undefined;
    const { stream } = await this.ctx.deps.store.rooms.persistEvent({ eventId, pdu, stateDelta: [entry], forwardExtremities: [eventId], stateBefore, pushActions: push?.rows, pushBulk: push?.bulk, fence: this.ctx.fenceOf(roomId) });
    this.ctx.forget(roomId);
    if (push) this.ctx.deps.onPersisted?.({ eventId, pdu, stream, pushActions: push.all });
    this.ctx.deps.notifier.publish({ stream, roomId, userIds: [entry.stateKey] });
  }}
