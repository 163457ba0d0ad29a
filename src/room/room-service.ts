// Room operations as clients ask for them (create, membership, send, state, redact). Policy
// that is not part of the auth rules lives here; everything that writes goes through RoomInput.
// The initial events of a new room are built in initial-state.ts.

import { randomBytes } from 'node:crypto';
import { MatrixError } from '../errors.js';
import { isValidRoomAlias, isValidUserId, serverNameOf } from '../protocol/ids.js';
import { DEFAULT_ROOM_VERSION, findRoomVersion } from '../protocol/room-versions.js';
import type { JsonObject, Pdu, RoomVersion } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import type { Admission } from '../admission/admission.js';
import { canonicalJson } from '../protocol/canonical-json.js';
import { prevEventIds } from '../protocol/events.js';
import type { EventDraft, RoomInput, SubmitResult } from './room-input.js';
import { WriterOperations } from './writer-operations.js';
import { initialDrafts, memberContent, type CreateRoomRequest } from './initial-state.js';

export type { CreateRoomRequest } from './initial-state.js';
import type { Logger } from 'pino';

type Sender = { userId: string; deviceId?: string };

/** State an invited server gets with a remote invite (the spec's recommended set; create first). */
const INVITE_ROOM_STATE_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

/** Membership across servers (src/federation/remote-rooms.ts implements it). */
export interface RemoteMembership {
  join(userId: string, roomId: string, via: string[], content: JsonObject): Promise<void>;
  /** Leaves (rejects an invite) through another server: make_leave, send_leave. */
  leave(userId: string, roomId: string, via: string[], reason?: string): Promise<void>;
  /** Rejects an invite here only (the inviting server refused the rejection or is unreachable). */
  rejectLocally(userId: string, roomId: string, version: RoomVersion, invite: { eventId: string; pdu: Pdu }, reason?: string): Promise<void>;
  /** Knocks through another server: make_knock, send_knock. */
  knock(userId: string, roomId: string, via: string[], content: JsonObject): Promise<void>;
  /** Older events of a room from one of `servers` (checked, not stored). */
  backfill(roomId: string, version: RoomVersion, servers: string[], from: string[], limit: number): Promise<Array<{ eventId: string; pdu: Pdu }>>;
  /** Asks the alias's server (query/directory) which room it names and which servers are in it. */
  resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }>;
  /**
   * Has `destination` sign an invite; returns the PDU with its signature added. `roomState` is
   * what the invitee's server may show of the room before joining (always the create event).
   */
  invite(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu, destination: string, roomState: Pdu[]): Promise<Pdu>;
}

export class RoomService {
  /** Backfill starts that brought nothing new: not asked about again. */
  private readonly backfillExhausted = new Set<string>();
  constructor(
    private readonly store: Store,
    private readonly input: RoomInput,
    private readonly serverName: string,
    private readonly logger: Logger,
    /** Joins and invites across servers; without it (federation off) they are refused. */
    private readonly remote?: RemoteMembership,
    /** Sheds client sends past capacity (429 with retry_after_ms); none: every send admitted. */
    private readonly admission?: Admission,
    /** The version of rooms created without one (config default_room_version). */
    readonly defaultRoomVersion: RoomVersion = DEFAULT_ROOM_VERSION,
    /** Where operations run that must run on the room's writer (an invite to another server). */
    private readonly writerOps: WriterOperations = new WriterOperations(),
  ) {
    writerOps.define('room.inviteRemote', (roomId, [draft, version, invitee, roomState]) =>
      this.inviteRemoteHere(roomId, draft as EventDraft, version as RoomVersion, invitee as string, roomState as Pdu[]),
    );
  }

  /** How many rooms a profile change of `userId` writes a member event into. */
  async joinedRoomCount(userId: string): Promise<number> {
    return (await this.store.rooms.getRoomsForUser(userId, ['join'])).length;
  }

