// The single entry point for new events into a room. Client sends (and later federation) go
// through `submit`, which per room runs strictly one at a time: build (prev/auth/depth), sign,
// authorise against current state, persist, update the in-memory state, then notify. That queue
// is what gives each room one server-assigned total order; the store assigns the stream position.
//
// Concurrency: any number of rooms progress in parallel; within a room jobs are FIFO. The
// in-memory room state is owned by the queue and only touched from inside a job.

import { LRUCache } from 'lru-cache';
import { MatrixError } from '../api/errors.js';
import { AuthError, authEventTypesFor, checkEventAuth } from '../protocol/auth-rules.js';
import { computeEventId, MAX_PDU_BYTES, pduSize, signEvent } from '../protocol/events.js';
import { redactEvent } from '../protocol/redaction.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { StateEntry, Store, StoredEvent } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { RoomState } from './room-state.js';

export interface EventDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: JsonObject;
  /** Target of an m.room.redaction. */
  redacts?: string;
  /** Client idempotency: a retry with the same (room, user, device, txnId) returns the first event. */
  txn?: { userId: string; deviceId: string; txnId: string };
}

export interface SubmitResult {
  eventId: string;
  stream: number;
  /** True when the draft was a retry of an earlier transaction and nothing new was written. */
  deduplicated: boolean;
}

export interface RoomInputDeps {
  store: Store;
  notifier: Notifier;
  serverName: string;
  signingKey: SigningKey;
  now?: () => number;
  onPersisted?: () => void;
}

export class RoomInput {
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly states: LRUCache<string, RoomState>;
  private readonly now: () => number;

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
   * can interleave with room creation.
   */
  createRoom(roomId: string, version: RoomVersion, creator: string, drafts: EventDraft[]): Promise<SubmitResult[]> {
    return this.enqueue(roomId, async () => {
      await this.deps.store.rooms.createRoom({ roomId, roomVersion: version, creator, createdTs: this.now() });
      this.states.set(roomId, RoomState.empty(version));
      const out: SubmitResult[] = [];
      for (const d of drafts) out.push(await this.apply(roomId, d));
      return out;
    });
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
    const { store } = this.deps;
    const state = await this.load(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');

    if (draft.txn) {
      const existing = await store.rooms.getEventIdForTxn(roomId, draft.txn.userId, draft.txn.deviceId, draft.txn.txnId);
      if (existing) {
        const ev = await store.rooms.getEvent(existing);
        return { eventId: existing, stream: ev?.stream ?? 0, deduplicated: true };
      }
    }

    const version = state.version;
    const pdu = this.buildPdu(roomId, draft, state);
    const signed = signEvent(pdu, this.deps.serverName, this.deps.signingKey, version);
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

    const redaction = draft.type === 'm.room.redaction' && draft.redacts
      ? await this.redactionTarget(roomId, draft.redacts, signed, state)
      : undefined;

    const stateDelta: StateEntry[] =
      draft.stateKey !== undefined ? [{ type: draft.type, stateKey: draft.stateKey, eventId }] : [];

    let stream: number;
    try {
      ({ stream } = await store.rooms.persistEvent({
        eventId,
        pdu: signed,
        stateDelta,
        forwardExtremities: [eventId],
        txn: draft.txn,
        redaction,
      }));
    } catch (err) {
      // The store may or may not have written; reload state from it next time.
      this.states.delete(roomId);
      throw err;
    }
    state.applyPersisted(eventId, signed);
    if (redaction) state.applyRedaction(redaction.targetEventId, redaction.redactedPdu);
    this.deps.onPersisted?.();

    const userIds = draft.type === 'm.room.member' && draft.stateKey ? [draft.stateKey] : undefined;
    this.deps.notifier.publish({ stream, roomId, userIds });
    return { eventId, stream, deduplicated: false };
  }

  private buildPdu(roomId: string, draft: EventDraft, state: RoomState): Pdu {
    const authEvents: string[] = [];
    for (const [t, k] of authEventTypesFor({ type: draft.type, state_key: draft.stateKey, sender: draft.sender, content: draft.content })) {
      const e = state.get(t, k);
      if (e && !authEvents.includes(e.eventId)) authEvents.push(e.eventId);
    }
    const content: JsonObject = { ...draft.content };
    const pdu: Pdu = {
      room_id: roomId,
      sender: draft.sender,
      type: draft.type,
      content,
      origin_server_ts: this.now(),
      depth: state.nextDepth(),
      prev_events: state.extremities.slice(0, 20),
      auth_events: authEvents,
      hashes: { sha256: '' },
      signatures: {},
    };
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (draft.type === 'm.room.redaction' && draft.redacts) {
      // v11 moved `redacts` into content; v10 keeps it top-level.
      if (state.version === '11') content.redacts = draft.redacts;
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
    if (!target || target.roomId !== roomId) return undefined; // redacting an unknown event is allowed but a no-op
    if (target.pdu.sender !== redaction.sender && !state.canRedactOthers(redaction.sender)) {
      throw new MatrixError('M_FORBIDDEN', 'You cannot redact events of other users');
    }
    if (target.redactedBy) return undefined;
    return { targetEventId: targetId, redactedPdu: redactEvent(target.pdu, state.version) as Pdu };
  }
}

export { stateTuple };
