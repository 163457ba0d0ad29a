// The single entry point for new events into a room. Client sends (and later federation) go
// through `submit`, which per room runs strictly one at a time: build (prev/auth/depth), sign,
// authorise against current state, persist, update the in-memory state, then notify. That queue
// is what gives each room one server-assigned total order; the store assigns the stream position.
//
// Concurrency: any number of rooms progress in parallel; within a room jobs are FIFO. The
// in-memory room state is owned by the queue and only touched from inside a job.

import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { AuthError, authEventTypesFor, checkEventAuth } from '../protocol/auth-rules.js';
import {
  computeEventId,
  eventIdAssignedByServer,
  eventReferences,
  MAX_PDU_BYTES,
  newServerEventId,
  pduSize,
  roomIdFromCreateEvent,
  signEvent,
} from '../protocol/events.js';
import { redactEvent } from '../protocol/redaction.js';
import { roomVersionRules } from '../protocol/room-versions.js';
import { CanonicalJsonError } from '../protocol/canonical-json.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { PushActionInput, PushBulkInput, StateEntry, Store, StoredEvent } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { RoomState } from './room-state.js';

export interface EventDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: JsonObject;
  /** Target of an m.room.redaction. */
  redacts?: string;
  /**
   * Client idempotency: a retry with the same (room, user, device, scope, txnId) returns the first
   * event. `scope` names the endpoint (the spec scopes transaction IDs by request path).
   */
  txn?: { userId: string; deviceId: string; txnId: string; scope: string };
}

export interface SubmitResult {
  eventId: string;
  stream: number;
  /** True when the draft was a retry of an earlier transaction and nothing new was written. */
  deduplicated: boolean;
}

interface Prepared {
  eventId: string;
  pdu: Pdu;
  stateDelta: StateEntry[];
  redaction?: { targetEventId: string; redactedPdu: Pdu };
  txn?: EventDraft['txn'];
}

export interface RoomInputDeps {
  store: Store;
  notifier: Notifier;
  serverName: string;
  signingKey: SigningKey;
  now?: () => number;
  /** Called after each event is durable (metrics, push dispatch). Must not throw or block. */
  onPersisted?: (info: { eventId: string; pdu: Pdu; stream: number; pushActions: PushActionInput[] }) => void;
  /**
   * Push-rule results for the members an event notifies; `rows` and `bulk` are stored atomically
   * with the event (see PersistEventInput.pushBulk), `all` (everyone's) goes to onPersisted.
   */
  pushActions?: (
    eventId: string,
    pdu: Pdu,
    state: RoomState,
  ) => Promise<{ rows: PushActionInput[]; bulk?: PushBulkInput; all: PushActionInput[] }>;
}

export class RoomInput {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly states: LRUCache<string, RoomState>;
  private readonly now: () => number;
  /** Last origin_server_ts given to a create event whose hash is the room ID (see buildPdu). */
  private lastDerivedCreateTs = 0;

  constructor(private readonly deps: RoomInputDeps, cacheRooms = 10_000) {
    this.now = deps.now ?? Date.now;
    this.states = new LRUCache({ max: cacheRooms });
  }

  /** Appends one event to the room. Rejects with MatrixError on auth failure or bad input. */
  submit(roomId: string, draft: EventDraft): Promise<SubmitResult> {
    return this.enqueue(roomId, () => this.apply(roomId, draft));
  }

