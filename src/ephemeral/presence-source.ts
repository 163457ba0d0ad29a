// m.presence for /sync: users sharing a room with the syncing user whose presence changed.

import type { JsonObject } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import type { PresenceSource, SyncRange } from '../sync/sources.js';
import { presenceContent, type PresenceService } from './presence.js';

export class PresenceSyncSource implements PresenceSource {
  constructor(
    private readonly presence: PresenceService,
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async collect(range: SyncRange, joinedRoomIds: string[], newlyShared: string[] = []): Promise<JsonObject[]> {
    if (!this.presence.enabled) return [];
    const since = range.since?.ephemeral ?? 0;
    const changed = this.presence.changedSince(since).filter((r) => r.pos <= range.upTo.ephemeral);
    // Someone the user only now shares a room with: their current presence, changed or not,
    // since the client has never been told it.
    const seen = new Set(changed.map((r) => r.userId));
    const fresh: JsonObject[] = [];
    for (const u of newlyShared) {
      if (seen.has(u)) continue;
      seen.add(u);
      const r = this.presence.get(u);
      // A change after upTo comes with the next response.
      if (r && r.pos > range.upTo.ephemeral) continue;
      // Someone never seen online is offline: saying so tells the client it need not wonder.
      const content = r && r.pos > 0 ? presenceContent(r, this.now()) : { presence: 'offline' };
      fresh.push({ type: 'm.presence', sender: u, content });
    }
    if (changed.length === 0) return fresh;
    // Only the (few) changed users are checked for a shared room, not every member of every room.
    const mine = new Set(joinedRoomIds);
    const out: JsonObject[] = fresh;
    for (const r of changed) {
      const shares =
        r.userId === range.userId ||
        (await this.store.rooms.getRoomsForUser(r.userId, ['join'])).some((m) => mine.has(m.roomId));
      if (shares) out.push({ type: 'm.presence', sender: r.userId, content: presenceContent(r, this.now()) });
    }
    return out;
  }
}
