// Unread notification counters per (user, room), kept at write time from the push actions
// stored with each event (carried in its change record), so a woken sync need not re-count.
//
// An entry is the store's getUnreadCounts for (user, room) as of any position >= `at`: it starts
// from a store read (offered only when nothing that could change it happened since), then each
// event record of the room adds its push actions, exactly as the store's counting query does:
// - the user's own event zeroes every count (everything before it counts as read);
// - a per-user push action adds to the main or thread count, and a bulk result adds for every
//   member joined before the event except the sender and the listed users (an entry exists
//   only for a joined user: a membership change drops it);
// - any receipt of the user in the room drops the entry (re-read from the store: receipt
//   thread rules stay in one place).
//
// Bound: `maxEntries` (user, room) pairs, least recently used evicted.

import type { EventChange } from '../../store/change-types.js';
import type { RoomUnreadCounts } from '../../store/chat-types.js';

interface Entry {
  userId: string;
  roomId: string;
  at: number;
  main: { notification_count: number; highlight_count: number };
  threads: Map<string, { notification_count: number; highlight_count: number }>;
}

export class UnreadCounters {
  private readonly entries = new Map<string, Entry>();
  private readonly byRoom = new Map<string, Map<string, Entry>>();
  hits = 0;
  misses = 0;

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** Counts as of `upTo`, or undefined when the store must answer. */
  get(userId: string, roomId: string, upTo: number): RoomUnreadCounts | undefined {
    const e = this.entries.get(key(userId, roomId));
    if (!e || e.at > upTo) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key(userId, roomId));
    this.entries.set(key(userId, roomId), e);
    return { main: { ...e.main }, threads: new Map([...e.threads].map(([t, c]) => [t, { ...c }])) };
  }

  /** Caches a store answer as of `at`; the caller checked nothing changed it since. */
  offer(userId: string, roomId: string, counts: RoomUnreadCounts, at: number): void {
    const e: Entry = {
      userId,
      roomId,
      at,
      main: { ...counts.main },
      threads: new Map([...counts.threads].map(([t, c]) => [t, { ...c }])),
    };
    this.drop(userId, roomId);
    this.entries.set(key(userId, roomId), e);
    let room = this.byRoom.get(roomId);
    if (!room) this.byRoom.set(roomId, (room = new Map()));
    room.set(userId, e);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.values().next().value as Entry;
      this.drop(oldest.userId, oldest.roomId);
    }
  }

  drop(userId: string, roomId: string): void {
    if (!this.entries.delete(key(userId, roomId))) return;
    const room = this.byRoom.get(roomId);
    room?.delete(userId);
    if (room?.size === 0) this.byRoom.delete(roomId);
  }

  applyEvent(c: EventChange): void {
    const room = this.byRoom.get(c.roomId);
    if (room) {
      const except = c.push.bulk && c.push.bulk.except.length > 0 ? new Set(c.push.bulk.except) : undefined;
      for (const e of room.values()) {
        if (e.userId === c.sender) {
          e.main = { notification_count: 0, highlight_count: 0 };
          e.threads = new Map();
          e.at = c.stream;
          continue;
        }
        // As the store: the first row of a user listed twice is kept.
        const own = c.push.actions.find((a) => a.userId === e.userId);
        if (own && add(e, own)) e.at = c.stream;
        if (c.push.bulk && !except?.has(e.userId) && add(e, c.push.bulk)) e.at = c.stream;
      }
    }
    for (const s of [...c.stateDelta, ...c.stateRemoved]) if (s.type === 'm.room.member') this.drop(s.stateKey, c.roomId);
  }

  clear(): void {
    this.entries.clear();
    this.byRoom.clear();
  }
}

function add(e: Entry, a: { notify: boolean; highlight: boolean; threadId: string | null }): boolean {
  if (!a.notify && !a.highlight) return false;
  const n = a.notify ? 1 : 0;
  const h = a.highlight ? 1 : 0;
  if (a.threadId === null) {
    e.main = { notification_count: e.main.notification_count + n, highlight_count: e.main.highlight_count + h };
  } else {
    const t = e.threads.get(a.threadId) ?? { notification_count: 0, highlight_count: 0 };
    e.threads.set(a.threadId, { notification_count: t.notification_count + n, highlight_count: t.highlight_count + h });
  }
  return true;
}

function key(userId: string, roomId: string): string {
  return `${userId}\u0000${roomId}`;
}
