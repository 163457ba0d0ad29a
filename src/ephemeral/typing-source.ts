// m.typing for /sync: a room's current typing set whenever it changed since the token.

import type { JsonObject } from '../protocol/types.js';
import type { RoomEphemeralSource, SyncRange } from '../sync/sources.js';
import type { TypingService } from './typing.js';

export class TypingSource implements RoomEphemeralSource {
  constructor(private readonly typing: TypingService) {}

  async collect(range: SyncRange, roomIds: string[]): Promise<Map<string, JsonObject[]>> {
    const out = new Map<string, JsonObject[]>();
    const since = range.since?.ephemeral;
    for (const roomId of roomIds) {
      const users = this.typing.typingUsers(roomId);
      // Initial sync: only rooms where someone is typing. Incremental: any change, even to empty.
      const include = since === undefined ? users.length > 0 : this.typing.changedSince(roomId, since);
      if (include) out.set(roomId, [{ type: 'm.typing', content: { user_ids: users } }]);
    }
    return out;
  }
}
