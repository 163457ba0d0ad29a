// Storage contract for rooms, events and state.
// Same rules as src/store/types.ts, which composes it into Store: async, concurrent-safe,
// writes resolve after commit, stream positions come from the one global sequence and are
// completed before the write resolves; returned objects are the caller's.
// Writes for one room are issued by one writer at a time (the room-input queue): a backend need
// not guard against concurrent persistEvent calls for one room, but must allow them for
// different rooms.

import type { JsonObject, Pdu, RoomVersion } from '../protocol/types.js';
import type { PushActionInput, PushBulkInput } from './chat-types.js';

// ---------------------------------------------------------------------------------------------
// Rooms, events and state

export type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock';

export interface RoomRecord {
  roomId: string;
  roomVersion: RoomVersion;
  creator: string;
  createdTs: number;
}

/** A persisted event, as read back. */
export interface StoredEvent {
  eventId: string;
  roomId: string;
  /** Global stream position at which the event was persisted. */
  stream: number;
  /** The PDU as signed (redacted content if it was redacted later; see `redactedBy`). */
  pdu: Pdu;
  /** Event ID of the redaction that redacted this event, if any. */
  redactedBy: string | null;
  /** Set when the event was sent by a local device with a transaction ID. */
  txn: { deviceId: string; txnId: string } | null;
  /** Stored without the state before it (its prev events are unknown): never in the timeline. */
  outlier: boolean;
  /** Passed auth against the state before it but not against the room's current state. */
  softFailed: boolean;
  /** Why the event was rejected, or null. Rejected events are never cited, never state. */
  rejected: string | null;
}

/**
 * Where an event sits in the room's topological order: (depth, stream), compared as a pair.
 * Backfilled history has negative streams, so it sorts before every local event of equal depth.
 */
export interface TopologicalPosition {
  depth: number;
  stream: number;
}

/** Identifies one stored state (a state group). Opaque to callers; only meaningful to one store. */
export type StateGroupId = number;

export interface StateEntry {
  type: string;
  stateKey: string;
  eventId: string;
}

/** A state key without a value (see PersistEventInput.stateRemoved). */
export interface StateKeyRef {
  type: string;
  stateKey: string;
}

export interface PersistEventInput {
  eventId: string;
  pdu: Pdu;
  /**
   * The change this event makes to the room's resolved current state (for a plain state event:
   * itself). Empty for message events. State resolution may produce other entries.
   */
  stateDelta: StateEntry[];
  /**
   * Keys the event's resolution drops from the room's current state (state resolution can leave
   * a key with no value when every candidate fails auth). Disjoint from `stateDelta`'s keys.
   * A dropped m.room.member key leaves the user with no membership in the room.
   */
  stateRemoved?: StateKeyRef[];
  /** The room's forward extremities after this event. */
  forwardExtremities: string[];
  /**
   * Pipelining: the event is written only if the event with this ID is stored (in this room);
   * otherwise the write fails with StoreConflictError and writes nothing. Lets a room's writer
   * queue event n+1 before event n is durable without n+1 ever outliving a failed n.
   */
  dependsOn?: string;
  /** Idempotency record for a client send; written atomically with the event. */
  txn?: { userId: string; deviceId: string; txnId: string; scope?: string };
  /**
   * If this event is a redaction that takes effect, the target to redact in storage: the backend
   * replaces the target's stored PDU with `redactedPdu` and sets its `redactedBy`, atomically.
   * The target also stops relating to anything (see RelationStore).
   */
  redaction?: { targetEventId: string; redactedPdu: Pdu };
  /**
   * Push actions for the members to notify, written atomically with the event (all or nothing)
   * at the event's stream position. Relations (`m.relates_to`) are derived by the backend.
   */
  pushActions?: PushActionInput[];
  /**
   * One result shared by most joined members, stored once (see PushBulkInput); `pushActions`
   * then holds only the members it does not cover. Written atomically with the event too.
   */
  pushBulk?: PushBulkInput;
  /**
   * The event's status. Default: accepted into the timeline. Outliers get no state groups;
   * soft-failed and rejected events are stored with the state before them but never change the
   * room's current state, forward extremities, memberships, relations or push actions, and are
   * never returned by timeline reads. `stateDelta` and `forwardExtremities` are ignored for them.
   */
  outlier?: boolean;
  softFailed?: boolean;
  /** Rejection reason; the event is stored only so it is never processed or cited again. */
  rejected?: string;
  /**
   * The state before the event (not for outliers): a stored group with entries applied on top
   * (`group: null` means `delta` is the whole state). Absent: the room's current state, which is
   * right whenever the event's prev_events are exactly the forward extremities.
   */
  stateBefore?: { group: StateGroupId | null; delta: StateEntry[] };
  /**
   * The room writer's fencing epoch (src/cluster/room-owner.ts). A backend shared by several
   * workers refuses the write with StaleWriterError when a later owner of the room has written
   * with a higher epoch; a single-process backend (SQLite) ignores it.
   */
  fence?: { epoch: number };
  /**
   * The event was built and signed by this server for this write and handed to nobody yet, so
   * no other writer can be storing its ID: a fenced write may then skip the store's event ID
   * claim (the fence and the writer's own reads already exclude a duplicate in the room).
   */
  fresh?: boolean;
  /**
   * The room's record, written with this event (the room's first): if the room already exists
   * the write fails with StoreConflictError and the event is not written. Lets createRoom write
   * the record and its initial events in one transaction (SQLite: one group commit, atomic with
   * the event; Cassandra: the record's LWT runs first, as a separate createRoom would).
   * `roomId` must be the event's room.
   */
  createsRoom?: RoomRecord;
  /**
   * Outbound federation (src/store/federation-types.ts): `pdu` (the event as sent, without
   * `unsigned`) queued for each of `destinations` in the same write as the event, at the
   * event's own stream position, so a durable event is never missing from the queue of a server
   * it is for. Only for an accepted event at a new stream position (ignored otherwise, and when
   * `destinations` is empty).
   */
  outbound?: { destinations: readonly string[]; pdu: JsonObject };
  /**
   * A self-destructing message's due time (ms since the epoch; src/store/expiry-types.ts): its
   * expiry row is written in the same write as the event. Only for an accepted event at a new
   * stream position (ignored otherwise).
   */
  selfDestructAt?: number;
  /**
   * Backfilled history: stored at a position below every other event (negative, from a counter
   * of its own) rather than at a new stream position, so the stream readers never see it and
   * tokens already handed out stay valid. The caller supplies the event's DAG neighbours.
   */
  backfill?: boolean;
}

