// Who may set typing in a room and read whose presence: typing only in a room one is joined to;
// presence of oneself, or of a user one shares a joined room with (for local users that exist;
// remote users' presence is what their server told us).

import { MatrixError } from '../errors.js';
import { isValidUserId, serverNameOf } from '../protocol/ids.js';
import type { Store } from '../store/types.js';
import type { PresenceRecord, PresenceService } from './presence.js';
import type { TypingService } from './typing.js';

export class EphemeralAccess {
  constructor(
    private readonly store: Store,
    private readonly typing: Pick<TypingService, 'setTyping'>,
    private readonly presence: Pick<PresenceService, 'get'>,
    private readonly serverName: string,
  ) {}

  async setTyping(userId: string, roomId: string, typing: boolean, timeoutMs: number): Promise<void> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    await this.typing.setTyping(roomId, userId, typing, timeoutMs);
  }

  /** `userId`'s presence as `viewerId` may see it; undefined when nothing is known. */
  async presenceOf(viewerId: string, userId: string): Promise<PresenceRecord | undefined> {
    if (!isValidUserId(userId)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user ID');
    if (serverNameOf(userId) === this.serverName && !(await this.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'Unknown user');
    if (userId !== viewerId) {
      const [mine, theirs] = await Promise.all([this.store.rooms.getRoomsForUser(viewerId, ['join']), this.store.rooms.getRoomsForUser(userId, ['join'])]);
      const shared = new Set(mine.map((m) => m.roomId));
      if (!theirs.some((m) => shared.has(m.roomId))) throw new MatrixError('M_FORBIDDEN', 'You do not share a room with this user');
    }
    return this.presence.get(userId);
  }
}
