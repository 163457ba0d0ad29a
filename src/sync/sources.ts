// Pluggable parts of a /sync response that come from outside the room event stream. The sync
// builder (one for long-poll and socket alike) asks each source for what changed in the range.

import type { JsonObject } from '../protocol/types.js';
import type { StreamToken } from './token.js';
import type { DeviceSyncSource } from './device-source.js';
import type { PeekSource } from './peeks.js';

export interface SyncRange {
  userId: string;
  deviceId: string;
  /** Undefined on an initial sync. */
  since?: StreamToken;
  upTo: StreamToken;
  /** The client opted in to io.hearth.delivered events. */
  delivered: boolean;
  /** Set when the read model covers `since`: what may have changed after it (else: anything). */
  hints?: ChangeHints;
}

/**
 * Answers from the read model's change caches about (since, now]. "May have changed" is always
 * a safe answer; "did not change" must be certain, because the source then skips its read.
 */
export interface ChangeHints {
  /** Rooms among `roomIds` whose receipts may have changed. */
  receiptRooms(roomIds: string[]): string[];
  /** Rooms among `roomIds` whose delivered markers may have changed. */
  deliveredRooms(roomIds: string[]): string[];
  /** Whether the device may have new to-device messages. */
  toDeviceChanged(): boolean;
  /** Whether the user's device_lists may be non-empty. */
  deviceListsMayChange(): boolean;
}

/** Room-scoped ephemeral events (m.typing, m.receipt, extensions) for the user's joined rooms. */
export interface RoomEphemeralSource {
  collect(range: SyncRange, roomIds: string[]): Promise<Map<string, JsonObject[]>>;
}

/** Unread notification counts of joined rooms. */
export interface UnreadSource {
  counts(userId: string, roomIds: string[], upTo: number): Promise<Map<string, { main: JsonObject; threads: Record<string, JsonObject> }>>;
  /** The same source without in-memory counters (verification, tests). */
  withoutCache?(): UnreadSource;
}

/** m.presence events of users who share a room with the syncing user. */
export interface PresenceSource {
  /** `newlyShared`: users the syncing user started sharing a room with in the range. */
  collect(range: SyncRange, joinedRoomIds: string[], newlyShared?: string[]): Promise<JsonObject[]>;
}

export interface SyncSources {
  ephemeral: RoomEphemeralSource[];
  unread?: UnreadSource;
  presence?: PresenceSource;
  /** to_device, device_lists and key counts (end-to-end encryption support). */
  device?: DeviceSyncSource;
  /** Global account data a user has implicitly before first setting it (e.g. default push rules). */
  defaultAccountData?: (userId: string) => Array<{ type: string; content: JsonObject }>;
  /** Account-data types that are server-internal and never sent to clients. */
  hiddenAccountDataPrefix?: string;
  /** A client asked for delivered receipts (so its user's messages get markers). */
  onDeliveredOptIn?: (userId: string) => void;
  /** A device acknowledged everything up to `stream` (delivered receipts). */
  onAcknowledged?: (userId: string, stream: number) => Promise<void>;
  /**
   * Whether onAcknowledged has any use now (false: no client opted in to delivered receipts).
   * Absent: always. Lets the socket tell its client that a frame needs no ack frame back.
   */
  acknowledgementsWanted?: () => boolean;
  /** MSC2753 peeks (rooms.peek); absent when the feature is off. */
  peeks?: PeekSource;
  /** Current position of the ephemeral stream. */
  ephemeralPosition: () => number;
}

export function addTo(map: Map<string, JsonObject[]>, roomId: string, ev: JsonObject): void {
  const list = map.get(roomId);
  if (list) list.push(ev);
  else map.set(roomId, [ev]);
}
