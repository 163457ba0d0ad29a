// The server admin API's domain side (Synapse's admin API subset that synadm and Synapse Admin
// use). Every method assumes the caller already checked that the requester is a server admin
// (requireAdmin); the routes in src/api/routes/admin.ts do that first.
//
// What is supported and what is not (also in docs/api.md):
// - Users: no guests, 3PIDs, external IDs, user types, shadow bans or locks exist yet, so those
//   fields are constant. Deactivation logs out every device and leaves every room; `erase`
//   erases as the client API's does (src/room/erasure.ts).
// - Room deletion: local members leave (as themselves), local aliases are removed, the room is
//   unpublished, optionally blocked, and by default purged from the database. new_room_user_id
//   (a replacement room) is refused. It runs synchronously; the v2 endpoints report it as
//   already complete.
// - purge_history keeps state events and the forward extremities, and local senders' events
//   unless delete_local_events (Synapse's rule). It runs synchronously too.

import { randomBytes } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import { clientShape } from '../room/client-event.js';
import type { RoomInput } from '../room/room-input.js';
import { WriterOperations } from '../room/writer-operations.js';
import type { ErasureService } from '../room/erasure.js';
import type { RoomService } from '../room/room-service.js';
import type { RoomState } from '../room/room-state.js';
import type { Store, UserRecord } from '../store/types.js';
import type { AccountService } from '../users/account-service.js';
import { hashPassword } from '../users/credentials.js';

export interface AdminDeps {
  store: Store;
  accounts: AccountService;
  rooms: RoomService;
  erasure: ErasureService;
  roomInput: RoomInput;
  serverName: string;
  now: () => number;
  /** Purges run where the room is written (a cluster forwards them to its writer). */
  writerOps?: WriterOperations;
}

export interface DeleteRoomOptions {
  block: boolean;
  purge: boolean;
  newRoomUserId?: string;
}

// A type alias, not an interface, so it is assignable to JsonObject.
export type DeleteRoomResult = {
  kicked_users: string[];
  failed_to_kick_users: string[];
  local_aliases: string[];
  new_room_id: null;
};

export const ROOM_ORDERS = [
  'name', 'canonical_alias', 'joined_members', 'joined_local_members', 'version', 'creator', 'encryption',
  'federatable', 'public', 'join_rules', 'guest_access', 'history_visibility', 'state_events',
] as const;
export type RoomOrder = (typeof ROOM_ORDERS)[number];

/** Bounded record of finished jobs for the status endpoints (they all finish before answering). */
const MAX_JOBS = 1000;

export class AdminService {
  private readonly purges = new Map<string, { roomId: string; status: 'complete' | 'failed'; deleted: number }>();
  private readonly deletes = new Map<string, { roomId: string; result: DeleteRoomResult }>();

  private readonly writerOps: WriterOperations;

  constructor(private readonly deps: AdminDeps) {
    const { store, roomInput } = deps;
    this.writerOps = deps.writerOps ?? new WriterOperations();
    this.writerOps.define('admin.deleteRoom', async (roomId) => {
      await roomInput.exclusive(roomId, () => store.admin.deleteRoom(roomId));
      return null;
    });
    this.writerOps.define('admin.purgeHistory', (roomId, [upTo, includeLocal]) =>
      roomInput.exclusive(roomId, () => store.admin.purgeHistory(roomId, upTo as number, { includeLocal: includeLocal as boolean, serverName: deps.serverName })),
    );
  }

  async requireAdmin(userId: string): Promise<void> {
    const u = await this.deps.store.accounts.getUser(userId);
    if (!u?.admin) throw new MatrixError('M_FORBIDDEN', 'You are not a server admin');
  }

  // -------------------------------------------------------------------------------------------
  // Users

  requireLocal(userId: string): void {
    if (!userId.startsWith('@') || userId.slice(userId.indexOf(':') + 1) !== this.deps.serverName || !userId.includes(':')) {
      throw new MatrixError('M_INVALID_PARAM', 'This endpoint can only be used with local users');
    }
  }

  async listUsers(q: { from: number; limit: number; name?: string; deactivated: boolean }): Promise<JsonObject> {
    const { users, total } = await this.deps.store.admin.listUsers(q);
    const out: JsonObject = { users: users.map((u) => this.userListEntry(u)), total };
    if (q.from + users.length < total) out.next_token = String(q.from + users.length);
    return out;
  }

