// Self-destructing messages (MSC2228): when each event is due to be pruned, and the prune itself
// (src/room/self-destruct.ts decides which events get a row and when a row is due).
//
// Invariants:
// - One row per event (scheduling it again keeps the earlier time); a row outlives restarts, so
//   a restarted server still prunes what was due while it was down.
// - persistEvent writes the row of an accepted (not backfilled) event given
//   PersistEventInput.selfDestructAt in the event's own commit (the room writer passes it when
//   experimental.msc2228_self_destruct is on), so a crash right after the commit cannot lose it.
// - prune() replaces the stored PDU with the pruned copy the caller made (the room version's
//   redaction algorithm), as a redaction does, but sets no redactedBy (no redaction event
//   exists); an event already redacted or unknown is left alone. It removes the row either way
//   and reports { kind: 'event_pruned' } to the unpositioned-change listener once committed, so
//   in-memory copies (sync read model, formatted-event cache) are dropped.

import type { Pdu } from '../protocol/types.js';

export const SELF_DESTRUCT_KEY = 'org.matrix.self_destruct_after';

/** The prune time an event asks for, or null (not a message event with an integer value). */
export function selfDestructAt(pdu: Pdu): number | null {
  if (pdu.state_key !== undefined) return null;
  const v = (pdu.content as Record<string, unknown> | undefined)?.[SELF_DESTRUCT_KEY];
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

export interface EventExpiry {
  eventId: string;
  roomId: string;
  expiresTs: number;
}

export interface EventExpiryStore {
  /** Records that `eventId` is to be pruned at `expiresTs` (ms since the epoch). */
  schedule(e: EventExpiry): Promise<void>;
  /** The `limit` rows due soonest, soonest first (overdue ones included). */
  nextDue(limit: number): Promise<EventExpiry[]>;
  /**
   * Prunes the event to `prunedPdu` and drops its row (only drops the row when `prunedPdu` is
   * null: the event is not stored). False when nothing was rewritten.
   */
  prune(e: EventExpiry, prunedPdu: Pdu | null): Promise<boolean>;
}
