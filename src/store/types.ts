// The domain-level storage contract. Every backend (SQLite today, Cassandra later) implements
// exactly this; nothing above src/store sees SQL, rows or transactions.
//
// Rules every implementation keeps:
// - All methods are async and may be called concurrently. A backend serialises what it must.
// - Stream positions are one global, strictly increasing integer sequence shared by all durable
//   streams (room events, account data, receipts, and later to-device, device lists). A backend
//   reserves a position, persists, then completes it; `currentPosition()` only ever returns a
//   position P such that every write at or below P is durable and visible to readers. A reader
//   bounded by `currentPosition()` therefore never skips a write that is still in flight.
// - A write promise resolves only after the data is committed (durable per the configured
//   commit policy). Callers acknowledge clients only after that.
// - Writes for one room are issued by one writer at a time (the room-input queue); backends need
//   not guard against concurrent `persistEvent` calls for the same room, but must allow them for
//   different rooms.
// - No method spans domains transactionally except where its doc says so.
// - Returned objects are owned by the caller (backends must not hand out shared mutable state).

import type { EventExpiryStore } from './expiry-types.js';
import type { PeekStore } from './peek-types.js';
import type { MediaStore } from '../media/media-store.js';
import type { JsonObject, Pdu, RoomVersion } from '../protocol/types.js';
import type { DirectoryStore, NotificationStore, PushActionInput, PushBulkInput, ReceiptStore, RelationStore } from './chat-types.js';
import type { E2eeStore } from './e2ee-types.js';
import type { DeliveryStore, PusherStore } from './push-types.js';
import type { FederationQueueStore } from './federation-types.js';
import type { IdentityBindingStore } from './identity-types.js';
import type { ThreepidStore } from './threepid-types.js';
import type { MediaMetaStore } from './media-types.js';
import type { SearchStore } from './search-types.js';
import type { AdminStore } from './admin-types.js';
import type { AppServiceStore } from './appservice-types.js';
import type { UnpositionedChange } from './change-types.js';
import type { AdvanceListener, ChangeListener } from './stream-id.js';

export type * from './chat-types.js';
export type * from './e2ee-types.js';
export type * from './appservice-types.js';
export type * from './push-types.js';
export type * from './federation-types.js';
export type * from './media-types.js';
export type * from './search-types.js';
export type * from './admin-types.js';

export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

/** A write from a room writer whose fencing epoch is older than the room's latest owner's. */
export class StaleWriterError extends StoreConflictError {
  constructor(roomId: string, epoch: number, recorded: number) {
    super(`room ${roomId}: writer epoch ${epoch} is older than the room's owner epoch ${recorded}`);
    this.name = 'StaleWriterError';
  }
}

/**
 * The backend could not answer in time or at all (a timeout, an overloaded or unreachable node).
 * Transient: the operation may be retried, and for a write it may or may not have been applied,
 * so callers retry only idempotent operations (sends carry their transaction ID). The API answers
 * it with a retryable 503.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'StoreUnavailableError';
  }
}

// ---------------------------------------------------------------------------------------------
// Accounts, devices, access tokens

export interface UserRecord {
  userId: string;
  /** scrypt hash string, or null for accounts that cannot log in with a password. */
  passwordHash: string | null;
  admin: boolean;
  deactivated: boolean;
  createdTs: number;
  displayname: string | null;
  avatarUrl: string | null;
  /** A guest account (spec "Guest Access"): limited to the endpoints guests may use. */
  isGuest: boolean;
}

export interface NewUser {
  userId: string;
  passwordHash: string | null;
  admin: boolean;
  createdTs: number;
  displayname: string | null;
  /** Defaults to false. */
  isGuest?: boolean;
}

export interface DeviceRecord {
  userId: string;
  deviceId: string;
  displayName: string | null;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
  lastSeenUserAgent: string | null;
}

export interface TokenOwner {
  userId: string;
  deviceId: string;
}

/** What an access token authenticates: its owner, and whether that account is a guest's. */
export interface AccessTokenInfo extends TokenOwner {
  isGuest: boolean;
}