  async getUser(userId: string): Promise<JsonObject> {
    const u = await this.deps.store.accounts.getUser(userId);
    if (!u) throw new MatrixError('M_NOT_FOUND', 'User not found');
    const threepids = (await this.deps.store.threepids.listAccountThreepids(userId)).map((t) => ({ medium: t.medium, address: t.address, validated_at: t.validatedAt, added_at: t.addedAt }));
    return { ...this.userDetails(u), threepids };
  }

  /** PUT /v2/users/{userId}: creates the account if missing. Returns whether it was created. */
  async putUser(
    userId: string,
    body: { password?: string; logout_devices?: boolean; displayname?: string | null; avatar_url?: string | null; admin?: boolean; deactivated?: boolean },
  ): Promise<{ created: boolean; user: JsonObject }> {
    this.requireLocal(userId);
    const { store, accounts } = this.deps;
    let user = await store.accounts.getUser(userId);
    let created = false;
    if (!user) {
      const localpart = userId.slice(1, userId.indexOf(':'));
      await accounts.createAccount(localpart, body.password ?? null, body.admin ?? false, body.displayname ?? undefined);
      created = true;
      user = await store.accounts.getUser(userId);
      if (!user) throw new Error(`account ${userId} vanished after creation`);
    } else if (body.deactivated === false && user.deactivated) {
      if (body.password === undefined) throw new MatrixError('M_INVALID_PARAM', 'Reactivating an account needs a password');
      await store.admin.reactivateUser(userId);
      await store.accounts.setPasswordHash(userId, await hashPassword(body.password));
    } else if (body.password !== undefined) {
      await this.resetPassword(userId, body.password, body.logout_devices ?? true);
    }
    if (!created && body.admin !== undefined && body.admin !== user.admin) await store.admin.setAdmin(userId, body.admin);
    const profile: { displayname?: string | null; avatarUrl?: string | null } = {};
    if (!created && body.displayname !== undefined) profile.displayname = body.displayname;
    if (body.avatar_url !== undefined) profile.avatarUrl = body.avatar_url;
    if (profile.displayname !== undefined || profile.avatarUrl !== undefined) {
      await store.accounts.setProfile(userId, profile);
      await this.deps.rooms.propagateProfile(userId);
    }
    if (body.deactivated === true && !user.deactivated) await this.deactivate(userId, false);
    return { created, user: await this.getUser(userId) };
  }

