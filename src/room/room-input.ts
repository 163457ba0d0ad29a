// The single entry point for new events into a room. Local sends (`submit`, `createRoom`) and
// events from outside (`receive`, for federation) share one FIFO queue per room, which is what
// gives each room one server-assigned total order; the store assigns the stream position.
//
// Every event passes the same checks in the spec's order (pdu-checks.ts for 1-4):
//   1 format and size, 2 signatures (KeyRing), 3 content hash (mismatch: keep it redacted),
//   4 auth against its own auth_events, 5 auth against the state before it (its prev_events'
//   states, resolved), 6 soft fail against the room's current state.
// A local send is built first (event-builder.ts: prev_events = forward extremities, auth_events from current
// state), signed, then checked like anything else (except 3: its hash was just computed); a
// failure is a MatrixError for the client.
// `receive` never throws for a bad event: it returns an outcome.
//
// Outcomes: accepted (timeline, state, extremities); soft_failed (stored with its state, never
// in the timeline, the current state or the extremities; also a received redaction that can
// never apply to the target it names, see event-builder.ts); outlier (prev events unknown and no
// `gapStates` given: we cannot know the state before it, so it is stored after checks 1-4 only,
// without state, outside the timeline; the spec's "outlier"; federation fills gaps first, see
// src/federation/gap-fill.ts);
// rejected (stored, flagged, when it failed auth, so it is never processed or cited again;
// not stored when it failed format/signatures or its auth events are unknown, since then it
// may still be valid once they arrive). Rejected events are never cited as prev or auth events
// by local sends: prev_events come from the extremities and auth_events from the current state,
// and the store refuses both for rejected events.
//
// Current state after an event: if its prev_events were all the forward extremities, the state
// after it; otherwise (a fork) the resolution of the new extremities' states.
//
// Concurrency: any number of rooms progress in parallel; within a room jobs are FIFO. The
// in-memory room state is owned by the queue and only touched from inside a job.
// Across worker processes (a cluster), src/cluster/owned-room-input.ts runs a room's jobs on one
// worker at a time (its owner) and calls forget() when this worker's cached state of a room may
// be behind another worker's writes; `fence` carries the owner's epoch to the store.
//
// Pipelining: a local send whose state is linear (the common case) leaves the room's queue as
// soon as its write is queued in the store (position reserved, order fixed) and the in-memory
// state is advanced; the next event is built and authorised while it commits, and both may
// share a group commit. The client is answered, readers woken and onPersisted called only once
// the write is durable. Each pipelined write names its predecessor (`dependsOn`), so if one
// fails every later one queued on top of it fails too and nothing cites a lost event; the
// failure drops the in-memory state, which is reloaded from the store once the pipeline has
// drained. Everything that reads the room from the store (received events, forks, holds,
// reloads) first waits for the room's pipeline to drain.

import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { authEventIds, prevEventIds, roomIdFromCreateEvent } from '../protocol/events.js';
import { roomVersionRules } from '../protocol/room-versions.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { PushActionInput, PushBulkInput, RoomRecord, StateEntry, StateKeyRef, Store, StoredEvent } from '../store/types.js';
import { StaleWriterError, StoreConflictError } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { changedEntries, DagState, removedKeys, toEntries } from './dag-state.js';
import { StaticKeyRing, type KeyRing } from './key-ring.js';
import { resolveState as resolveStateV } from '../protocol/state-res/index.js';
import { checkAgainstAuthEvents, checkAgainstState, checkFormat, checkHashOrRedact, checkSignatures } from './pdu-checks.js';
import { RoomState } from './room-state.js';
import { EventJudge, lookupIn, type Verdict } from './event-judge.js';
import type { ResolveState, StateMap } from './state-resolver.js';
import { EventBuilder, type EventDraft, type Prepared } from './event-builder.js';

export type { EventDraft } from './event-builder.js';

export interface SubmitResult {
  eventId: string;
  stream: number;
  /** True when the draft was a retry of an earlier transaction and nothing new was written. */
  deduplicated: boolean;
}