export interface AccountStore {
  /** Throws StoreConflictError if the user ID is taken. */
  createUser(user: NewUser): Promise<void>;
  getUser(userId: string): Promise<UserRecord | null>;
  setPasswordHash(userId: string, passwordHash: string): Promise<void>;
  /** Marks the account deactivated and clears its password hash; devices/tokens are removed separately. */
  deactivateUser(userId: string): Promise<void>;
  /** Fields set to undefined are left unchanged; null clears them. */
  setProfile(userId: string, profile: { displayname?: string | null; avatarUrl?: string | null }): Promise<void>;
  countUsers(): Promise<number>;
  /** Makes a guest account a full account with this password; false if it is not a guest's. */
  upgradeGuest(userId: string, passwordHash: string): Promise<boolean>;
  /**
   * Records that the user was erased at stream position `stream`. The first erasure counts: a
   * second call leaves the recorded position unchanged. Returns the recorded position.
   */
  markErased(userId: string, stream: number): Promise<number>;
  /** The erasure position of each of `userIds` that was erased; others are absent. */
  getErasures(userIds: string[]): Promise<Map<string, number>>;

  /** Stores an OpenID token (its hash) until `expiresTs`; prunes expired ones. */
  addOpenIdToken(tokenHash: string, userId: string, expiresTs: number): Promise<void>;
  /** The user an OpenID token was issued to, if it exists and has not expired at `now`. */
  lookupOpenIdToken(tokenHash: string, now: number): Promise<string | null>;
}

export interface DeviceStore {
  /**
   * Creates the device, or keeps it when it exists: then the display name is updated if given
   * (non-null) and last-seen is updated to `ts` (and `ip`, if given).
   */
  upsertDevice(device: { userId: string; deviceId: string; displayName: string | null; ts: number; ip: string | null }): Promise<void>;
  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null>;
  listDevices(userId: string): Promise<DeviceRecord[]>;
  setDeviceDisplayName(userId: string, deviceId: string, displayName: string | null): Promise<boolean>;
  /** Deletes the device and every access token of it. Returns false if it did not exist. */
  deleteDevice(userId: string, deviceId: string): Promise<boolean>;
  /** Records last-seen information; cheap, may be coalesced by the backend. */
  touchDevice(userId: string, deviceId: string, ts: number, ip: string | null, userAgent?: string | null): Promise<void>;

  /** Stores only the hash of an access token. */
  addAccessToken(tokenHash: string, owner: TokenOwner, ts: number): Promise<void>;
  lookupAccessToken(tokenHash: string): Promise<AccessTokenInfo | null>;
  deleteAccessToken(tokenHash: string): Promise<void>;
  /** Deletes every token of the user (logout/all, deactivate, password change without logout_devices=false). */
  deleteAccessTokensForUser(userId: string, exceptDeviceId?: string): Promise<void>;
}

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
  /** Known events citing `eventId` as a prev event. */
  getChildEvents(eventId: string): Promise<string[]>;
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

// ---------------------------------------------------------------------------------------------
// Per-user data

export interface AccountDataRecord {
  /** '' for global account data. */
  roomId: string;
  type: string;
  content: JsonObject;
  stream: number;
}

export interface UserDataStore {
  /** Stores account data (roomId '' = global); returns its stream position, completed before resolve. */
  setAccountData(userId: string, roomId: string, type: string, content: JsonObject): Promise<number>;
  getAccountData(userId: string, roomId: string, type: string): Promise<JsonObject | null>;
  /** All account data of the user (global and per room). */
  getAllAccountData(userId: string): Promise<AccountDataRecord[]>;
  /** Account data changed in (fromExclusive, toInclusive]. */
  getAccountDataChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<AccountDataRecord[]>;

  /** Stores the filter JSON text exactly as given; returns a new filter ID (never starts with '{'). */
  createFilter(userId: string, filterJson: string): Promise<string>;
  getFilter(userId: string, filterId: string): Promise<string | null>;

