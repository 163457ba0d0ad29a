// unread_notifications / unread_thread_notifications for /sync, from stored push actions.

import type { JsonObject } from '../protocol/types.js';
import type { NotificationStore } from '../store/chat-types.js';
import type { UnreadSource } from '../sync/sources.js';
import { dict } from '../protocol/canonical-json.js';

export class StoredUnreadSource implements UnreadSource {
  constructor(private readonly notifications: NotificationStore) {}

  async counts(userId: string, roomIds: string[], upTo: number) {
    const raw = await this.notifications.getUnreadCounts(userId, roomIds, upTo);
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
