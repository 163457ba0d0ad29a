// Account erasure (Client-Server API, POST /account/deactivate with `erase: true`): users who join
// a room after the erasure are served redacted copies of the erased user's events; users who had
// visibility on an event before the erasure still see it whole.
//
// Invariants:
// - The erasure position is the completed stream position when the erasure was recorded, and
//   "had visibility before the erasure" is VisibilityChecker.visibleAsOf at that position: the
//   viewer's own membership up to then, with world_readable counted as shared (a non-member who
//   could read a world-readable room joined nothing, so gets the redacted copy).
// - Nothing is rewritten in the store, no redaction events are sent and nothing changes over
//   federation (the spec says so); the redacted copy is made per viewer when events are
//   formatted (EventFormatter), with the room version's redaction algorithm.
// - Which senders are erased is cached per process for ERASURE_CACHE_MS. This process sees its
//   own erasures at once; another process of a cluster sees them within that time.
// - Erasure also clears the user's profile and empties their account data (the spec's "non-event
//   data"); the server's internal account data is left alone.

import { LRUCache } from 'lru-cache';
import { redactEvent } from '../protocol/redaction.js';
import type { Pdu } from '../protocol/types.js';
import { INTERNAL_ACCOUNT_DATA_PREFIX } from '../push/push-rules-service.js';
import type { Store, StoredEvent } from '../store/types.js';
import type { VisibilityChecker } from './visibility.js';

const ERASURE_CACHE_MS = 30_000;
/** Cached for a sender who is not erased. */
const NOT_ERASED = -1;

export class ErasureService {
  private readonly known = new LRUCache<string, number>({ max: 100_000, ttl: ERASURE_CACHE_MS });

  constructor(
    private readonly store: Store,
    private readonly visibility: VisibilityChecker,
  ) {}

  /** Erases a (deactivated) local user. Idempotent: the first erasure's position stands. */
  async erase(userId: string): Promise<void> {
    const position = await this.store.accounts.markErased(userId, this.store.currentPosition());
    this.known.set(userId, position);
    await this.store.accounts.setProfile(userId, { displayname: null, avatarUrl: null });
    for (const d of await this.store.userData.getAllAccountData(userId)) {
      if (d.type.startsWith(INTERNAL_ACCOUNT_DATA_PREFIX) || Object.keys(d.content).length === 0) continue;
      await this.store.userData.setAccountData(userId, d.roomId, d.type, {});
    }
  }

  /**
   * The events among `events` that `viewerId` must be served redacted, with their redacted PDUs.
   * Empty (after cache lookups only) when no sender is erased, which is nearly always.
   */
  async redactionsFor(viewerId: string, events: StoredEvent[]): Promise<Map<string, Pdu>> {
    const out = new Map<string, Pdu>();
    if (events.length === 0) return out;
    const erasedAt = await this.positions(events.map((e) => e.pdu.sender));
    if (erasedAt.size === 0) return out;
    // Grouped by room and erasure position: one visibility check per group.
    const groups = new Map<string, { roomId: string; position: number; events: StoredEvent[] }>();
    for (const e of events) {
      const position = erasedAt.get(e.pdu.sender);
      if (position === undefined || e.redactedBy) continue;
      const key = `${e.roomId}\u0000${position}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { roomId: e.roomId, position, events: [] }));
      g.events.push(e);
    }
    for (const g of groups.values()) {
      const [seen, room] = await Promise.all([
        this.visibility.visibleAsOf(viewerId, g.roomId, g.events, g.position),
        this.store.rooms.getRoom(g.roomId),
      ]);
      if (!room) continue;
      for (const e of g.events) if (!seen.has(e.eventId)) out.set(e.eventId, redactEvent(e.pdu, room.roomVersion));
    }
    return out;
  }

  /** Erasure positions of the erased among `senders`. */
  private async positions(senders: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const missing: string[] = [];
    for (const s of new Set(senders)) {
      const p = this.known.get(s);
      if (p === undefined) missing.push(s);
      else if (p !== NOT_ERASED) out.set(s, p);
    }
    if (missing.length > 0) {
      const found = await this.store.accounts.getErasures(missing);
      for (const s of missing) {
        const p = found.get(s);
        this.known.set(s, p ?? NOT_ERASED);
        if (p !== undefined) out.set(s, p);
      }
    }
    return out;
  }
}