export interface PersistEventResult {
  /** Stream position (negative for backfill). */
  stream: number;
  /** State groups before and after the event (null for outliers). */
  stateGroupBefore: StateGroupId | null;
  stateGroupAfter: StateGroupId | null;
}

export interface RoomEventsQuery {
  roomId: string;
  /** 'b': stream <= from, descending. 'f': stream > from, ascending. */
  dir: 'b' | 'f';
  from: number;
  /** Stop bound: for 'b' events with stream > to; for 'f' events with stream <= to. */
  to?: number;
  /**
   * 'stream' (default): ordered by stream position (sync). 'topological': ordered by (depth,
   * stream) as /messages requires; `fromTopo`/`toTopo`, when given, replace `from`/`to` as bounds
   * with the same inclusive/exclusive sense, compared as (depth, stream) pairs.
   */
  order?: 'stream' | 'topological';
  fromTopo?: TopologicalPosition;
  toTopo?: TopologicalPosition;
  /** Never return events above this stream position (e.g. the completed position). */
  maxStream?: number;
  limit: number;
  /** Only events whose type is in this list (when given). */
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
}

export interface MembershipRecord {
  roomId: string;
  userId: string;
  membership: Membership;
  eventId: string;
  stream: number;
}

export interface RoomStore {
  /** Records a room before its create event is persisted. Throws StoreConflictError if it exists. */
  createRoom(room: RoomRecord): Promise<void>;
  getRoom(roomId: string): Promise<RoomRecord | null>;

  /**
   * Persists one event of one room atomically with its state delta, new forward extremities,
   * membership change, idempotency record and redaction. Assigns and returns its stream position.
   * Resolves once committed and `currentPosition()` has reached the returned position.
   * Throws StoreConflictError if the transaction ID was already used (the caller looks it up first)
   * or the event ID is already stored; nothing is written then.
   * A join, invite or knock of a user (as applied by the state delta) un-forgets the room for them.
   */
  persistEvent(input: PersistEventInput): Promise<PersistEventResult>;
  /**
   * A backend shared by several workers (optional): makes `epoch` the room's owner epoch, so no
   * writer with a lower one can persist from now on, and lands whatever an earlier owner had
   * committed. A new owner calls it before reading the room to build on. Throws
   * StaleWriterError when a higher epoch holds the room.
   */
  fenceRoom?(roomId: string, epoch: number): Promise<void>;