  /** Generic idempotency cache for non-event client requests (e.g. sendToDevice). */
  getTxnResponse(userId: string, deviceId: string, scope: string, txnId: string): Promise<JsonObject | null>;
  /** The first response stored for a key wins; later puts for it are ignored. */
  putTxnResponse(userId: string, deviceId: string, scope: string, txnId: string, response: JsonObject): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

export interface Store {
  readonly accounts: AccountStore;
  readonly devices: DeviceStore;
  readonly rooms: RoomStore;
  readonly userData: UserDataStore;
  readonly receipts: ReceiptStore;
  readonly notifications: NotificationStore;
  readonly relations: RelationStore;
  readonly directory: DirectoryStore;
  readonly e2ee: E2eeStore;
  readonly delivery: DeliveryStore;
  readonly pushers: PusherStore;
  /** Media repository metadata (the bytes are in a MediaStore, src/media). */
  readonly media: MediaMetaStore;
  readonly search: SearchStore;
  readonly admin: AdminStore;
  /** Application-service delivery positions and AS room directories. */
  readonly appServices: AppServiceStore;
  /** Outbound federation: per-destination logs and delivery positions. */
  readonly federationQueue: FederationQueueStore;
  /** 3PID bindings made at identity servers on users' behalf. */
  readonly identityBindings: IdentityBindingStore;
  /** Email addresses on accounts and their validation sessions. */
  readonly threepids: ThreepidStore;
  /** Self-destructing messages (MSC2228): when each is pruned. */
  readonly eventExpiry: EventExpiryStore;
  /** MSC2753 peeks: the rooms each device is peeking into. */
  readonly peeks: PeekStore;
  /** The highest stream position below which everything is persisted and readable. */
  currentPosition(): number;
  /**
   * Finishes in-flight writes, then closes. Further calls reject. Idempotent: every call after
   * the first resolves when the first does.
   */
  close(): Promise<void>;
}

/** A Store plus the hooks the composition root wires (implemented by every backend). */
export interface StoreBackend extends Store {
  /** The completion hook: change records in position order as the watermark passes them. */
  onChanges(listener: ChangeListener): () => void;
  /** Called synchronously whenever currentPosition() advances. */
  onStreamAdvance(listener: AdvanceListener): () => void;
  /** Unpositioned changes (device one-time/fallback keys, purges), right after each commit. */
  onUnpositionedChanges(listener: (changes: UnpositionedChange[]) => void): void;
}

/**
 * A backend that several processes open at once (Cassandra). Each instance publishes its own
 * writes on the replication stream (src/cluster/replication.ts) and lets readers see a position
 * only once the cluster watermark passed it.
 */
export interface SharedStoreBackend extends StoreBackend {
  readonly shared: true;
  /** Unique among live instances; the low bits of this instance's positions. */
  readonly workerId: number;
  /** A position at or below which this instance will complete no further write. */
  promise(): number;
  /** Writes resolve only once `gate(pos)` resolves too (the cluster watermark reached pos). */
  setPositionGate(gate: (pos: number) => Promise<void>): void;
  /** This instance's token on its worker ID's lease, published to the other workers. */
  readonly leaseOwner?: string;
  /** False once this instance lost its worker lease (it must write nothing more). */
  readonly writable?: boolean;
  /**
   * Takes `workerId`'s lease from `owner` (a silent instance): true once `owner` no longer holds
   * it; it then starts no write after `leaseStaleMs`.
   */
  revokeWorker?(workerId: number, owner: string): Promise<boolean>;
  readonly leaseStaleMs?: number;
  /** Calls `listener` each time this instance finds its worker lease lost. */
  onLeaseLost?(listener: () => void): void;
  /**
   * After losing the lease: waits until this instance's writes under it have finished, then
   * claims a new one (`workerId` and `leaseOwner` change); writes stay refused until
   * admitWrites(). Rejects when no lease could be claimed (the caller tries again).
   */
  rejoin?(): Promise<void>;
  admitWrites?(): void;
  /** Media bytes in the shared backend, chunked (media.store: cassandra). */
  readonly mediaBlobs?: (chunkBytes: number, logger?: { warn: (obj: object, msg: string) => void }) => MediaStore;
}

export function isSharedBackend(b: StoreBackend): b is SharedStoreBackend {
  return (b as Partial<SharedStoreBackend>).shared === true;
}
