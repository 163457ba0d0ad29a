// Change records: what a completed stream position wrote, in a form that can cross a process
// boundary (plain JSON, no closures, no shared objects). The store hands them out from its one
// completion hook (StreamIdGenerator.onChanges), in position order and only once the watermark
// has passed them, so a consumer never learns of a position a reader could not yet read. The
// in-memory sync read model is their consumer on one node; a replication stream can carry the
// same records to other workers later.
//
// A record describes *that* something changed and where, plus the event itself for room events
// (so recent timelines need no read). A consumer that cannot apply a record must treat the keys
// it names as unknown and fall back to the store: records are hints for caches, never the truth.

import type { StateEntry, StateKeyRef } from './types.js';

export type ChangeRecord =
  | EventChange
  | { kind: 'account_data'; stream: number; userId: string; roomId: string; dataType: string }
  | { kind: 'receipt'; stream: number; roomId: string; userId: string }
  | { kind: 'delivered'; stream: number; roomId: string }
  | { kind: 'to_device'; stream: number; targets: Array<{ userId: string; deviceId: string }> }
  | { kind: 'device_list'; stream: number; userIds: string[] }
  /** A device's MSC2753 peek into a room started or ended (src/store/peek-types.ts). */
  | { kind: 'peek'; stream: number; userId: string; deviceId: string; roomId: string }
  /**
   * Something was written that the describer could not name: consumers drop all they cache and
   * know nothing at or below `stream` from memory. `stream` may lie above the position the
   * records come with (records up to it were lost on their way, src/cluster/replication.ts):
   * records at or below it that still arrive must not be taken as complete either.
   */
  | { kind: 'reset'; stream: number };

/**
 * Event records are written for accepted events only (outliers, soft-failed and rejected events
 * are in no timeline), so a StoredEvent rebuilt from one carries these flags.
 */
export const ACCEPTED = Object.freeze({ outlier: false, softFailed: false, rejected: null });

export interface EventChange {
  kind: 'event';
  stream: number;
  roomId: string;
  eventId: string;
  /** The PDU as persisted (JSON text: one parse per consumer, never a shared object). */
  pduJson: string;
  txn: { deviceId: string; txnId: string } | null;
  stateDelta: StateEntry[];
  /** Keys dropped from the room's current state (PersistEventInput.stateRemoved). */
  stateRemoved: StateKeyRef[];
  /** A redaction that took effect: the target's stored PDU was replaced by this one. */
  redaction: { targetEventId: string; redactedPduJson: string } | null;
  /** Event ID this event relates to (m.relates_to), whose bundled aggregations it changes. */
  relatesTo: string | null;
  sender: string;
  /** The push actions written with the event (PersistEventInput), for unread counters. */
  push: {
    actions: Array<{ userId: string; notify: boolean; highlight: boolean; threadId: string | null }>;
    bulk: { notify: boolean; highlight: boolean; threadId: string | null; except: string[] } | null;
  };
}

/**
 * A change outside the stream (no position): a device's one-time or fallback keys. Delivered
 * right after the COMMIT that made it visible, before any caller's promise settles, so a cache
 * dropped on it never serves a value older than a reader could read from the store.
 */
export type UnpositionedChange =
  | { kind: 'device_keys'; userId: string; deviceId: string }
  /** Events of the room were deleted outside the stream (admin room delete or history purge). */
  | { kind: 'room_purged'; roomId: string }
  /** An event's stored copy was pruned outside the stream (a self-destructing message expired). */
  | { kind: 'event_pruned'; roomId: string; eventId: string };

/** Turns a write's result into its change record; null when the position wrote nothing. */
export type ChangeDescriber<T> = (result: T, pos: number) => ChangeRecord | null;