  /**
   * `internal.roomId` (upgrades only) is the ID to use, chosen in advance so that other events
   * can name the room before it exists; only for versions whose room ID is not derived from
   * the create event (where it is, `internal.roomId` is ignored).
   */
  async createRoom(sender: Sender, req: CreateRoomRequest, internal: { roomId?: string } = {}): Promise<{ roomId: string; alias?: string }> {
    const rules = findRoomVersion(req.room_version ?? this.defaultRoomVersion);
    if (!rules) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Room version ${req.room_version} is not supported`);
    const version = rules.id;
    for (const u of req.invite ?? []) {
      if (!isValidUserId(u)) throw new MatrixError('M_INVALID_PARAM', `Invalid user ID in invite: ${u}`);
      if (!this.remote) this.requireLocal(u);
    }
    let alias: string | undefined;
    if (req.room_alias_name !== undefined) {
      alias = `#${req.room_alias_name}:${this.serverName}`;
      if (!isValidRoomAlias(alias) || req.room_alias_name.includes(':')) {
        throw new MatrixError('M_INVALID_PARAM', 'Invalid room_alias_name');
      }
      if (await this.store.rooms.getAlias(alias)) throw new MatrixError('M_ROOM_IN_USE', 'Room alias already taken');
    }

    const me = sender.userId;
    const preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
    // v12 room IDs are the create event's hash, known only once RoomInput has built it.
    const requestedId = rules.roomIdFromCreateEvent ? null : (internal.roomId ?? this.newRoomId());
    const profile = await this.store.accounts.getUser(me);

    // Invitees of other servers are invited once the room exists: their server must sign each invite.
    const remoteInvites = (req.invite ?? []).filter((u) => serverNameOf(u) !== this.serverName);
    const drafts = await initialDrafts(req, { rules, me, preset, alias, profile, remoteInvites, getUser: (u) => this.store.accounts.getUser(u) });