  async deactivate(userId: string, erase: boolean): Promise<void> {
    this.requireLocal(userId);
    const { store } = this.deps;
    if (!(await store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'User not found');
    await this.deps.accounts.deactivate(userId);
    for (const m of await store.rooms.getRoomsForUser(userId, ['join', 'invite', 'knock'])) {
      await this.deps.rooms.leave({ userId }, m.roomId);
    }
    if (erase) await this.deps.erasure.erase(userId);
  }

  async resetPassword(userId: string, newPassword: string, logoutDevices: boolean): Promise<void> {
    this.requireLocal(userId);
    const u = await this.deps.store.accounts.getUser(userId);
    if (!u) throw new MatrixError('M_NOT_FOUND', 'User not found');
    if (u.deactivated) throw new MatrixError('M_INVALID_PARAM', 'The account is deactivated');
    await this.deps.store.accounts.setPasswordHash(userId, await hashPassword(newPassword));
    if (logoutDevices) await this.deps.accounts.logoutAll(userId);
  }

  async joinedRooms(userId: string): Promise<JsonObject> {
    if (!(await this.deps.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'User not found');
    const rooms = (await this.deps.store.rooms.getRoomsForUser(userId, ['join'])).map((m) => m.roomId).sort();
    return { joined_rooms: rooms, total: rooms.length };
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    this.requireLocal(userId);
    if (!(await this.deps.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'User not found');
    await this.deps.store.admin.setAdmin(userId, admin);
  }

  async devices(userId: string): Promise<JsonObject> {
    if (!(await this.deps.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'User not found');
    const devices = await this.deps.store.devices.listDevices(userId);
    return {
      devices: devices.map((d) => ({
        device_id: d.deviceId,
        display_name: d.displayName,
        last_seen_ip: d.lastSeenIp,
        last_seen_ts: d.lastSeenTs,
        last_seen_user_agent: null,
        user_id: d.userId,
      })),
      total: devices.length,
    };
  }

  async whois(userId: string): Promise<JsonObject> {
    if (!(await this.deps.store.accounts.getUser(userId))) throw new MatrixError('M_NOT_FOUND', 'User not found');
    const devices: JsonObject = {};
    for (const d of await this.deps.store.devices.listDevices(userId)) {
      const connections = d.lastSeenTs === null ? [] : [{ ip: d.lastSeenIp, last_seen: d.lastSeenTs, user_agent: null }];
      devices[d.deviceId] = { sessions: [{ connections }] };
    }
    return { user_id: userId, devices };
  }

  private userListEntry(u: UserRecord): JsonObject {
    return {
      name: u.userId,
      user_type: null,
      is_guest: false,
      admin: u.admin,
      deactivated: u.deactivated,
      erased: false,
      shadow_banned: false,
      displayname: u.displayname,
      avatar_url: u.avatarUrl,
      creation_ts: u.createdTs,
      approved: true,
      locked: false,
    };
  }

  private userDetails(u: UserRecord): JsonObject {
    return {
      ...this.userListEntry(u),
      threepids: [],
      external_ids: [],
      appservice_id: null,
      consent_server_notice_sent: null,
      consent_version: null,
      consent_ts: null,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Rooms

  async listRooms(q: { from: number; limit: number; orderBy: RoomOrder; dir: 'f' | 'b'; searchTerm?: string }): Promise<JsonObject> {
    const rooms: JsonObject[] = [];
    for (const r of await this.deps.store.admin.listRooms()) {
      const state = await this.deps.roomInput.currentState(r.roomId);
      if (state) rooms.push(await this.roomEntry(r.roomId, state));
    }
    const term = q.searchTerm?.toLowerCase();
    const matching = term
      ? rooms.filter((r) => [r.name, r.canonical_alias, r.room_id].some((v) => typeof v === 'string' && v.toLowerCase().includes(term)))
      : rooms;
    const key = q.orderBy;
    const sorted = [...matching].sort((a, b) => {
      const x = a[key];
      const y = b[key];
      // Counts sort largest first, as in Synapse; text ascending; missing values last.
      let c: number;
      if (typeof x === 'number' && typeof y === 'number') c = y - x;
      else if (x === null || x === undefined) c = y === null || y === undefined ? 0 : 1;
      else if (y === null || y === undefined) c = -1;
      else c = String(x) < String(y) ? -1 : String(x) > String(y) ? 1 : 0;
      if (c === 0) c = String(a.room_id) < String(b.room_id) ? -1 : 1;
      return q.dir === 'b' ? -c : c;
    });
    const page = sorted.slice(q.from, q.from + q.limit);
    const out: JsonObject = { rooms: page, offset: q.from, total_rooms: sorted.length };
    if (q.from + page.length < sorted.length) out.next_batch = q.from + page.length;
    if (q.from > 0) out.prev_batch = Math.max(0, q.from - q.limit);
    return out;
  }

  async roomDetails(roomId: string): Promise<JsonObject> {
    const state = await this.deps.roomInput.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    const entry = await this.roomEntry(roomId, state);
    const str = (type: string, key: string) => (typeof state.content(type)?.[key] === 'string' ? (state.content(type)![key] as string) : null);
    let devices = 0;
    for (const m of state.joinedMembers()) {
      if (this.isLocal(m.userId)) devices += (await this.deps.store.devices.listDevices(m.userId)).length;
    }
    return { ...entry, avatar: str('m.room.avatar', 'url'), topic: str('m.room.topic', 'topic'), joined_local_devices: devices, forgotten: false };
  }

  async members(roomId: string): Promise<JsonObject> {
    const state = await this.deps.roomInput.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    const members = state.joinedMembers().map((m) => m.userId).sort();
    return { members, total: members.length };
  }

  /** The room's current state events, in the client format. */
  async roomState(roomId: string): Promise<JsonObject> {
    const state = await this.deps.roomInput.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    const events = state.all().map(({ eventId, pdu }) => clientShape(eventId, pdu));
    return { state: events };
  }

  async deleteRoom(roomId: string, opts: DeleteRoomOptions): Promise<DeleteRoomResult> {
    const { store, roomInput } = this.deps;
    if (opts.newRoomUserId !== undefined) {
      throw new MatrixError('M_INVALID_PARAM', 'new_room_user_id (moving members to a replacement room) is not supported yet');
    }
    const result: DeleteRoomResult = { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };
    // Blocked first, so nobody can join again while members are being removed.
    if (opts.block) await store.admin.setRoomBlocked(roomId, true);
    const state = await roomInput.currentState(roomId);
    if (!state) {
      if (opts.block) return result;
      throw new MatrixError('M_NOT_FOUND', 'Room not found');
    }
    for (const m of await store.rooms.getRoomMembers(roomId, ['join', 'invite', 'knock'])) {
      if (!this.isLocal(m.userId)) continue;
      try {
        await this.deps.rooms.leave({ userId: m.userId }, roomId);
        if (m.membership === 'join') result.kicked_users.push(m.userId);
      } catch {
        result.failed_to_kick_users.push(m.userId);
      }
    }
    for (const alias of await store.rooms.getAliasesForRoom(roomId)) {
      await store.rooms.deleteAlias(alias);
      result.local_aliases.push(alias);
    }
    await store.rooms.setRoomVisibility(roomId, 'private');
    if (opts.purge) await this.writerOps.run(roomId, 'admin.deleteRoom', []);
    return result;
  }

  /** The v2 endpoint: the same work, answered with an ID whose status is already final. */
  async deleteRoomV2(roomId: string, opts: DeleteRoomOptions): Promise<string> {
    const result = await this.deleteRoom(roomId, opts);
    const id = randomBytes(12).toString('base64url');
    this.remember(this.deletes, id, { roomId, result });
    return id;
  }

  deleteStatus(id: string): JsonObject {
    const d = this.deletes.get(id);
    if (!d) throw new MatrixError('M_NOT_FOUND', 'delete id not found');
    return { status: 'complete', shutdown_room: d.result };
  }

  deleteStatusesForRoom(roomId: string): JsonObject {
    const results = [...this.deletes.entries()]
      .filter(([, d]) => d.roomId === roomId)
      .map(([id, d]) => ({ delete_id: id, status: 'complete', shutdown_room: d.result }));
    if (results.length === 0) throw new MatrixError('M_NOT_FOUND', 'No delete task for room');
    return { results };
  }

  async purgeHistory(roomId: string, opts: { eventId?: string; ts?: number; deleteLocal: boolean }): Promise<string> {
    const { store } = this.deps;
    if (!(await store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    let upTo: number;
    if (opts.eventId !== undefined) {
      const ev = await store.rooms.getEvent(opts.eventId);
      if (!ev || ev.roomId !== roomId) throw new MatrixError('M_NOT_FOUND', 'Event not found in this room');
      upTo = ev.stream - 1; // up to, not including, the given event
    } else if (opts.ts !== undefined) {
      upTo = await store.admin.streamBeforeTs(roomId, opts.ts);
    } else {
      throw new MatrixError('M_MISSING_PARAM', 'Give purge_up_to_event_id or purge_up_to_ts');
    }
    const id = randomBytes(12).toString('base64url');
    const deleted = await this.writerOps.run<number>(roomId, 'admin.purgeHistory', [upTo, opts.deleteLocal]);
    this.remember(this.purges, id, { roomId, status: 'complete', deleted });
    return id;
  }

  purgeStatus(id: string): JsonObject {
    const p = this.purges.get(id);
    if (!p) throw new MatrixError('M_NOT_FOUND', 'purge id not found');
    return { status: p.status };
  }

  private remember<T>(map: Map<string, T>, id: string, value: T): void {
    map.set(id, value);
    if (map.size > MAX_JOBS) map.delete(map.keys().next().value as string);
  }

  private isLocal(userId: string): boolean {
    return userId.slice(userId.indexOf(':') + 1) === this.deps.serverName;
  }

  private async roomEntry(roomId: string, state: RoomState): Promise<JsonObject> {
    const room = await this.deps.store.rooms.getRoom(roomId);
    const str = (type: string, key: string) => (typeof state.content(type)?.[key] === 'string' ? (state.content(type)![key] as string) : null);
    const joined = state.joinedMembers();
    const create = state.content('m.room.create');
    return {
      room_id: roomId,
      name: str('m.room.name', 'name'),
      canonical_alias: str('m.room.canonical_alias', 'alias'),
      joined_members: joined.length,
      joined_local_members: joined.filter((m) => this.isLocal(m.userId)).length,
      version: room?.roomVersion ?? null,
      creator: room?.creator ?? null,
      encryption: str('m.room.encryption', 'algorithm'),
      federatable: create?.['m.federate'] !== false,
      public: (await this.deps.store.rooms.getRoomVisibility(roomId)) === 'public',
      join_rules: state.joinRule(),
      guest_access: str('m.room.guest_access', 'guest_access'),
      history_visibility: str('m.room.history_visibility', 'history_visibility'),
      state_events: state.all().length,
      room_type: typeof create?.type === 'string' ? create.type : null,
    };
  }
}