  /**
   * Creates a room and appends its initial events in order as one queued job, so no other event
   * can interleave with room creation. `roomId` is null for versions whose room ID is derived
   * from the create event (v12): the ID is known once that event is built, and returned.
   * `beforeWrite` runs in the job once every initial event is authorised and before anything is
   * written (to claim an alias for the new ID); if it throws, nothing is written.
   */
  async createRoom(
    roomId: string | null,
    version: RoomVersion,
    creator: string,
    drafts: EventDraft[],
    beforeWrite?: (roomId: string) => Promise<void>,
  ): Promise<{ roomId: string; events: SubmitResult[] }> {
    if ((roomId === null) !== roomVersionRules(version).roomIdFromCreateEvent) {
      throw new Error(`room version ${version} ${roomId === null ? 'needs' : 'derives'} the room ID`);
    }
    // Build and authorise every initial event first, against a scratch state: if any is
    // rejected nothing is written and the client gets M_INVALID_ROOM_STATE, not half a room.
    // Initial events depend on nothing but each other, so this needs no place in the queue.
    const scratch = RoomState.empty(version);
    const prepared: Prepared[] = [];
    let id = roomId;
    for (const d of drafts) {
      let p: Prepared;
      try {
        p = await this.prepare(id ?? '', d, scratch);
      } catch (err) {
        if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
          throw new MatrixError('M_INVALID_ROOM_STATE', `Initial state rejected: ${err.message}`);
        }
        throw err;
      }
      id ??= roomIdFromCreateEvent(p.pdu, version) ?? null;
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
      await beforeWrite?.(newRoomId);
      await this.deps.store.rooms.createRoom({ roomId: newRoomId, roomVersion: version, creator, createdTs: this.now() });
      const state = RoomState.empty(version);
      this.states.set(newRoomId, state);
      const events: SubmitResult[] = [];
      for (const p of prepared) events.push(await this.commit(newRoomId, p, state));
      return { roomId: newRoomId, events };
    });
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
    beforeCommit?: (eventId: string) => Promise<void>,
  ): Promise<SubmitResult> {
    return this.enqueue(roomId, async () => {
      const state = await this.load(roomId);
      if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
      const prepared = await this.prepare(roomId, await build(state), state);
      await beforeCommit?.(prepared.eventId);
      return this.commit(roomId, prepared, state);
    });
  }

  /**
   * Builds and authorises `draft` against `state` exactly as a submit would, writing nothing.
   * For checks that must pass before work elsewhere starts (inside a `submitHolding` build).
   */
  async authorise(roomId: string, draft: EventDraft, state: RoomState): Promise<void> {
    await this.prepare(roomId, draft, state);
  }

  /** Current state of a room as the writer sees it (loaded on demand). */
  async currentState(roomId: string): Promise<RoomState | null> {
    return this.enqueue(roomId, () => this.load(roomId));
  }

  /** Waits for every queued job to finish (used at shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.queues.values()]);
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

  private async apply(roomId: string, draft: EventDraft): Promise<SubmitResult> {
    const state = await this.load(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    if (draft.txn) {
      const { store } = this.deps;
      const { userId, deviceId, txnId, scope } = draft.txn;
      const existing = await store.rooms.getEventIdForTxn(roomId, userId, deviceId, txnId, scope);
      if (existing) {
        const ev = await store.rooms.getEvent(existing);
        return { eventId: existing, stream: ev?.stream ?? 0, deduplicated: true };
      }
    }
    return this.commit(roomId, await this.prepare(roomId, draft, state), state);
  }

  /** Builds, signs, size-checks and authorises an event against `state`. Writes nothing. */
  private async prepare(roomId: string, given: EventDraft, state: RoomState): Promise<Prepared> {
    const version = state.version;
    const draft = given.type === 'm.room.redaction' ? withRedactsTarget(given) : given;
    if (draft.type.includes('\u0000') || draft.stateKey?.includes('\u0000')) {
      throw new MatrixError('M_INVALID_PARAM', 'Event types and state keys may not contain NUL');
    }
    const pdu = this.buildPdu(roomId, draft, state);
    // v1/v2: the ID is ours to choose, and part of what gets hashed and signed.
    if (eventIdAssignedByServer(version)) pdu.event_id = newServerEventId(this.deps.serverName);
    let signed: Pdu;
    try {
      signed = signEvent(pdu, this.deps.serverName, this.deps.signingKey, version);
    } catch (err) {
      // Content from any path (createRoom's creation_content, initial_state, ...) that canonical
      // JSON cannot represent: floats, unsafe integers, lone surrogates.
      if (err instanceof CanonicalJsonError) throw new MatrixError('M_BAD_JSON', `Event content is not valid canonical JSON: ${err.message}`);
      throw err;
    }
    if (pduSize(signed) > MAX_PDU_BYTES) {
      throw new MatrixError('M_TOO_LARGE', `Event is larger than ${MAX_PDU_BYTES} bytes`);
    }
    const eventId = computeEventId(signed, version);
    try {
      checkEventAuth(signed, version, (t, k) => state.get(t, k)?.pdu);
    } catch (err) {
      if (err instanceof AuthError) throw new MatrixError('M_FORBIDDEN', err.message);
      throw err;
    }
    const redaction = draft.redacts !== undefined ? await this.redactionTarget(roomId, draft.redacts, signed, state) : undefined;
    const stateDelta: StateEntry[] =
      draft.stateKey !== undefined ? [{ type: draft.type, stateKey: draft.stateKey, eventId }] : [];
    if (draft.stateKey !== undefined) {
      // Outside hashes and signatures. Clients get prev_content from this at read time, so a
      // later redaction of the previous event is respected.
      const prev = state.get(draft.type, draft.stateKey);
      if (prev) signed.unsigned = { replaces_state: prev.eventId };
    }
    return { eventId, pdu: signed, stateDelta, redaction, txn: draft.txn };
  }

  /** Persists a prepared event, then updates the in-memory state and wakes readers. */
  private async commit(roomId: string, p: Prepared, state: RoomState): Promise<SubmitResult> {
    let stream: number;
    const push = this.deps.pushActions ? await this.deps.pushActions(p.eventId, p.pdu, state) : { rows: [], all: [] };
    try {
      ({ stream } = await this.deps.store.rooms.persistEvent({
        eventId: p.eventId,
        pdu: p.pdu,
        stateDelta: p.stateDelta,
        forwardExtremities: [p.eventId],
        txn: p.txn,
        redaction: p.redaction,
        pushActions: push.rows,
        pushBulk: push.bulk,
      }));
    } catch (err) {
      // The store may or may not have written; reload state from it next time.
      this.states.delete(roomId);
      throw err;
    }
    state.applyPersisted(p.eventId, p.pdu);
    if (p.redaction) state.applyRedaction(p.redaction.targetEventId, p.redaction.redactedPdu);
    this.deps.onPersisted?.({ eventId: p.eventId, pdu: p.pdu, stream, pushActions: push.all });
    const userIds = p.pdu.type === 'm.room.member' && p.pdu.state_key ? [p.pdu.state_key] : undefined;
    this.deps.notifier.publish({ stream, roomId, userIds });
    return { eventId: p.eventId, stream, deduplicated: false };
  }

  private buildPdu(roomId: string, draft: EventDraft, state: RoomState): Pdu {
    const rules = roomVersionRules(state.version);
    const authEvents: Array<{ eventId: string; pdu: Pdu }> = [];
    const selection = authEventTypesFor({ type: draft.type, state_key: draft.stateKey, sender: draft.sender, content: draft.content }, state.version);
    for (const [t, k] of selection) {
      const e = state.get(t, k);
      if (e && !authEvents.some((a) => a.eventId === e.eventId)) authEvents.push(e);
    }
    const content: JsonObject = { ...draft.content };
    const pdu: Pdu = {
      room_id: roomId,
      sender: draft.sender,
      type: draft.type,
      content,
      origin_server_ts: this.now(),
      depth: state.nextDepth(),
      // v1/v2 cite prev_events with their hashes, so they need the PDUs; later versions the IDs.
      prev_events: rules.eventReferencesWithHashes
        ? eventReferences(state.extremityEvents().slice(0, 20), state.version)
        : state.extremities.slice(0, 20),
      auth_events: eventReferences(authEvents, state.version),
      hashes: { sha256: '' },
      signatures: {},
    };
    if (draft.type === 'm.room.create' && rules.roomIdFromCreateEvent) {
      // v12: the create event has no room ID; the room ID is its hash. Two identical requests
      // in one millisecond would otherwise make the same room, so timestamps here never repeat.
      delete pdu.room_id;
      pdu.origin_server_ts = Math.max(pdu.origin_server_ts, this.lastDerivedCreateTs + 1);
      this.lastDerivedCreateTs = pdu.origin_server_ts;
    }
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (draft.type === 'm.room.redaction' && draft.redacts) {
      // v11 moved `redacts` into content; earlier versions keep it top-level.
      if (rules.redactsInContent) content.redacts = draft.redacts;
      else pdu.redacts = draft.redacts;
    }
    delete (pdu as Partial<Pdu>).hashes;
    return pdu;
  }

  /**
   * Client-side redaction rules on top of the auth rules: the target must be in this room, and a
   * user may redact others' events only with the `redact` power level.
   */
  private async redactionTarget(
    roomId: string,
    targetId: string,
    redaction: Pdu,
    state: RoomState,
  ): Promise<{ targetEventId: string; redactedPdu: Pdu } | undefined> {
    const target: StoredEvent | null = await this.deps.store.rooms.getEvent(targetId);
    // The auth rules let a remote server's redaction arrive before its target; a local client
    // has no such excuse, and a target in another room would redact nothing here (Synapse: 400).
    if (!target) throw new MatrixError('M_INVALID_PARAM', 'Cannot redact an event that does not exist', {}, 400);
    if (target.roomId !== roomId) throw new MatrixError('M_INVALID_PARAM', 'Cannot redact an event from a different room', {}, 400);
    if (target.pdu.sender !== redaction.sender && !state.canRedactOthers(redaction.sender)) {
      throw new MatrixError('M_FORBIDDEN', 'You cannot redact events of other users');
    }
    if (target.redactedBy) return undefined;
    return { targetEventId: targetId, redactedPdu: redactEvent(target.pdu, state.version) as Pdu };
  }
}

/**
 * Every m.room.redaction names its target, however it was sent: /redact passes it as `redacts`,
 * /send carries it in content (v11's home for it, and what clients send for every version). So
 * /send cannot skip the checks /redact gets.
 */
function withRedactsTarget(draft: EventDraft): EventDraft {
  const target = draft.redacts ?? draft.content.redacts;
  if (typeof target !== 'string' || !target.startsWith('$')) {
    throw new MatrixError('M_BAD_JSON', 'A redaction needs `redacts`: the ID of the event to redact');
  }
  return { ...draft, redacts: target };
}

export { stateTuple };
