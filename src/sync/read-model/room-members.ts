// The read model's current member events per room (lazy-loaded members; read-model.ts). Invariants:
// an entry is the room's current member event of that user as the completion hook last applied
// it (a member event carried by a record keeps its event, redactions applied); a room's list is
// loaded from the store on first use and kept only when no member event of the room was applied
// during the read; an answer is certain or "unknown" (the caller asks the store). Bound:
// timelineRooms rooms, least recently used dropped first.

import { LRUCache } from 'lru-cache';
import type { Pdu } from '../../protocol/types.js';
import { parseTrustedJson } from '../../protocol/canonical-json.js';
import { ACCEPTED, type ChangeRecord } from '../../store/change-types.js';
import type { MembershipRecord, StoredEvent } from '../../store/types.js';
import type { StreamChangeCache } from './change-cache.js';

type Member = { eventId: string; stream: number; event?: StoredEvent };

export class RoomMemberState {
  /** roomId -> userId -> current member event (with the event when a record carried it). */
  private readonly members: LRUCache<string, Map<string, Member>>;
  hits = 0;
  misses = 0;

  constructor(
    rooms: number,
    /** The model's position (a load is kept only if nothing landed after it). */
    private readonly position: () => number,
    /** The model's change cache of room member events. */
    private readonly roomMembers: StreamChangeCache,
  ) {
    this.members = new LRUCache({ max: rooms });
  }

  get size(): number {
    return this.members.size;
  }

  update(c: ChangeRecord & { kind: 'event' }, userId: string, eventId: string): void {
    const room = this.members.get(c.roomId);
    if (!room) return;
    const own = eventId === c.eventId;
    room.set(userId, {
      eventId,
      stream: c.stream,
      event: own ? { eventId, roomId: c.roomId, stream: c.stream, pdu: parseTrustedJson<Pdu>(c.pduJson), redactedBy: null, txn: c.txn ? { ...c.txn } : null, ...ACCEPTED } : undefined,
    });
  }

  redact(roomId: string, targetId: string, redactedPduJson: string, redactionId: string): void {
    const room = this.members.get(roomId);
    if (!room) return;
    for (const m of room.values()) {
      if (m.eventId === targetId && m.event) m.event = { ...m.event, pdu: parseTrustedJson<Pdu>(redactedPduJson), redactedBy: redactionId };
    }
  }

  /** Resolution dropped the user's member key: as in the store, no membership here. */
  remove(roomId: string, userId: string): void {
    this.members.get(roomId)?.delete(userId);
  }

  drop(roomId: string): void {
    this.members.delete(roomId);
  }

  clear(): void {
    this.members.clear();
  }

  /** See ReadModel.membersAt. */
  async membersAt(
    roomId: string,
    userIds: string[],
    at: number,
    load: (roomId: string) => Promise<MembershipRecord[]>,
  ): Promise<{ entries: Array<{ type: string; stateKey: string; eventId: string }>; events: Map<string, StoredEvent>; unknown: string[] }> {
    let room = this.members.get(roomId);
    if (room) {
      this.hits++;
    } else {
      this.misses++;
      const loadedAt = this.position();
      const rows = await load(roomId);
      room = new Map(rows.map((m) => [m.userId, { eventId: m.eventId, stream: m.stream }]));
      // Kept only if no member event of the room landed while the rows were being read.
      if (!this.roomMembers.changedSince(roomId, loadedAt) && !this.members.has(roomId)) {
        this.members.set(roomId, room);
      }
    }
    const entries: Array<{ type: string; stateKey: string; eventId: string }> = [];
    const events = new Map<string, StoredEvent>();
    const unknown: string[] = [];
    for (const u of userIds) {
      const m = room.get(u);
      if (!m || m.stream > at) {
        unknown.push(u);
        continue;
      }
      entries.push({ type: 'm.room.member', stateKey: u, eventId: m.eventId });
      if (m.event) events.set(m.eventId, m.event);
    }
    return { entries, events, unknown };
  }

  /** Keeps member events read from the store that are still the room's current ones. */
  note(roomId: string, events: Iterable<StoredEvent>): void {
    const room = this.members.get(roomId);
    if (!room) return;
    for (const e of events) {
      if (e.pdu.type !== 'm.room.member' || typeof e.pdu.state_key !== 'string') continue;
      const m = room.get(e.pdu.state_key);
      if (m && m.eventId === e.eventId && !m.event) m.event = e;
    }
  }
}
