// What the server admin API (src/admin) needs beyond the per-user and per-room contracts:
// listing accounts and rooms, flags only an admin sets, and deleting a room's data.

import type { UserRecord } from './types.js';

export interface UserListQuery {
  /** Offset into the list, ordered by user ID. */
  from: number;
  limit: number;
  /** Substring (case-insensitive) of the user ID or display name. */
  name?: string;
  /** Include deactivated accounts (default: only active ones). */
  deactivated: boolean;
}

export interface RoomListEntry {
  roomId: string;
  roomVersion: string;
  creator: string;
}

export interface AdminStore {
  listUsers(q: UserListQuery): Promise<{ users: UserRecord[]; total: number }>;
  setAdmin(userId: string, admin: boolean): Promise<void>;
  /** Undoes deactivateUser (the caller sets a new password; deactivation removed it). */
  reactivateUser(userId: string): Promise<void>;
  /** Every room this server stores, ordered by room ID. */
  listRooms(): Promise<RoomListEntry[]>;
  /**
   * Deletes everything stored for the room (events, state, memberships, aliases, receipts,
   * relations, notifications, room account data, directory entry, search index) in one
   * transaction. The block flag is kept. Returns false if the room was unknown.
   */
  deleteRoom(roomId: string): Promise<boolean>;
  /**
   * Deletes message (non-state) events of the room with stream <= upToStream, except the
   * room's forward extremities. Local senders' events (sender on `serverName`) only when
   * `includeLocal`. Returns how many were deleted.
   */
  purgeHistory(roomId: string, upToStream: number, opts: { includeLocal: boolean; serverName: string }): Promise<number>;
  /** Highest stream position of the room's events with origin_server_ts < ts (0 if none). */
  streamBeforeTs(roomId: string, ts: number): Promise<number>;
  setRoomBlocked(roomId: string, blocked: boolean): Promise<void>;
  isRoomBlocked(roomId: string): Promise<boolean>;
}
