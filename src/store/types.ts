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
//
// The per-domain interfaces live in *-types.ts beside this file (accounts, rooms, user data,
// chat, e2ee, push, federation, media, search, admin, ...) and are composed into Store here.

import type { EventExpiryStore } from './expiry-types.js';
import type { PeekStore } from './peek-types.js';
import type { MediaStore } from '../media/media-store.js';
import type { DirectoryStore, NotificationStore, ReceiptStore, RelationStore } from './chat-types.js';
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
import type { AccountStore, DeviceStore } from './account-types.js';
import type { RoomStore } from './room-types.js';
import type { UserDataStore } from './user-data-types.js';

export type * from './chat-types.js';
export type * from './e2ee-types.js';
export type * from './appservice-types.js';
export type * from './push-types.js';
export type * from './federation-types.js';
export type * from './media-types.js';
export type * from './search-types.js';
export type * from './admin-types.js';
export type * from './account-types.js';
export type * from './room-types.js';
export type * from './user-data-types.js';

export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

/** A write from a room writer whose fencing epoch is not the room's latest owner's (older, or another's). */
export class StaleWriterError extends StoreConflictError {
  /** `recorded`: the room's owner epoch the store holds (above `epoch`, or equal to it but another acquisition's). */
  constructor(roomId: string, readonly epoch: number, readonly recorded: number) {
    super(
      recorded === epoch
        ? `room ${roomId}: writer epoch ${epoch} was recorded by another owner of the room`
        : `room ${roomId}: writer epoch ${epoch} is older than the room's owner epoch ${recorded}`,
    );
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
