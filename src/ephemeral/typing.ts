// Typing notifications: per room, who is typing until when. Ephemeral by design: held in memory,
// never persisted. Every change bumps the ephemeral stream and wakes the room's syncing members.
//
// In a cluster (a Broadcast given) every process holds a replica: a change is published, and
// each process, the sender's included, applies it to its own replica with its own stream position
// and its own expiry timer. Reads stay local and synchronous. A process that misses a message
// (Redis down, or started later) is wrong until the notification expires (at most
// MAX_TYPING_TIMEOUT_MS): typing is allowed to degrade. A message carries the sender's stream
// position, observed by each receiver (stream.ts), so positions are comparable across processes.
// Without a Broadcast (a single node)
// nothing is published and a change applies at once, as it always did.

import type { Logger } from 'pino';
import type { Broadcast } from '../cluster/shared-state.js';
import type { Notifier } from '../sync/notifier.js';
import type { EphemeralStream } from './stream.js';

const CHANNEL = 'typing';

interface RoomTyping {
  users: Map<string, NodeJS.Timeout>;
  /** Ephemeral position of the last change in this room. */
  pos: number;
}

export const MAX_TYPING_TIMEOUT_MS = 120_000;

export class TypingService {
  private readonly rooms = new Map<string, RoomTyping>();
  /** Told of every visible change (federation forwards local users' typing as m.typing EDUs). */
  readonly listeners: Array<(roomId: string, userId: string, typing: boolean) => void> = [];

  constructor(
    private readonly stream: EphemeralStream,
    private readonly notifier: Notifier,
    private readonly cluster?: { broadcast: Broadcast; logger: Logger },
  ) {}

  /** In a cluster: starts applying every process's changes (this one's included). */
  async listen(): Promise<void> {
    const c = this.cluster;
    if (!c) return;
    await c.broadcast.subscribe(CHANNEL, (message) => {
      try {
        const [roomId, userId, typing, timeoutMs, pos] = JSON.parse(message) as [unknown, unknown, unknown, unknown, unknown];
        if (typeof roomId !== 'string' || typeof userId !== 'string' || typeof typing !== 'boolean' || typeof timeoutMs !== 'number') {
          throw new Error('malformed typing message');
        }
        // The sender's stream position (absent from older workers): keeps positions comparable.
        if (typeof pos === 'number') this.stream.observe(pos);
        this.apply(roomId, userId, typing, timeoutMs);
      } catch (err) {
        c.logger.warn({ err }, 'typing: ignored a message from another process');
      }
    });
  }

  /**
   * Starts (for at most MAX_TYPING_TIMEOUT_MS) or stops a user's typing notification. Never
   * rejects: a change that cannot be published is logged and dropped (typing is best-effort).
   */
  async setTyping(roomId: string, userId: string, typing: boolean, timeoutMs = 30_000): Promise<void> {
    const c = this.cluster;
    if (!c) return this.apply(roomId, userId, typing, timeoutMs);
    try {
      await c.broadcast.publish(CHANNEL, JSON.stringify([roomId, userId, typing, timeoutMs, this.stream.current()]));
    } catch (err) {
      c.logger.warn({ err, roomId }, 'typing: publishing a change failed');
    }
  }

  private apply(roomId: string, userId: string, typing: boolean, timeoutMs: number): void {
    const room = this.rooms.get(roomId) ?? { users: new Map(), pos: 0 };
    const existing = room.users.get(userId);
    if (existing) clearTimeout(existing);
    if (typing) {
      // Each replica expires on its own clock: an expiry is never published.
      const t = setTimeout(() => this.apply(roomId, userId, false, 0), Math.min(Math.max(timeoutMs, 0), MAX_TYPING_TIMEOUT_MS));
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
    for (const l of this.listeners) l(roomId, userId, typing);
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
