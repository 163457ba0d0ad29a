// The state parts of /sync room sections: the state section (lazy-loaded members included), the
// room summary and invite_state. Member state comes from the read model when it knows it (its
// answers equal the store's: see ReadModel.membersAt), otherwise from the store.

import type { JsonObject } from '../protocol/types.js';
import { strippedState } from '../room/client-event.js';
import type { MembershipRecord, StateEntry, Store, StoredEvent } from '../store/types.js';
import { eventMatches } from './filter.js';
import type { ReadModel } from './read-model/read-model.js';
import type { SyncRequest } from './sync-service.js';

const INVITE_STATE_TYPES = new Set([
  'm.room.create',
  'm.room.name',
  'm.room.avatar',
  'm.room.topic',
  'm.room.join_rules',
  'm.room.canonical_alias',
  'm.room.encryption',
]);

export class RoomStateSections {
  constructor(
    private readonly store: Store,
    private readonly model?: ReadModel,
  ) {}

  /**
   * The state section. Without lazy loading: the given entries. With lazy loading (spec
   * "Lazy-loading room members"): non-member state as given, plus the member events of the
   * timeline's senders and the heroes (and on a full section, the user's own), and on a limited
   * incremental sync every membership change in the gap, redundant or not. Member events of
   * senders are always resent (include_redundant_members behaviour), which the spec permits.
   */
  async stateEvents(
    req: SyncRequest,
    roomId: string,
    entries: StateEntry[],
    timeline: StoredEvent[],
    opts: { full: boolean; limited: boolean; timelineStart: number; heroes: string[] },
  ): Promise<StoredEvent[]> {
    const f = req.filter;
    let wanted = entries.filter((e) => eventMatches(f.state, e.type));
    /** Events the read model already holds (no read needed). */
    const cached = new Map<string, StoredEvent>();
    if (f.lazyLoadMembers && eventMatches(f.state, 'm.room.member')) {
      const needed = new Set<string>([...timeline.map((e) => e.pdu.sender), ...opts.heroes]);
      if (opts.full) needed.add(req.userId);
      const gap = !opts.full && opts.limited;
      wanted = wanted.filter((e) => e.type !== 'm.room.member' || gap || needed.has(e.stateKey));
      const have = new Set(wanted.filter((e) => e.type === 'm.room.member').map((e) => e.stateKey));
      let missing = [...needed].filter((u) => !have.has(u));
      if (missing.length > 0 && this.model) {
        // The read model knows each member's current event; the store answers the rest.
        const known = await this.model.membersAt(roomId, missing, opts.timelineStart, (r) =>
          this.store.rooms.getRoomMembers(r, ['join', 'invite', 'leave', 'ban', 'knock']),
        );
        wanted.push(...known.entries);
        for (const [id, e] of known.events) cached.set(id, e);
        missing = known.unknown;
      }
      if (missing.length > 0) {
        // Members the client needs but whose events are not among the entries: as of the
        // timeline's start, so the client can show who sent each event.
        wanted.push(...(await this.membersAt(roomId, missing, opts.timelineStart)));
      }
    }
    // Events already in the timeline need not be repeated in state.
    const inTimeline = new Set(timeline.map((e) => e.eventId));
    const ids = [...new Set(wanted.map((e) => e.eventId))].filter((id) => !inTimeline.has(id));
    const toRead = ids.filter((id) => !cached.has(id));
    const readAt = this.model?.position ?? 0;
    const byId = toRead.length > 0 ? await this.store.rooms.getEvents(toRead) : new Map<string, StoredEvent>();
    if (f.lazyLoadMembers && byId.size > 0) this.model?.noteMemberEvents(roomId, byId.values(), readAt);
    const out = ids.map((id) => cached.get(id) ?? byId.get(id)).filter((e): e is StoredEvent => !!e);
    return out.sort((a, b) => a.stream - b.stream);
  }

  /** Member state entries of some users as of a position; per-key lookups when they are few. */
  async membersAt(roomId: string, userIds: string[], at: number): Promise<StateEntry[]> {
    if (userIds.length > 20) {
      const want = new Set(userIds);
      return (await this.store.rooms.getStateAt(roomId, at)).filter((e) => e.type === 'm.room.member' && want.has(e.stateKey));
    }
    const out: StateEntry[] = [];
    await Promise.all(
      userIds.map(async (u) => {
        const hist = await this.store.rooms.getStateHistory(roomId, 'm.room.member', u);
        const last = [...hist].reverse().find((h) => h.stream <= at);
        if (last) out.push({ type: 'm.room.member', stateKey: u, eventId: last.eventId });
      }),
    );
    return out;
  }

  async summary(roomId: string, userId: string): Promise<JsonObject> {
    const members = await this.store.rooms.getRoomMembers(roomId, ['join', 'invite']);
    const joined = members.filter((m) => m.membership === 'join');
    const invited = members.filter((m) => m.membership === 'invite');
    const heroes = members
      .filter((m) => m.userId !== userId)
      .sort((a, b) => a.stream - b.stream)
      .slice(0, 5)
      .map((m) => m.userId);
    return { 'm.heroes': heroes, 'm.joined_member_count': joined.length, 'm.invited_member_count': invited.length };
  }

  async invitedRoom(m: MembershipRecord): Promise<JsonObject> {
    const state = await this.store.rooms.getStateAt(m.roomId, m.stream);
    const ids = state
      .filter((s) => INVITE_STATE_TYPES.has(s.type) || (s.type === 'm.room.member' && s.stateKey === m.userId))
      .map((s) => s.eventId);
    const events = await this.store.rooms.getEvents(ids);
    const inviteEvent = events.get(m.eventId) ?? (await this.store.rooms.getEvent(m.eventId));
    const stripped: JsonObject[] = [];
    for (const id of ids) {
      const e = events.get(id);
      if (e) stripped.push(strippedState(e.pdu));
    }
    if (inviteEvent) {
      const inviter = state.find((s) => s.type === 'm.room.member' && s.stateKey === inviteEvent.pdu.sender);
      const inviterEv = inviter ? await this.store.rooms.getEvent(inviter.eventId) : null;
      if (inviterEv && inviterEv.pdu.sender !== m.userId) stripped.push(strippedState(inviterEv.pdu));
      // The invitee's own member event, with its event_id, is what makes clients show the invite.
      const own = stripped.find((s) => s.type === 'm.room.member' && s.state_key === m.userId);
      if (own) Object.assign(own, { event_id: inviteEvent.eventId, origin_server_ts: inviteEvent.pdu.origin_server_ts });
    }
    return { invite_state: { events: stripped } };
  }
}