/** What became of an event handed to `receive`. */
export type InputOutcome =
  | { outcome: 'accepted'; eventId: string; stream: number }
  | { outcome: 'soft_failed'; eventId: string; stream: number; reason: string }
  | { outcome: 'outlier'; eventId: string; stream: number; reason: string }
  /** `gap`: not judged at all, as the events before it could not be had (federation's gap filler). */
  | { outcome: 'rejected'; eventId: string | null; reason: string; stored: boolean; gap?: true };

export interface RoomInputDeps {
  store: Store;
  notifier: Notifier;
  serverName: string;
  signingKey: SigningKey;
  /** Public keys for step 2. Default: only this server's own signing key. */
  keyRing?: KeyRing;
  /** State resolution, for forks. Default: src/protocol/state-res. */
  resolveState?: ResolveState;
  now?: () => number;
  /** Called after each event is durable (metrics, push dispatch). Must not throw or block. */
  onPersisted?: (info: { eventId: string; pdu: Pdu; stream: number; pushActions: PushActionInput[]; queuedFor?: readonly string[] }) => void;
  /**
   * Federation: where a local event's PDU goes, from the room's state before it (undefined:
   * nowhere to queue). The PDU is queued in the event's own commit (PersistEventInput.outbound),
   * so it is durable exactly when the event is; onPersisted gets the list as `queuedFor`.
   */
  pduDestinations?: (eventId: string, pdu: Pdu, before: RoomState) => string[] | undefined;
  /**
   * Push-rule results for the members an event notifies; `rows` and `bulk` are stored atomically
   * with the event (see PersistEventInput.pushBulk), `all` (everyone's) goes to onPersisted.
   */
  pushActions?: (
    eventId: string,
    pdu: Pdu,
    state: RoomState,
  ) => Promise<{ rows: PushActionInput[]; bulk?: PushBulkInput; all: PushActionInput[] }>;
  /**
   * The writer's fencing epoch for a room (src/cluster/room-owner.ts), passed with every write so
   * the store can refuse a stale owner's. Absent on a single node.
   */
  fence?: (roomId: string) => { epoch: number } | undefined;
}

/** A pipelined write not yet known durable: the room's newest one is what the next depends on. */
interface Tail {
  eventId: string;
  /** The in-memory state it was applied to (a reload makes a new object). */
  state: RoomState;
  done: Promise<unknown>;
}

export class RoomInput {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly tails = new Map<string, Tail>();
  /** Client transactions queued or in flight, so a retry during the pipeline is deduplicated. */
  private readonly pendingTxns = new Map<string, Promise<SubmitResult>>();
  private readonly states: LRUCache<string, RoomState>;
  private readonly now: () => number;
  private readonly dag: DagState;
  private readonly judge: EventJudge;
  private readonly keyRing: KeyRing;
  private readonly builder: EventBuilder;

  constructor(private readonly deps: RoomInputDeps, cacheRooms = 10_000) {
    this.now = deps.now ?? Date.now;
    this.states = new LRUCache({ max: cacheRooms });
    this.keyRing = deps.keyRing ?? StaticKeyRing.forServer(deps.serverName, [deps.signingKey]);
    this.builder = new EventBuilder({ serverName: deps.serverName, signingKey: deps.signingKey, keyRing: this.keyRing, rooms: deps.store.rooms, now: this.now });
    this.dag = new DagState(deps.store.rooms, deps.resolveState ?? resolveStateV);
    this.judge = new EventJudge(deps.store.rooms, this.dag);
  }

  /**
   * Accepts an event from outside (federation) through the room's queue. Never throws for a
   * bad event; store failures still reject the promise. `gapStates`: the states after the prev
   * events that could not be fetched, as the sender reported them (see EventJudge.judge).
   */
  receive(roomId: string, pdu: unknown, origin: string, gapStates?: readonly StateMap[]): Promise<InputOutcome> {
    return this.enqueue(roomId, () => this.receiveJob(roomId, pdu, origin, gapStates));
  }

