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
//
// Layout: the queues and pipeline tails are room-queue.ts; writing a judged event and advancing
// the in-memory state, event-committer.ts; the writes for rooms known through other servers
// (send_join, remote invites and knocks, backfill), remote-room-writes.ts; the types,
// room-input-types.ts. This class keeps the entry points, building, checking and the cache.

import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { authEventIds, roomIdFromCreateEvent } from '../protocol/events.js';
import { roomVersionRules } from '../protocol/room-versions.js';
import type { Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { StoredEvent } from '../store/types.js';
import { StaleWriterError, StoreConflictError } from '../store/types.js';
import { DagState } from './dag-state.js';
import { StaticKeyRing, type KeyRing } from './key-ring.js';
import { resolveState as resolveStateV } from '../protocol/state-res/index.js';
import { checkAgainstAuthEvents, checkAgainstState, checkFormat, checkHashOrRedact, checkSignatures } from './pdu-checks.js';
import { RoomState } from './room-state.js';
import { EventJudge, lookupIn, type Verdict } from './event-judge.js';
import type { StateMap } from './state-resolver.js';
import { EventBuilder, type EventDraft, type Prepared } from './event-builder.js';
import { EventCommitter, extremitiesAfter } from './event-committer.js';
import { RemoteRoomWrites } from './remote-room-writes.js';
import type { InputOutcome, PushOutcome, RoomInputDeps, SubmitResult } from './room-input-types.js';
import { RoomQueue } from './room-queue.js';

export type { EventDraft } from './event-builder.js';
export type { SubmitResult, InputOutcome, RoomInputDeps } from './room-input-types.js';

export class RoomInput {
  private readonly queue = new RoomQueue();
  /** Client transactions queued or in flight, so a retry during the pipeline is deduplicated. */
  private readonly pendingTxns = new Map<string, Promise<SubmitResult>>();
  private readonly states: LRUCache<string, RoomState>;
  private readonly now: () => number;
  private readonly dag: DagState;
  private readonly judge: EventJudge;
  private readonly keyRing: KeyRing;
  private readonly builder: EventBuilder;
  private readonly committer: EventCommitter;
  private readonly remote: RemoteRoomWrites;

  constructor(private readonly deps: RoomInputDeps, cacheRooms = 10_000) {
    this.now = deps.now ?? Date.now;
    this.states = new LRUCache({ max: cacheRooms });
    this.keyRing = deps.keyRing ?? StaticKeyRing.forServer(deps.serverName, [deps.signingKey]);
    this.builder = new EventBuilder({ serverName: deps.serverName, signingKey: deps.signingKey, keyRing: this.keyRing, rooms: deps.store.rooms, now: this.now });
    this.dag = new DagState(deps.store.rooms, deps.resolveState ?? resolveStateV);
    this.judge = new EventJudge(deps.store.rooms, this.dag);
    const fenceOf = (roomId: string) => this.fenceOf(roomId);
    this.committer = new EventCommitter({ deps, queue: this.queue, states: this.states, dag: this.dag, fenceOf });
    this.remote = new RemoteRoomWrites({
      deps,
      queue: this.queue,
      now: this.now,
      forget: (roomId) => this.states.delete(roomId),
      load: (roomId) => this.load(roomId),
      commit: (roomId, p, state, verdict) => this.committer.commit(roomId, p, state, verdict),
      fenceOf,
    });
  }

  /**
   * Accepts an event from outside (federation) through the room's queue. Never throws for a
   * bad event; store failures still reject the promise. `gapStates`: the states after the prev
   * events that could not be fetched, as the sender reported them (see EventJudge.judge).
   * `relay`: the origin handed us the event to pass on to the room (send_join, send_leave,
   * send_knock): if accepted, its PDU is queued for the room's other servers in its own commit.
   */
  receive(roomId: string, pdu: unknown, origin: string, gapStates?: readonly StateMap[], opts?: { relay?: boolean }): Promise<InputOutcome> {
    return this.enqueue(roomId, () => this.receiveJob(roomId, pdu, origin, gapStates, opts?.relay === true));
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
    const durable = withPush.map(({ p, push, extremities }, i) => this.committer.queueLinear(newRoomId, p, state, push, extremities, i === 0 ? room : undefined));
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
      return this.committer.commit(roomId, p, state, verdict);
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
   * A room joined through another server (send_join): see RemoteRoomWrites.adoptRoom.
   */
  adoptRoom(...args: Parameters<RemoteRoomWrites['adoptRoom']>): Promise<SubmitResult> {
    return this.remote.adoptRoom(...args);
  }

  /** An invite from another server to a room this server is not in: see RemoteRoomWrites. */
  recordRemoteInvite(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu): Promise<void> {
    return this.remote.recordRemoteInvite(roomId, version, eventId, pdu);
  }

  /**
   * A local user's knock on a room this server does not know, accepted through another server
   * (make_knock, send_knock): recorded like such an invite, as the room's only event.
   */
  recordRemoteKnock(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu): Promise<void> {
    return this.recordRemoteInvite(roomId, version, eventId, pdu);
  }

  /** History fetched from another server, stored below every other event: see RemoteRoomWrites. */
  storeBackfill(roomId: string, events: Array<{ eventId: string; pdu: Pdu }>): Promise<number> {
    return this.remote.storeBackfill(roomId, events);
  }

  /** The rejection of a remote invite, made through the inviting server: see RemoteRoomWrites. */
  recordRemoteLeave(roomId: string, eventId: string, pdu: Pdu): Promise<void> {
    return this.remote.recordRemoteLeave(roomId, eventId, pdu);
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
    await this.queue.drain();
  }

  private drained(roomId: string): Promise<void> {
    return this.queue.drained(roomId);
  }

  private enqueue<T>(roomId: string, job: () => Promise<T>): Promise<T> {
    return this.queue.enqueue(roomId, job);
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
      return { durable: this.committer.queueLinear(roomId, p, state, push, extremitiesAfter(state, p)) };
    }
    // A fork needs the store to resolve against: no pipelining.
    await this.drained(roomId);
    return { durable: Promise.resolve(await this.committer.commit(roomId, p, state, verdict)) };
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

  private async receiveJob(roomId: string, raw: unknown, origin: string, gapStates: readonly StateMap[] | undefined, relay: boolean): Promise<InputOutcome> {
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
    const { stream } = await this.committer.commit(roomId, { eventId, pdu, redaction }, state, verdict, relay ? origin : undefined);
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
}

export { stateTuple };

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
