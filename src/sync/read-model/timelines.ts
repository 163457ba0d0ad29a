// Ring buffers of each room's most recent events, fed by event change records.
//
// Invariant: a room's buffer holds every event of the room with stream > `coveredFrom`, in
// stream order, as stored (redactions applied). A buffer is created for a room when its first
// event after the model's start arrives; it may then claim coverage back to the room's previous
// change (from the rooms change cache), because nothing of the room lies between the two.
// Buffered StoredEvents are shared by every viewer and replaced, never mutated (a redaction swaps
// in a new object), so a sync holding an older one is not disturbed.
//
// Bounds: `perRoom` events per room; at most `maxRooms` rooms, least recently written evicted.

import type { Pdu } from '../../protocol/types.js';
import { parseTrustedJson } from '../../protocol/canonical-json.js';
import { ACCEPTED, type EventChange } from '../../store/change-types.js';
import type { StoredEvent } from '../../store/types.js';
import { eventMatches, type EventMatcher } from '../filter.js';

interface RoomTimeline {
  coveredFrom: number;
  events: StoredEvent[];
}

export class RoomTimelines {
  private readonly rooms = new Map<string, RoomTimeline>();
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(
    readonly perRoom: number,
    readonly maxRooms: number,
  ) {}

  get size(): number {
    return this.rooms.size;
  }

  /** Events held in all buffers. */
  get eventCount(): number {
    let n = 0;
    for (const t of this.rooms.values()) n += t.events.length;
    return n;
  }

  /** `previous`: the room's last change before this event, as far as the model knows. */
  apply(c: EventChange, previous: number): void {
    let t = this.rooms.get(c.roomId);
    if (t) {
      this.rooms.delete(c.roomId);
    } else {
      t = { coveredFrom: previous, events: [] };
    }
    this.rooms.set(c.roomId, t);
    t.events.push({
      eventId: c.eventId,
      roomId: c.roomId,
      stream: c.stream,
      pdu: parseTrustedJson<Pdu>(c.pduJson),
      redactedBy: null,
      txn: c.txn ? { ...c.txn } : null,
      ...ACCEPTED,
    });
    if (c.redaction) {
      const i = t.events.findIndex((e) => e.eventId === c.redaction!.targetEventId);
      if (i >= 0) {
        t.events[i] = { ...t.events[i], pdu: parseTrustedJson<Pdu>(c.redaction.redactedPduJson), redactedBy: c.eventId };
      }
    }
    while (t.events.length > this.perRoom) {
      const dropped = t.events.shift()!;
      t.coveredFrom = dropped.stream;
    }
    while (this.rooms.size > this.maxRooms) {
      const oldest = this.rooms.keys().next().value as string;
      this.rooms.delete(oldest);
      this.evictions++;
    }
  }

  /**
   * The newest `limit` events of the room in (from, upTo] that match `filter`, oldest first,
   * and whether more matched (`limited`); undefined when the buffer cannot answer for sure.
   */
  read(roomId: string, from: number | undefined, upTo: number, limit: number, filter: EventMatcher): { events: StoredEvent[]; more: boolean } | undefined {
    const t = this.rooms.get(roomId);
    if (!t) {
      this.misses++;
      return undefined;
    }
    const picked: StoredEvent[] = [];
    for (let i = t.events.length - 1; i >= 0 && picked.length <= limit; i--) {
      const e = t.events[i];
      if (e.stream > upTo) continue;
      if (from !== undefined && e.stream <= from) break;
      if (eventMatches(filter, e.pdu.type, e.pdu.sender)) picked.push(e);
    }
    // Enough found, or the buffer reaches back past `from`: the answer is complete.
    if (picked.length <= limit && (from === undefined || from < t.coveredFrom)) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    const more = picked.length > limit;
    return { events: picked.slice(0, limit).reverse(), more };
  }

  clear(): void {
    this.rooms.clear();
  }

  /** Forgets one room's buffer (its events were purged); like an eviction, later reads miss. */
  drop(roomId: string): void {
    this.rooms.delete(roomId);
  }
}
