// unread_notifications / unread_thread_notifications for /sync, from stored push actions, or
// from the read model's counters (kept at write time) when it has them for a room.

import type { JsonObject } from '../protocol/types.js';
import type { NotificationStore, RoomUnreadCounts } from '../store/chat-types.js';
import type { UnreadSource } from '../sync/sources.js';
import { dict } from '../protocol/canonical-json.js';

export interface UnreadCache {
  unreadCounts(userId: string, roomId: string, upTo: number): RoomUnreadCounts | undefined;
  offerUnread(userId: string, roomId: string, counts: RoomUnreadCounts, upTo: number): void;
}

const ZERO: RoomUnreadCounts = { main: { notification_count: 0, highlight_count: 0 }, threads: new Map() };

export class StoredUnreadSource implements UnreadSource {
  constructor(
    private readonly notifications: NotificationStore,
    private readonly cache?: UnreadCache,
  ) {}

  /** The same source reading only the store (verification, tests). */
  withoutCache(): StoredUnreadSource {
    return new StoredUnreadSource(this.notifications);
  }

  async counts(userId: string, roomIds: string[], upTo: number) {
    const raw = new Map<string, RoomUnreadCounts>();
    const missing: string[] = [];
    for (const roomId of roomIds) {
      const c = this.cache?.unreadCounts(userId, roomId, upTo);
      if (c) raw.set(roomId, c);
      else missing.push(roomId);
    }
    if (missing.length > 0) {
      const read = await this.notifications.getUnreadCounts(userId, missing, upTo);
      for (const roomId of missing) {
        const c = read.get(roomId) ?? ZERO;
        raw.set(roomId, c);
        this.cache?.offerUnread(userId, roomId, c, upTo);
      }
    }
    const out = new Map<string, { main: JsonObject; threads: Record<string, JsonObject> }>();
    for (const roomId of roomIds) {
      const c = raw.get(roomId);
      const threads: Record<string, JsonObject> = dict();
      for (const [root, t] of c?.threads ?? []) threads[root] = { ...t };
      out.set(roomId, { main: { ...(c?.main ?? { notification_count: 0, highlight_count: 0 }) }, threads });
    }
    return out;
  }
}