  /**
   * Appends one event to the room. Rejects with MatrixError on auth failure or bad input.
   * Resolves once the event is durable (see Pipelining).
   */
  submit(roomId: string, draft: EventDraft): Promise<SubmitResult> {
    const key = draft.txn ? txnKey(roomId, draft.txn) : null;
    const pending = key === null ? undefined : this.pendingTxns.get(key);
    if (pending) {
      // A retry of a send still in the pipeline: same answer, or a fresh attempt if it failed.
      return pending.then(
        (r) => ({ ...r, deduplicated: true }),
        () => this.submit(roomId, draft),
      );
    }
    const result = this.enqueue(roomId, () => this.apply(roomId, draft)).then((r) => r.durable);
    if (key !== null) {
      this.pendingTxns.set(key, result);
      const clear = () => {
        if (this.pendingTxns.get(key) === result) this.pendingTxns.delete(key);
      };
      result.then(clear, clear);
    }
    return result;
  }

  /**
   * Creates a room and appends its initial events in order as one queued job, so no other event
   * can interleave with room creation. `roomId` is null for versions whose room ID is derived
   * from the create event (v12): the ID is known once that event is built, and returned.
   * `opts.alias` is claimed for the new ID in the job once every initial event is authorised and
   * before anything is written (of two creations with one alias exactly one wins: the other gets
   * M_ROOM_IN_USE and nothing is written), and released again if the room's writes fail. It is
   * data, not a callback, so a cluster can run the whole creation on another worker.
   * `opts.beforeWrite` runs just before the alias claim (a cluster takes the new room's lease).
   */
  async createRoom(
    roomId: string | null,
    version: RoomVersion,
    creator: string,
    drafts: EventDraft[],
    opts: { alias?: string; beforeWrite?: (roomId: string) => Promise<void> } = {},
  ): Promise<{ roomId: string; events: SubmitResult[] }> {
    if ((roomId === null) !== roomVersionRules(version).roomIdFromCreateEvent) {
      throw new Error(`room version ${version} ${roomId === null ? 'needs' : 'derives'} the room ID`);
    }
    // Build and check every initial event first, against a scratch state: if any is rejected
    // nothing is written and the client gets M_INVALID_ROOM_STATE, not half a room. The store
    // has none of these events yet, so steps 4 and 5 read the scratch state, which holds exactly
    // the auth events and the state before each of them. Initial events depend on nothing but
    // each other, so this needs no place in the queue.
    const scratch = RoomState.empty(version);
    const prepared: Prepared[] = [];
    let id = roomId;
    for (const d of drafts) {
      let p: Prepared;
      try {
        p = await this.builder.prepare(id ?? '', d, scratch);
        const cited = authEventIds(p.pdu);
        const authEvents = cited.map((a) => scratch.eventById(a)).filter((e): e is Pdu => e !== undefined);
        const reason =
          (authEvents.length === cited.length ? undefined : 'unknown auth event') ??
          checkAgainstAuthEvents(p.pdu, version, authEvents, scratch.get('m.room.create', '')?.pdu) ??
          checkAgainstState(p.pdu, version, lookupIn(scratch));
        if (reason !== undefined) throw new MatrixError('M_FORBIDDEN', reason);
      } catch (err) {
        if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
          throw new MatrixError('M_INVALID_ROOM_STATE', `Initial state rejected: ${err.message}`);
        }
        throw err;
      }
      id ??= roomIdFromCreateEvent(p.pdu, version) ?? null;
      this.builder.finishLocal(p, d, scratch);
      scratch.applyPersisted(p.eventId, p.pdu);
      prepared.push(p);
    }
    if (id === null) throw new Error('room creation without an m.room.create event');
    const newRoomId = id;
    return this.enqueue(newRoomId, async () => {
      // A derived ID repeats only if the same user sent an identical create event in the same
      // millisecond; writing it twice would merge two rooms.
      if (roomId === null && (await this.deps.store.rooms.getRoom(newRoomId))) {
        throw new MatrixError('M_ROOM_IN_USE', 'An identical room was created at the same moment; try again');
      }
      await opts.beforeWrite?.(newRoomId);
      const { alias } = opts;
      if (alias !== undefined) {
        try {
          await this.deps.store.rooms.createAlias(alias, newRoomId, creator);
        } catch (err) {
          if (err instanceof StoreConflictError) throw new MatrixError('M_ROOM_IN_USE', 'Room alias already taken');
          throw err;
        }
      }
      try {
        return await this.writeCreated(newRoomId, version, creator, prepared);
      } catch (err) {
        if (alias !== undefined) await this.deps.store.rooms.deleteAlias(alias);
        throw err;
      }
    });
  }

  /**
   * The job part of createRoom: the room row (written with the create event, so a room that
   * exists gets nothing) and its initial events, pipelined as one batch: one transaction.
   */
  private async writeCreated(newRoomId: string, version: RoomVersion, creator: string, prepared: Prepared[]): Promise<{ roomId: string; events: SubmitResult[] }> {
    const room = { roomId: newRoomId, roomVersion: version, creator, createdTs: this.now() };
    const state = RoomState.empty(version);
    this.states.set(newRoomId, state);
    // Push actions first, so that every initial event is queued in one turn of the event loop:
    // they then share one transaction (one batch), chained by dependsOn.
    const withPush: Array<{ p: Prepared; push: PushOutcome; extremities: string[] }> = [];
    const scratchState = RoomState.empty(version);
    for (const p of prepared) {
      const push = this.deps.pushActions ? await this.deps.pushActions(p.eventId, p.pdu, scratchState) : { rows: [], all: [] };
      const extremities = [p.eventId];
      scratchState.applyPersisted(p.eventId, p.pdu, extremities);
      withPush.push({ p, push, extremities });
    }
    const durable = withPush.map(({ p, push, extremities }, i) => this.queueLinear(newRoomId, p, state, push, extremities, i === 0 ? room : undefined));
    const events = await Promise.all(durable);
    return { roomId: newRoomId, events };
  }

  /**
   * Appends the event `build` returns while holding this room's queue from before `build` runs
   * until that event is durable, so nothing else enters the room in between. `beforeCommit`
   * runs once the event is authorised and its ID is known; if it throws, nothing is written
   * here. Both may write to other rooms, never to this one (the job would wait on itself).
   * Room upgrades use this: the new room is built between the old room's last event and its
   * tombstone.
   */
  submitHolding(
    roomId: string,
    build: (state: RoomState) => Promise<EventDraft>,
    beforeCommit?: (eventId: string, pdu: Pdu) => Promise<void>,
  ): Promise<SubmitResult> {
    return this.enqueue(roomId, async () => {
      await this.drained(roomId);
      const state = await this.load(roomId);
      if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
      const { p, verdict } = await this.prepareLocal(roomId, await build(state), state);
      // The callback may add signatures (a federated invite comes back signed by the invitee's
      // server); signatures are outside the event ID and the content hash.
      await beforeCommit?.(p.eventId, p.pdu);
      return this.commit(roomId, p, state, verdict);
    });
  }

  /**
   * Builds and authorises `draft` against `state` exactly as a submit would, writing nothing.
   * For checks that must pass before work elsewhere starts (inside a `submitHolding` build).
   */
  async authorise(roomId: string, draft: EventDraft, state: RoomState): Promise<void> {
    await this.prepareLocal(roomId, draft, state);
  }

  /**
   * An unsigned event built on the room's current state (prev_events, auth_events, depth), for
   * another server to sign and send back (make_join, make_leave). Null for an unknown room.
   */
  template(roomId: string, draft: EventDraft): Promise<{ version: RoomVersion; pdu: Pdu; state: RoomState } | null> {
    return this.enqueue(roomId, async () => {
      const state = await this.load(roomId);
      return state ? { version: state.version, pdu: this.builder.build(roomId, draft, state), state } : null;
    });
  }

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
    return this.enqueue(roomId, async () => {
      const { rooms } = this.deps.store;
      if (!(await rooms.getRoom(roomId))) await rooms.createRoom({ roomId, roomVersion: version, creator, createdTs: this.now() });
      else this.states.delete(roomId);
      const have = await rooms.getEvents(outliers.map((o) => o.eventId));
      for (const o of outliers) {
        if (!have.has(o.eventId)) await rooms.persistEvent({ eventId: o.eventId, pdu: o.pdu, stateDelta: [], forwardExtremities: [], outlier: true, fence: this.fenceOf(roomId) });
      }
      const map: StateMap = new Map(stateBefore.map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
      // A room known only through an invite (recordRemoteInvite) has no real state to build on:
      // the join's state replaces it, and the join becomes the only extremity.
      const loaded = await this.load(roomId);
      const base = loaded?.get('m.room.create', '') ? loaded : RoomState.empty(version);
      try {
        return await this.commit(roomId, join, base, { kind: 'accepted', before: { isCurrent: false, map, stored: { group: null, delta: stateBefore } } });
      } finally {
        if (base !== loaded) this.states.delete(roomId);
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
    return this.enqueue(roomId, async () => {
      const { rooms } = this.deps.store;
      if (await rooms.getRoom(roomId)) {
        // Known only through a stub (our user's knock, an earlier invite), or every member of ours
        // left: the new membership takes the stub's place (callers never use this for a room we
        // are in, which gets the invite through /send).
        if (await rooms.getEvent(eventId)) return; // a retried /invite
        await this.drained(roomId);
        await this.recordStub(roomId, eventId, pdu, undefined, version);
        return;
      }
      await rooms.createRoom({ roomId, roomVersion: version, creator: pdu.sender, createdTs: this.now() });
      await this.recordStub(roomId, eventId, pdu, { group: null, delta: [] }, version);
    });
  }

  /**
   * A local user's knock on a room this server does not know, accepted through another server
   * (make_knock, send_knock): recorded like such an invite, as the room's only event.
   */
  recordRemoteKnock(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu): Promise<void> {
    return this.recordRemoteInvite(roomId, version, eventId, pdu);
  }

  /**
   * History fetched from another server (checks 1-4 are the caller's), stored below every other
   * event (negative positions, outside the stream: /sync never sees it, /messages pages into it),
   * oldest lowest. Neither the state nor the extremities change. Returns how many were new.
   */
  storeBackfill(roomId: string, events: Array<{ eventId: string; pdu: Pdu }>): Promise<number> {
    return this.enqueue(roomId, async () => {
      const { rooms } = this.deps.store;
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
    return this.enqueue(roomId, async () => {
      if (!(await this.deps.store.rooms.getRoom(roomId))) return;
      await this.recordStub(roomId, eventId, pdu);
    });
  }

  /** `version` given: an invite, which notifies its target (push rules, evaluated without the room's state, which we lack). */
  private async recordStub(roomId: string, eventId: string, pdu: Pdu, stateBefore?: { group: null; delta: StateEntry[] }, version?: RoomVersion): Promise<void> {
    const entry = { type: 'm.room.member', stateKey: pdu.state_key as string, eventId };
    const invite = version !== undefined && pdu.content.membership === 'invite';
    const push = invite && this.deps.pushActions ? await this.deps.pushActions(eventId, pdu, RoomState.empty(version)) : undefined;
    const { stream } = await this.deps.store.rooms.persistEvent({ eventId, pdu, stateDelta: [entry], forwardExtremities: [eventId], stateBefore, pushActions: push?.rows, pushBulk: push?.bulk, fence: this.fenceOf(roomId) });
    this.states.delete(roomId);
    if (push) this.deps.onPersisted?.({ eventId, pdu, stream, pushActions: push.all });
    this.deps.notifier.publish({ stream, roomId, userIds: [entry.stateKey] });
  }

  /** Current state of a room as the writer sees it (loaded on demand). */
  async currentState(roomId: string): Promise<RoomState | null> {
    return this.enqueue(roomId, () => this.load(roomId));
  }

  /**
   * Runs `job` on the room's queue, so no event of the room is being built meanwhile, and drops
   * the cached state before and after it (the job may delete the room's data: admin purge).
   * Pipelined writes of the room are durable (or failed) before it starts.
   */
  async exclusive<T>(roomId: string, job: () => Promise<T>): Promise<T> {
    return this.enqueue(roomId, async () => {
      await this.drained(roomId);
      this.states.delete(roomId);
      try {
        return await job();
      } finally {
        this.states.delete(roomId);
      }
    });
  }

  /**
   * Drops the cached state of the room, so its next job reloads it from the store: another
   * worker wrote the room (a new owner must not build on what it cached as a previous one).
   * Pipelined writes still in flight stay tracked (a reload waits for them to drain).
   */
  forget(roomId: string): void {
    this.states.delete(roomId);
  }

  /** forget() for every room (the change feed may have lost records). */
  forgetAll(): void {
    this.states.clear();
  }

  private fenceOf(roomId: string): { epoch: number } | undefined {
    return this.deps.fence?.(roomId);
  }

  /** Waits for every queued job and pipelined write to finish (used at shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.queues.values()]);
    await Promise.allSettled([...this.tails.values()].map((t) => t.done));
  }

  /** Waits until none of the room's pipelined writes is in flight (their outcome is irrelevant). */
  private async drained(roomId: string): Promise<void> {
    for (let t = this.tails.get(roomId); t !== undefined; t = this.tails.get(roomId)) {
      await t.done.catch(() => undefined);
      if (this.tails.get(roomId) === t) this.tails.delete(roomId);
    }
  }

  private enqueue<T>(roomId: string, job: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(roomId) ?? Promise.resolve();
    const next = prev.then(job, job);
    const tail = next.catch(() => undefined);
    this.queues.set(roomId, tail);
    void tail.then(() => {
      if (this.queues.get(roomId) === tail) this.queues.delete(roomId);
    });
    return next;
  }

  private async load(roomId: string): Promise<RoomState | null> {
    const cached = this.states.get(roomId);
    if (cached) return cached;
    // The store must hold every pipelined write before it can stand in for the lost state.
    await this.drained(roomId);
    // An owner (cluster) first settles the room at its epoch: an earlier owner's last commit
    // lands before we read. A stale epoch only means we are not the owner: this is then a read.
    const fence = this.fenceOf(roomId);
    if (fence) await this.deps.store.rooms.fenceRoom?.(roomId, fence.epoch).catch((err: unknown) => { if (!(err instanceof StaleWriterError)) throw err; });
    const room = await this.deps.store.rooms.getRoom(roomId);
    if (!room) return null;
    const [entries, extremities] = await Promise.all([
      this.deps.store.rooms.getCurrentState(roomId),
      this.deps.store.rooms.getForwardExtremities(roomId),
    ]);
    const ids = [...new Set([...entries.map((e) => e.eventId), ...extremities])];
    const events = await this.deps.store.rooms.getEvents(ids);
    const state = RoomState.fromStore(room.roomVersion, entries, extremities, events);
    this.states.set(roomId, state);
    return state;
  }

  /** A local send: `durable` settles once it is (the room's queue does not wait for that). */
  private async apply(roomId: string, draft: EventDraft): Promise<{ durable: Promise<SubmitResult> }> {
    const state = await this.load(roomId);
    if (draft.requireJoined) {
      if (!state) throw new MatrixError('M_FORBIDDEN', 'Unknown room or not a member');
      if (state.membership(draft.sender) !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    }
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    if (draft.txn) {
      const { store } = this.deps;
      const { userId, deviceId, txnId, scope } = draft.txn;
      const existing = await store.rooms.getEventIdForTxn(roomId, userId, deviceId, txnId, scope);
      if (existing) {
        const ev = await store.rooms.getEvent(existing);
        return { durable: Promise.resolve({ eventId: existing, stream: ev?.stream ?? 0, deduplicated: true }) };
      }
    }
    const { p, verdict } = await this.prepareLocal(roomId, draft, state);
    if (verdict.kind === 'accepted' && verdict.before.isCurrent) {
      const push = this.deps.pushActions ? await this.deps.pushActions(p.eventId, p.pdu, state) : { rows: [], all: [] };
      return { durable: this.queueLinear(roomId, p, state, push, extremitiesAfter(state, p)) };
    }
    // A fork needs the store to resolve against: no pipelining.
    await this.drained(roomId);
    return { durable: Promise.resolve(await this.commit(roomId, p, state, verdict)) };
  }

  /**
   * Queues an accepted event whose state before is the room's current state, advances the
   * in-memory state at once, and returns a promise of its durability (see Pipelining). Must be
   * called synchronously after the caller's last await in the job, so queue order is room order.
   */
  private queueLinear(roomId: string, p: Prepared, state: RoomState, push: PushOutcome, extremities: string[], createsRoom?: RoomRecord): Promise<SubmitResult> {
    const own: StateEntry[] = p.pdu.state_key !== undefined ? [{ type: p.pdu.type, stateKey: p.pdu.state_key, eventId: p.eventId }] : [];
    const tail = this.tails.get(roomId);
    const outbound = this.outboundOf(p, state);
    const written = this.deps.store.rooms.persistEvent({
      eventId: p.eventId,
      pdu: p.pdu,
      stateDelta: own,
      forwardExtremities: extremities,
      dependsOn: tail !== undefined && tail.state === state ? tail.eventId : undefined,
      txn: p.txn,
      redaction: p.redaction,
      pushActions: push.rows,
      pushBulk: push.bulk,
      fence: this.fenceOf(roomId),
      createsRoom,
      outbound,
    });
    state.applyPersisted(p.eventId, p.pdu, extremities);
    if (p.redaction) state.applyRedaction(p.redaction.targetEventId, p.redaction.redactedPdu);
    const entry: Tail = { eventId: p.eventId, state, done: written };
    this.tails.set(roomId, entry);
    return written.then(
      ({ stream }) => {
        if (this.tails.get(roomId) === entry) this.tails.delete(roomId);
        return this.announce(roomId, p, stream, push, own, outbound?.destinations);
      },
      (err: unknown) => {
        if (this.tails.get(roomId) === entry) this.tails.delete(roomId);
        // The in-memory state holds this event; the store does not. Reload it (after the
        // pipeline drains) unless a reload already replaced it.
        if (this.states.get(roomId) === state) this.states.delete(roomId);
        if (err instanceof StoreConflictError && tail !== undefined && /depends on/.test(err.message)) {
          throw new MatrixError('M_UNKNOWN', 'An earlier event in this room could not be stored; try again', { retry_after_ms: 100 }, 503);
        }
        throw err;
      },
    );
  }

  /** A local event built, signed and through checks 1-6, with its redaction; writes nothing. */
  private async prepareLocal(roomId: string, draft: EventDraft, state: RoomState): Promise<{ p: Prepared; verdict: Verdict }> {
    const p = await this.builder.prepare(roomId, draft, state);
    const verdict = await this.judge.judge(roomId, state, p.pdu, p.eventId, undefined, { local: true });
    // A local event is never stored unless accepted: the client gets the reason instead.
    if (verdict.kind !== 'accepted') throw new MatrixError('M_FORBIDDEN', verdict.reason);
    if (p.redacts !== undefined) p.redaction = await this.builder.redactionTarget(roomId, p.redacts, p.pdu, state);
    this.builder.finishLocal(p, draft, state);
    return { p, verdict };
  }

  private async receiveJob(roomId: string, raw: unknown, origin: string, gapStates?: readonly StateMap[]): Promise<InputOutcome> {
    // Received events read the DAG from the store (steps 5-6, stored state groups).
    await this.drained(roomId);
    const state = await this.load(roomId);
    if (!state) return { outcome: 'rejected', eventId: null, reason: `unknown room (from ${origin})`, stored: false };
    const version = state.version;
    const format = checkFormat(raw, roomId, version);
    if (!format.ok) return { outcome: 'rejected', eventId: null, reason: format.reason, stored: false };
    const { eventId } = format.value;
    const seen = await this.deps.store.rooms.getEvent(eventId);
    if (seen) return outcomeOf(seen);
    // The room exists, so it has its create event; a second one would fork the room's identity.
    if (format.value.pdu.type === 'm.room.create') return { outcome: 'rejected', eventId, reason: 'the room already has a create event', stored: false };
    const badSignature = await checkSignatures(format.value.pdu, version, this.keyRing);
    if (badSignature !== undefined) return { outcome: 'rejected', eventId, reason: badSignature, stored: false };
    const { pdu } = checkHashOrRedact(format.value.pdu, version);
    let verdict = await this.judge.judge(roomId, state, pdu, eventId, gapStates);
    if (verdict.kind === 'rejected' && !verdict.store) return { outcome: 'rejected', eventId, reason: verdict.reason, stored: false };
    const { redaction, withheld } = verdict.kind === 'accepted' ? await this.builder.receivedRedaction(roomId, pdu, state) : {};
    // A redaction that can never apply to its target: kept in the DAG, hidden from clients.
    if (withheld !== undefined && verdict.kind === 'accepted') verdict = { kind: 'soft_failed', reason: withheld, before: verdict.before };
    const { stream } = await this.commit(roomId, { eventId, pdu, redaction }, state, verdict);
    switch (verdict.kind) {
      case 'accepted':
        return { outcome: 'accepted', eventId, stream };
      case 'soft_failed':
        return { outcome: 'soft_failed', eventId, stream, reason: verdict.reason };
      case 'outlier':
        return { outcome: 'outlier', eventId, stream, reason: verdict.reason };
      case 'rejected':
        return { outcome: 'rejected', eventId, reason: verdict.reason, stored: true };
    }
  }

  /** Persists an event with its verdict, then updates the in-memory state and wakes readers. */
  private async commit(roomId: string, p: Prepared, state: RoomState, verdict: Verdict): Promise<SubmitResult> {
    const { rooms } = this.deps.store;
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
        fence: this.fenceOf(roomId),
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
        const maps = await Promise.all(others.map((id) => this.dag.groupState((groups.get(id) as { after: number }).after)));
        current = await this.dag.resolve(roomId, state.version, [after, ...maps], [{ eventId: p.eventId, pdu: p.pdu }]);
      }
      const was = state.stateMap();
      stateDelta = changedEntries(was, current);
      stateRemoved = removedKeys(was, current);
    }

    let stream: number;
    const push = this.deps.pushActions ? await this.deps.pushActions(p.eventId, p.pdu, state) : { rows: [], all: [] };
    const outbound = this.outboundOf(p, state);
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
        fence: this.fenceOf(roomId),
        outbound,
      }));
    } catch (err) {
      // The store may or may not have written; reload state from it next time.
      this.states.delete(roomId);
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
        this.states.delete(roomId);
      }
    }
    return this.announce(roomId, p, stream, push, [...stateDelta, ...stateRemoved], outbound?.destinations);
  }

  /** The PDU to queue with an accepted event (see RoomInputDeps.pduDestinations). */
  private outboundOf(p: Prepared, before: RoomState): { destinations: string[]; pdu: JsonObject } | undefined {
    const destinations = this.deps.pduDestinations?.(p.eventId, p.pdu, before);
    if (destinations === undefined) return undefined;
    const { unsigned: _u, ...pdu } = p.pdu;
    return { destinations, pdu: pdu as JsonObject };
  }

  /** After an accepted event is durable: hands it on and wakes the readers of `changed` members. */
  private announce(roomId: string, p: Prepared, stream: number, push: PushOutcome, changed: readonly StateKeyRef[], queuedFor?: readonly string[]): SubmitResult {
    this.deps.onPersisted?.({ eventId: p.eventId, pdu: p.pdu, stream, pushActions: push.all, ...(queuedFor ? { queuedFor } : {}) });
    const userIds = changed.filter((e) => e.type === 'm.room.member').map((e) => e.stateKey);
    this.deps.notifier.publish({ stream, roomId, userIds: userIds.length > 0 ? userIds : undefined });
    return { eventId: p.eventId, stream, deduplicated: false };
  }
}

