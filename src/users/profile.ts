// Profiles: reading a user's display name and avatar, and changing one's own, which the room
// service then carries into a member event in every joined room.
//
// Invariants: another server's user's profile is asked of that server (federation on); an unknown or deactivated user has no profile (404); a known user without an
// avatar or name has an absent field, not a missing profile. Values are stored as given: the
// spec types avatar_url as a URI without requiring mxc://.

import { MatrixError } from '../errors.js';
import { isValidUserId, serverNameOf } from '../protocol/ids.js';
import type { RoomService } from '../room/room-service.js';
import type { Store } from '../store/types.js';

export interface Profile {
  displayname: string | null;
  avatarUrl: string | null;
}

/** Profiles of other servers' users (src/federation/remote-queries.ts: /query/profile). */
export interface RemoteProfiles {
  profile(userId: string): Promise<Profile>;
}

export class ProfileService {
  constructor(
    private readonly store: Store,
    private readonly rooms: Pick<RoomService, 'propagateProfile' | 'joinedRoomCount'>,
    private readonly serverName?: string,
    /** Without it (federation off) other servers' users have no profile here (404). */
    private readonly remote?: RemoteProfiles,
  ) {}

  async get(userId: string): Promise<Profile> {
    if (!isValidUserId(userId)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user ID');
    if (this.remote && this.serverName !== undefined && serverNameOf(userId) !== this.serverName) return this.remote.profile(userId);
    const u = await this.store.accounts.getUser(userId);
    if (!u || u.deactivated) throw new MatrixError('M_NOT_FOUND', 'Profile not found');
    return { displayname: u.displayname, avatarUrl: u.avatarUrl };
  }

  /** How many member events a change of `userId`'s profile sends (what it costs to rate-limit). */
  fanOut(userId: string): Promise<number> {
    return this.rooms.joinedRoomCount(userId);
  }

  async set(userId: string, field: 'displayname' | 'avatar_url', value: string | null): Promise<void> {
    await this.store.accounts.setProfile(userId, field === 'displayname' ? { displayname: value || null } : { avatarUrl: value || null });
    await this.rooms.propagateProfile(userId);
  }
}