  getEvent(eventId: string): Promise<StoredEvent | null>;
  /** Missing IDs are simply absent from the result. */
  getEvents(eventIds: string[]): Promise<Map<string, StoredEvent>>;
  /**
   * The event a client transaction created. `scope` names the endpoint (e.g. "send/m.room.message"):
   * the same txnId on different endpoints is a different request. Default ''.
   */
  getEventIdForTxn(roomId: string, userId: string, deviceId: string, txnId: string, scope?: string): Promise<string | null>;

  getForwardExtremities(roomId: string): Promise<string[]>;
  /** Resolved current state of the room. */
  getCurrentState(roomId: string): Promise<StateEntry[]>;
  /** The room's resolved state as it was right after stream position `stream` (inclusive). */
  getStateAt(roomId: string, stream: number): Promise<StateEntry[]>;

  /** DAG edges: the prev_events each known event cites (absent IDs are unknown events). */
  getPrevEvents(eventIds: string[]): Promise<Map<string, string[]>>;
  /** State groups before/after each event (outliers and unknown events are absent). */
  getEventStateGroups(eventIds: string[]): Promise<Map<string, { before: StateGroupId; after: StateGroupId }>>;
  /** The whole state a group stands for; throws if the group does not exist. */
  getStateGroup(group: StateGroupId): Promise<StateEntry[]>;
  /** The group of the room's current state (null before the first state event). */
  getCurrentStateGroup(roomId: string): Promise<StateGroupId | null>;
  /** State right before / after an event; null for outliers and unknown events. */
  getStateAtEvent(eventId: string, when: 'before' | 'after'): Promise<StateEntry[] | null>;
  /**
   * The auth chain difference of state sets (each a list of event IDs): events in the auth
   * chain of some set but not of all, as state resolution v2 defines it. Answered from the auth
   * chain index without walking whole chains; unknown IDs are ignored.
   */
  getAuthChainDifference(roomId: string, stateSets: string[][]): Promise<Set<string>>;
  /**
   * Room 12's conflicted state subgraph (MSC4297): every event on an auth_events path from one
   * of `eventIds` to another, those events included. Also answered from the index.
   */
  getConflictedSubgraph(roomId: string, eventIds: string[]): Promise<Set<string>>;
  /** Topological position of each known event. */
  getTopologicalPositions(eventIds: string[]): Promise<Map<string, TopologicalPosition>>;
  /** State entries that changed in (fromExclusive, toInclusive], latest value per key. */
  getStateChanges(roomId: string, fromExclusive: number, toInclusive: number): Promise<StateEntry[]>;

  /**
   * Every value a state key has had, oldest first: the stream position at which the resolved
   * state changed and the event it changed to. Used for history visibility (a user's membership
   * and the room's history_visibility at a given event). `eventId` null: state resolution dropped
   * the key at that position (it has no value from there on).
   */
  getStateHistory(roomId: string, type: string, stateKey: string): Promise<Array<{ stream: number; eventId: string | null }>>;

  /**
   * Timeline paging (accepted events only: no outliers, soft-failed or rejected), by stream or
   * topological order. Results are ordered in the direction of travel.
   */
  getRoomEvents(query: RoomEventsQuery): Promise<StoredEvent[]>;
  /** Highest stream position of any event in each room (rooms with none are absent). */
  getRoomsMaxStream(roomIds: string[]): Promise<Map<string, number>>;

  /** Current membership of a user in a room, or null if they never had one. */
  getMembership(roomId: string, userId: string): Promise<MembershipRecord | null>;
  /** Current memberships of the user, optionally filtered. */
  getRoomsForUser(userId: string, memberships?: Membership[]): Promise<MembershipRecord[]>;
  /** The user's own membership changes in (fromExclusive, toInclusive], latest per room. */
  getMembershipChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<MembershipRecord[]>;
  /** Current members of a room with the given memberships (default: join). */
  getRoomMembers(roomId: string, memberships?: Membership[]): Promise<MembershipRecord[]>;
  /** Idempotent. Undone by the user's next join, invite or knock (see persistEvent). */
  forgetRoom(userId: string, roomId: string): Promise<void>;
  isRoomForgotten(userId: string, roomId: string): Promise<boolean>;

  /** Room aliases (`#alias:server` -> room). Throws StoreConflictError if the alias is taken. */
  createAlias(alias: string, roomId: string, creator: string): Promise<void>;
  getAlias(alias: string): Promise<{ roomId: string; creator: string } | null>;
  deleteAlias(alias: string): Promise<boolean>;
  getAliasesForRoom(roomId: string): Promise<string[]>;

  setRoomVisibility(roomId: string, visibility: 'public' | 'private'): Promise<void>;
  getRoomVisibility(roomId: string): Promise<'public' | 'private'>;
  /** Rooms listed in the public room directory. */
  listPublicRooms(): Promise<string[]>;
}

