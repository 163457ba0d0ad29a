// The room directory of this server: local room aliases (#name:server -> room: creating,
// deleting, listing them, and checking that an m.room.canonical_alias event names only aliases
// of its room) and the published room list. Resolving an alias (locally or over federation) is
// RoomService.lookupAlias, which joins need as well.
//
// Invariants:
// - Only a joined member creates an alias of this server's name, and an alias names one room.
// - An alias is deleted by its creator, a server admin, or someone with power >= 50 in its room;
//   a canonical alias event that named it is then updated by RoomService.dropFromCanonicalAlias.
// - Whoever may change a room's canonical alias may publish it; server admins always may.

import { MatrixError } from '../errors.js';
import { isValidRoomAlias } from '../protocol/ids.js';
import { requiredPowerLevel } from '../protocol/power-levels.js';
import type { JsonObject } from '../protocol/types.js';
import { listPublicRooms, type PublicRoomsQuery } from './public-rooms.js';
import type { Store } from '../store/types.js';
import type { RoomInput } from './room-input.js';
import type { RoomService } from './room-service.js';

export class RoomDirectory {
  constructor(
    private readonly store: Store,
    private readonly input: Pick<RoomInput, 'currentState'>,
    private readonly rooms: Pick<RoomService, 'dropFromCanonicalAlias'>,
    private readonly serverName: string,
    /** Other servers' lists (src/federation/remote-queries.ts); without it (federation off) refused. */
    private readonly remote?: { publicRooms(server: string, q: PublicRoomsQuery & { includeAllNetworks?: boolean; thirdPartyInstanceId?: string }): Promise<JsonObject> },
  ) {}

  /** `withoutMembership`: an application service mapping an alias of its namespace to a room it bridges. */
  async create(userId: string, alias: string, roomId: string, opts: { withoutMembership?: boolean } = {}): Promise<void> {
    if (!isValidRoomAlias(alias) || !alias.endsWith(`:${this.serverName}`)) throw new MatrixError('M_INVALID_PARAM', 'Invalid room alias for this server');
    if (opts.withoutMembership) {
      if (!(await this.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    } else {
      const m = await this.store.rooms.getMembership(roomId, userId);
      if (m?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You must be joined to the room');
    }
    if (await this.store.rooms.getAlias(alias)) throw new MatrixError('M_UNKNOWN', 'Room alias already exists', {}, 409);
    await this.store.rooms.createAlias(alias, roomId, userId);
  }

  async delete(sender: { userId: string; deviceId?: string }, alias: string): Promise<void> {
    const found = await this.store.rooms.getAlias(alias);
    if (!found) throw new MatrixError('M_NOT_FOUND', 'Room alias not found');
    const user = await this.store.accounts.getUser(sender.userId);
    const state = await this.input.currentState(found.roomId);
    const canManage = found.creator === sender.userId || user?.admin || (state && state.powerLevel(sender.userId) >= 50);
    if (!canManage) throw new MatrixError('M_FORBIDDEN', 'You may not delete this alias');
    await this.store.rooms.deleteAlias(alias);
    await this.rooms.dropFromCanonicalAlias(sender, found.roomId, alias);
  }

  /** The room's local aliases (the caller checks the user may read the room). */
  list(roomId: string): Promise<string[]> {
    return this.store.rooms.getAliasesForRoom(roomId);
  }

  async visibility(roomId: string): Promise<'public' | 'private'> {
    if (!(await this.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    return this.store.rooms.getRoomVisibility(roomId);
  }

  async setVisibility(userId: string, roomId: string, visibility: 'public' | 'private'): Promise<void> {
    const state = await this.input.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    const user = await this.store.accounts.getUser(userId);
    const needed = requiredPowerLevel('m.room.canonical_alias', '', state.content('m.room.power_levels'));
    if (!user?.admin && (state.membership(userId) !== 'join' || state.powerLevel(userId) < needed)) {
      throw new MatrixError('M_FORBIDDEN', 'You need to be a room moderator to publish it');
    }
    await this.store.rooms.setRoomVisibility(roomId, visibility);
  }

  /** This server's published rooms, or (`server`) another server's, asked over federation. */
  async publicRooms(q: PublicRoomsQuery & { includeAllNetworks?: boolean; thirdPartyInstanceId?: string }): Promise<JsonObject> {
    if (q.server && q.server !== this.serverName) {
      if (!this.remote) throw new MatrixError('M_UNKNOWN', 'Querying other servers needs federation, which is not enabled');
      return this.remote.publicRooms(q.server, q);
    }
    return listPublicRooms(this.store, (id) => this.input.currentState(id), q);
  }

  /** An m.room.canonical_alias content may only name valid aliases that point to its room. */
  async checkCanonical(roomId: string, content: JsonObject): Promise<void> {
    const aliases: unknown[] = [];
    if (content.alias !== undefined && content.alias !== null) aliases.push(content.alias);
    if (content.alt_aliases !== undefined) {
      if (!Array.isArray(content.alt_aliases)) throw new MatrixError('M_BAD_JSON', 'alt_aliases must be an array');
      aliases.push(...content.alt_aliases);
    }
    for (const a of aliases) {
      if (typeof a !== 'string' || !isValidRoomAlias(a)) throw new MatrixError('M_INVALID_PARAM', `Invalid alias: ${String(a)}`);
      const found = await this.store.rooms.getAlias(a);
      if (!found || found.roomId !== roomId) throw new MatrixError('M_BAD_ALIAS', `Alias ${a} does not point to this room`, {}, 400);
    }
  }
}