    // The alias is claimed before any event is written (once the room ID is known): of two
    // concurrent creations with one alias, exactly one wins (RoomInput.createRoom).
    const { roomId } = await this.input.createRoom(requestedId, version, me, drafts, { alias });
    if (req.visibility === 'public') await this.store.rooms.setRoomVisibility(roomId, 'public');
    for (const u of new Set(remoteInvites)) await this.changeMembership(sender, roomId, u, 'invite', undefined, req.is_direct ? { is_direct: true } : undefined);
    return { roomId, alias };
  }

  /** A fresh opaque room ID on this server. */
  newRoomId(): string {
    return `!${randomBytes(18).toString('base64url')}:${this.serverName}`;
  }

  async resolveRoom(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith('#')) return (await this.lookupAlias(roomIdOrAlias)).roomId;
    if (!roomIdOrAlias.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Not a room ID or alias');
    return roomIdOrAlias;
  }

  /**
   * When /messages has paged back to the oldest events stored here and their prev events are
   * missing (a room joined over federation), asks the other servers in the room for the history
   * before them. Returns how many events were added; a start that yielded nothing is not
   * asked about again (in this process).
   */
  async backfill(roomId: string, limit: number): Promise<number> {
    if (!this.remote) return 0;
    // The oldest events here whose prev events are missing: not only the very first one. A
    // user invited into a room this server did not know has the invite and, after it, the join,
    // with the room's history between them on the other servers: both start a gap. The latest
    // gap not yet exhausted is filled first, so the history arrives in the order /messages pages
    // back through it (filling an older gap first would put events behind a client's token).
    const firsts = await this.store.rooms.getRoomEvents({ roomId, dir: 'f', from: Number.MIN_SAFE_INTEGER, order: 'topological', limit: 50 });
    const known = await this.store.rooms.getEvents([...new Set(firsts.flatMap((e) => prevEventIds(e.pdu)))]);
    const start = firsts
      .filter((e) => {
        const prevs = prevEventIds(e.pdu);
        // No prev events: the create event, the room's beginning.
        return prevs.length > 0 && !prevs.every((id) => known.get(id)?.outlier === false);
      })
      .reverse()
      .find((e) => !this.backfillExhausted.has(`${roomId}\u0000${e.eventId}`));
    if (!start) return 0;
    const key = `${roomId}\u0000${start.eventId}`;
    const state = await this.input.currentState(roomId);
    if (!state) return 0;
    const servers = new Set<string>();
    for (const m of state.joinedMembers()) {
      const s = serverNameOf(m.userId);
      if (s !== undefined && s !== this.serverName) servers.add(s);
    }
    if (servers.size === 0) return 0;
    const events = await this.remote.backfill(roomId, state.version, [...servers], [start.eventId], Math.min(Math.max(limit, 10), 100));
    const added = await this.input.storeBackfill(roomId, events);
    if (added === 0) {
      if (this.backfillExhausted.size > 10_000) this.backfillExhausted.clear();
      this.backfillExhausted.add(key);
    }
    return added;
  }

  /** An alias of this server from the store; another server's through federation (query/directory). */
  async lookupAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    const server = serverNameOf(alias);
    if (server !== undefined && server !== this.serverName && this.remote) return this.remote.resolveAlias(alias);
    const a = await this.store.rooms.getAlias(alias);
    if (!a) throw new MatrixError('M_NOT_FOUND', `Room alias ${alias} not found`);
    return { roomId: a.roomId, servers: [this.serverName] };
  }

  /** `extra`: further keys of the client's request body, kept in the member event's content. */
  async join(sender: Sender, roomIdOrAlias: string, reason?: string, via: string[] = [], extra: JsonObject = {}): Promise<string> {
    let roomId: string;
    if (roomIdOrAlias.startsWith('#')) {
      // The alias's answer says which servers are in the room: those are the ones to ask.
      const found = await this.lookupAlias(roomIdOrAlias);
      roomId = found.roomId;
      via = [...via, ...found.servers];
    } else {
      roomId = await this.resolveRoom(roomIdOrAlias);
    }
    await this.refuseBlocked(roomId);
    const state = await this.input.currentState(roomId);
    // Known only through an invite from another server (no create event here), or a room no
    // member of ours is in any more (our copy of its DAG is stale): join through another server,
    // the inviting one first.
    const own = state?.get('m.room.member', sender.userId)?.pdu;
    const inviter = own?.content.membership === 'invite' ? serverNameOf(own.sender) : undefined;
    if (inviter !== undefined && inviter !== this.serverName) via = [inviter, ...via];
    const stub = state !== null && !state.get('m.room.create', '');
    const resident = state !== null && state.joinedMembers().some((m) => serverNameOf(m.userId) === this.serverName);
    // v12 room IDs name no server: only `via` (server_name) says where to ask.
    const server = serverNameOf(roomId);
    const elsewhere = [...via, ...(server !== undefined ? [server] : [])].some((s) => s !== this.serverName);
    if (!state || stub || (!resident && elsewhere && this.remote)) {
      const servers = [...new Set([...via, ...(server !== undefined ? [server] : [])])].filter((s) => s !== this.serverName);
      if (servers.length > 0 && this.remote) {
        const profile = await this.store.accounts.getUser(sender.userId);
        const content: JsonObject = { ...memberContent('join', profile), ...withoutReserved(extra), membership: 'join' };
        if (reason) content.reason = reason;
        await this.remote.join(sender.userId, roomId, servers, content);
        if (profile?.isGuest === true) await this.guestLeavesUnlessAllowed(sender, roomId);
        return roomId;
      }
      if (servers.length > 0) throw new MatrixError('M_FORBIDDEN', 'Joining rooms on other servers needs federation, which is not enabled');
      throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    }
    if (state.membership(sender.userId) === 'join') return roomId; // idempotent
    const profile = await this.store.accounts.getUser(sender.userId);
    refuseGuestJoin(profile?.isGuest === true, state.content('m.room.guest_access', '')?.guest_access);
    const content: JsonObject = { ...memberContent('join', profile), ...withoutReserved(extra), membership: 'join' };
    if (reason) content.reason = reason;
    await this.input.submit(roomId, { type: 'm.room.member', stateKey: sender.userId, sender: sender.userId, content });
    return roomId;
  }

  /** POST /knock: on a room this server is in, a local knock; otherwise through `via` (or the room ID's server). */
  async knock(sender: Sender, roomIdOrAlias: string, reason?: string, via: string[] = []): Promise<string> {
    const roomId = await this.resolveRoom(roomIdOrAlias);
    await this.refuseBlocked(roomId);
    const state = await this.input.currentState(roomId);
    const content: JsonObject = { ...memberContent('knock', await this.store.accounts.getUser(sender.userId)), membership: 'knock' };
    if (reason) content.reason = reason;
    if (!state || !state.get('m.room.create', '')) {
      const server = serverNameOf(roomId);
      const servers = [...new Set([...via, ...(server !== undefined ? [server] : [])])].filter((s) => s !== this.serverName);
      if (servers.length > 0 && this.remote) {
        await this.remote.knock(sender.userId, roomId, servers, content);
        return roomId;
      }
      if (servers.length > 0) throw new MatrixError('M_FORBIDDEN', 'Knocking on rooms of other servers needs federation, which is not enabled');
      throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    }
    const current = state.membership(sender.userId);
    if (current === 'join' || current === 'invite' || current === 'ban') throw new MatrixError('M_FORBIDDEN', `You cannot knock while your membership is ${current}`);
    await this.input.submit(roomId, { type: 'm.room.member', stateKey: sender.userId, sender: sender.userId, content });
    return roomId;
  }

  async leave(sender: Sender, roomId: string, reason?: string): Promise<void> {
    const state = await this.input.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    // Rejecting an invite to a room known only through it: only the inviting server can.
    const invite = !state.get('m.room.create', '') ? state.get('m.room.member', sender.userId) : undefined;
    if (invite && invite.pdu.content.membership === 'invite' && this.remote) {
      const server = serverNameOf(invite.pdu.sender);
      if (server === undefined) return;
      try {
        await this.remote.leave(sender.userId, roomId, [server], reason);
      } catch (err) {
        // The inviting server refused the rejection, failed or is unreachable: the invite is
        // rejected here alone, so the user is not stuck with it (the spec leaves this open).
        this.logger.warn({ err, roomId, server }, 'remote invite rejection failed; rejecting locally');
        await this.remote.rejectLocally(sender.userId, roomId, state.version, invite, reason);
      }
      return;
    }
    const current = state.membership(sender.userId);
    if (current === undefined || current === 'leave' || current === 'ban') {
      if (current === undefined) throw new MatrixError('M_FORBIDDEN', 'You are not a member of this room');
      return; // already out: leaving again is a no-op, as clients retry on another device
    }
    const content: JsonObject = { membership: 'leave' };
    if (reason) content.reason = reason;
    await this.input.submit(roomId, { type: 'm.room.member', stateKey: sender.userId, sender: sender.userId, content });
  }

  /** invite, kick (leave of another), ban, unban (leave of a banned user). */
  async changeMembership(
    sender: Sender,
    roomId: string,
    target: string,
    action: 'invite' | 'kick' | 'ban' | 'unban',
    reason?: string,
    /** Further member event content (createRoom's is_direct). */
    extra?: JsonObject,
  ): Promise<void> {
    if (!isValidUserId(target)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user_id');
    const remoteTarget = serverNameOf(target) !== this.serverName;
    if (action === 'invite') {
      if (remoteTarget && !this.remote) this.requireLocal(target);
      await this.refuseBlocked(roomId);
    }
    const state = await this.input.currentState(roomId);
    if (!state) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    const current = state.membership(target);
    if (action === 'invite') {
      if (current === 'join') throw new MatrixError('M_FORBIDDEN', `${target} is already in the room`);
      if (current === 'ban') throw new MatrixError('M_FORBIDDEN', `${target} is banned from the room`);
      if (current === 'invite') return;
    }
    if (action === 'unban' && current !== 'ban') throw new MatrixError('M_FORBIDDEN', `${target} is not banned`);
    if (action === 'kick' && current !== 'join' && current !== 'invite' && current !== 'knock') {
      throw new MatrixError('M_FORBIDDEN', `${target} is not in the room`);
    }
    const membership = action === 'invite' ? 'invite' : action === 'ban' ? 'ban' : 'leave';
    const content: JsonObject =
      action === 'invite' ? memberContent('invite', await this.store.accounts.getUser(target)) : { membership };
    if (reason) content.reason = reason;
    if (extra) Object.assign(content, extra);
    const draft = { type: 'm.room.member', stateKey: target, sender: sender.userId, content };
    const remote = this.remote;
    if (action === 'invite' && remoteTarget && remote) {
      // The invitee's server must sign the invite before it exists here (spec: invite v2).
      const version = state.version;
      const roomState: Pdu[] = [];
      for (const type of INVITE_ROOM_STATE_TYPES) {
        const e = state.get(type, '');
        if (e) roomState.push(e.pdu);
      }
      const inviter = state.get('m.room.member', sender.userId);
      if (inviter) roomState.push(inviter.pdu);
      await this.writerOps.run(roomId, 'room.inviteRemote', [draft, version, serverNameOf(target) as string, roomState]);
      return;
    }
    await this.input.submit(roomId, draft);
  }

  /**
   * The invitee's server signs the invite before it exists here (spec: invite v2), so the room's
   * queue is held across that request: it runs on the room's writer (writer-operations.ts).
   */
  private async inviteRemoteHere(roomId: string, draft: EventDraft, version: RoomVersion, invitee: string, roomState: Pdu[]): Promise<void> {
    const remote = this.remote;
    if (!remote) throw new MatrixError('M_UNKNOWN', 'Federation is off on the room\'s writer', {}, 501);
    await this.input.submitHolding(
      roomId,
      async () => draft,
      async (eventId, pdu) => {
        const signed = await remote.invite(roomId, version, eventId, pdu, invitee, roomState);
        pdu.signatures = signed.signatures;
      },
    );
  }

  async forget(sender: Sender, roomId: string): Promise<void> {
    const m = await this.store.rooms.getMembership(roomId, sender.userId);
    if (m && (m.membership === 'join' || m.membership === 'invite')) {
      throw new MatrixError('M_UNKNOWN', 'You must leave the room before forgetting it');
    }
    await this.store.rooms.forgetRoom(sender.userId, roomId);
  }

  async send(sender: Sender, roomId: string, draft: Omit<EventDraft, 'sender'>): Promise<SubmitResult> {
    // Refused before any work, so a shed send costs almost nothing.
    const release = this.admission?.enterSend();
    try {
      // A user's own member event (e.g. a join through PUT state/m.room.member) is judged by the
      // auth rules alone: the user is, by nature, not yet joined.
      const ownMembership = draft.type === 'm.room.member' && draft.stateKey === sender.userId;
      // Anyone else must be joined: checked by the room's writer against its in-memory state
      // (EventDraft.requireJoined), not with a store read per send.
      if (ownMembership && draft.content.membership === 'join' && (await this.store.accounts.getUser(sender.userId))?.isGuest) {
        // A join through PUT state/m.room.member meets the same guest rule as /join.
        const guestAccess = (await this.input.currentState(roomId))?.content('m.room.guest_access', '')?.guest_access;
        refuseGuestJoin(true, guestAccess);
      }
      if (draft.stateKey !== undefined && !draft.txn) {
        // The same state set again by the same sender changes nothing: answer with the event
        // already in place instead of adding an identical one (clients retry PUT state).
        // Only for a sender who may send at all: one who left gets the writer's 403 below.
        const state = await this.input.currentState(roomId);
        const current = state?.get(draft.type, draft.stateKey);
        const mayDeduplicate = ownMembership || state?.membership(sender.userId) === 'join';
        if (current && mayDeduplicate && current.pdu.sender === sender.userId && canonicalJson(current.pdu.content) === canonicalJson(draft.content)) {
          return { eventId: current.eventId, stream: 0, deduplicated: true };
        }
      }
      const res = await this.input.submit(roomId, { ...draft, sender: sender.userId, ...(ownMembership ? {} : { requireJoined: true }) });
      if (draft.type === 'm.room.guest_access' && draft.stateKey === '' && draft.content.guest_access !== 'can_join' && !res.deduplicated) {
        await this.removeGuests(roomId);
      }
      return res;
    } catch (err) {
      // A concurrent duplicate txn that raced past the queue's lookup (other worker): replay it.
      if (err instanceof StoreConflictError && draft.txn) {
        const { userId, deviceId, txnId, scope } = draft.txn;
        const id = await this.store.rooms.getEventIdForTxn(roomId, userId, deviceId, txnId, scope);
        if (id) return { eventId: id, stream: 0, deduplicated: true };
      }
      throw err;
    } finally {
      release?.();
    }
  }

  /**
   * After an alias is deleted: a canonical alias event that still names it is replaced by one
   * without it, sent by the user who deleted the alias. If the power levels refuse that, the
   * event keeps the stale alias (the directory entry is gone either way) and the refusal is logged.
   */
  async dropFromCanonicalAlias(sender: Sender, roomId: string, alias: string): Promise<void> {
    const ev = (await this.input.currentState(roomId))?.get('m.room.canonical_alias', '');
    if (!ev) return;
    const c = ev.pdu.content;
    const alt = Array.isArray(c.alt_aliases) ? c.alt_aliases : undefined;
    if (c.alias !== alias && !alt?.includes(alias)) return;
    const content: JsonObject = { ...c };
    if (c.alias === alias) delete content.alias;
    if (alt) content.alt_aliases = alt.filter((a) => a !== alias);
    try {
      await this.send(sender, roomId, { type: 'm.room.canonical_alias', stateKey: '', content });
    } catch (err) {
      this.logger.warn({ err, roomId, alias }, 'deleted alias left in m.room.canonical_alias');
    }
  }

  /**
   * A guest's join through another server: federation knows no guests, so the resident server let
   * it in, and the room's guest access is only known now, from the state the join brought. Unless
   * it is can_join the guest leaves at once and the join is refused (403), as a local join would be.
   */
  private async guestLeavesUnlessAllowed(sender: Sender, roomId: string): Promise<void> {
    const access = (await this.input.currentState(roomId))?.content('m.room.guest_access', '')?.guest_access;
    if (access === 'can_join') return;
    await this.leave(sender, roomId).catch((err: unknown) => this.logger.warn({ err, roomId, userId: sender.userId }, 'a guest joined a room without guest access and could not leave it'));
    refuseGuestJoin(true, access);
  }

  /**
   * An m.room.guest_access event from another server was stored: if the room's guest access is
   * no longer can_join, our guests leave, as after a local change (removeGuests).
   */
  async guestAccessChangedRemotely(roomId: string): Promise<void> {
    const access = (await this.input.currentState(roomId))?.content('m.room.guest_access')?.guest_access;
    if (access !== 'can_join') await this.removeGuests(roomId);
  }

  /**
   * Spec "Guest Access": once m.room.guest_access stops being can_join, guests' membership
   * becomes leave. Each leaves by itself (a self-leave needs no power); one failure does not
   * keep the others in.
   */
  private async removeGuests(roomId: string): Promise<void> {
    for (const m of await this.store.rooms.getRoomMembers(roomId, ['join', 'invite', 'knock'])) {
      if (serverNameOf(m.userId) !== this.serverName || !(await this.store.accounts.getUser(m.userId))?.isGuest) continue;
      try {
        await this.input.submit(roomId, { type: 'm.room.member', stateKey: m.userId, sender: m.userId, content: { membership: 'leave' } });
      } catch (err) {
        this.logger.warn({ err, userId: m.userId, roomId }, 'could not remove a guest after guest access was revoked');
      }
    }
  }

  /** Member events for every joined room after a profile change. Failures in one room don't stop others. */
  async propagateProfile(userId: string): Promise<void> {
    const user = await this.store.accounts.getUser(userId);
    const rooms = await this.store.rooms.getRoomsForUser(userId, ['join']);
    for (const r of rooms) {
      const state = await this.input.currentState(r.roomId);
      const prev = state?.content('m.room.member', userId) ?? {};
      const content: JsonObject = { ...prev, ...memberContent('join', user) };
      if (user?.displayname == null) delete content.displayname;
      if (user?.avatarUrl == null) delete content.avatar_url;
      try {
        await this.input.submit(r.roomId, { type: 'm.room.member', stateKey: userId, sender: userId, content });
      } catch (err) {
        // e.g. the user lacks permission in that room any more; the profile itself is saved.
        this.logger.warn({ err, userId, roomId: r.roomId }, 'profile change not propagated to a room');
      }
    }
  }

  /** Until federation lands, an invite to another server could never be delivered. */
  private requireLocal(userId: string): void {
    if (serverNameOf(userId) !== this.serverName) {
      throw new MatrixError('M_FORBIDDEN', `Cannot invite ${userId}: federation is not enabled on this server`);
    }
  }

  /** A room an admin blocked takes no joins or invites (DELETE /_synapse/admin/v1/rooms with block). */
  private async refuseBlocked(roomId: string): Promise<void> {
    if (await this.store.admin.isRoomBlocked(roomId)) throw new MatrixError('M_FORBIDDEN', 'This room has been blocked on this server');
  }
}

/** Keys of a join request body that are not member event content of the client's choosing. */
function withoutReserved(extra: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(extra)) if (k !== 'membership' && k !== 'third_party_signed' && k !== 'reason') out[k] = v;
  return out;
}

/** Spec "Guest Access": guests join only rooms whose m.room.guest_access is can_join. */
function refuseGuestJoin(isGuest: boolean, guestAccess: unknown): void {
  if (isGuest && guestAccess !== 'can_join') {
    throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'This room does not allow guests to join', {}, 403);
  }
}
