// m.typing for /sync: a room's current typing set whenever it changed since the token (an initial
// sync: since the start of the ephemeral stream).

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
      // Any change since the token, even to empty. An initial sync counts from the start of the
      // stream, as Synapse's does: a room whose typing set ever changed shows it, an empty one
      // too, so a client that starts (or restarts) syncing right after a stop sees the stop.
      const include = this.typing.changedSince(roomId, since ?? 0);
      if (include) out.set(roomId, [{ type: 'm.typing', content: { user_ids: users } }]);
    }
    return out;
  }
}