/** The forward extremities once `p` (whose state before is linear or resolved) is in the room. */
function extremitiesAfter(state: RoomState, p: Prepared): string[] {
  const prevSet = new Set(prevEventIds(p.pdu));
  return [...state.extremities.filter((id) => !prevSet.has(id)), p.eventId];
}

export { stateTuple };

type PushOutcome = { rows: PushActionInput[]; bulk?: PushBulkInput; all: PushActionInput[] };

function txnKey(roomId: string, txn: NonNullable<EventDraft['txn']>): string {
  return JSON.stringify([roomId, txn.userId, txn.deviceId, txn.scope, txn.txnId]);
}

/** The outcome of an event stored earlier (receive is idempotent). */
function outcomeOf(ev: StoredEvent): InputOutcome {
  if (ev.rejected !== null) return { outcome: 'rejected', eventId: ev.eventId, reason: ev.rejected, stored: true };
  if (ev.outlier) return { outcome: 'outlier', eventId: ev.eventId, stream: ev.stream, reason: 'already stored as an outlier' };
  if (ev.softFailed) return { outcome: 'soft_failed', eventId: ev.eventId, stream: ev.stream, reason: 'already stored as soft-failed' };
  return { outcome: 'accepted', eventId: ev.eventId, stream: ev.stream };
}
