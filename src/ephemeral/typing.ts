// Typing notifications: per room, who is typing until when. Ephemeral by design: held in memory
// (Redis in scale-out), never persisted. Every change bumps the ephemeral stream and wakes the
// room's syncing members.

import type { Notifier } from '../sync/notifier.js';
import type { EphemeralStream } from './stream.js';

interface RoomTyping {
  users: Map<string, NodeJS.Timeout>;
  /** Ephemeral position of the last change in this room. */
  pos: number;
}

export const MAX_TYPING_TIMEOUT_MS = 120_000;

export class TypingService {
  private readonly rooms = new Map<string, RoomTyping>();

  constructor(
    private readonly stream: EphemeralStream,
    private readonly notifier: Notifier,
  ) {}

  /** Starts (for at most MAX_TYPING_TIMEOUT_MS) or stops a user's typing notification. */
  setTyping(roomId: string, userId: string, typing: boolean, timeoutMs = 30_000): void {
    const room = this.rooms.get(roomId) ?? { users: new Map(), pos: 0 };
    const existing = room.users.get(userId);
    if (existing) clearTimeout(existing);
    if (typing) {
      const t = setTimeout(() => this.setTyping(roomId, userId, false), Math.min(Math.max(timeoutMs, 0), MAX_TYPING_TIMEOUT_MS));
      t.unref();
      room.users.set(userId, t);
      // Renewing an ongoing notification changes nothing a client can see: no wake-up.
      if (existing) return;
    } else {
      if (!existing) return;
      room.users.delete(userId);
    }
    room.pos = this.stream.next();
    this.rooms.set(roomId, room);
    this.notifier.publish({ ephemeral: room.pos, roomId, kind: 'typing' });
  }

  typingUsers(roomId: string): string[] {
    return [...(this.rooms.get(roomId)?.users.keys() ?? [])];
  }

  /** Whether the room's typing set changed after ephemeral position `since`. */
  changedSince(roomId: string, since: number): boolean {
    return (this.rooms.get(roomId)?.pos ?? 0) > since;
  }

  close(): void {
    for (const r of this.rooms.values()) for (const t of r.users.values()) clearTimeout(t);
    this.rooms.clear();
  }
}
