// The state parts of /sync room sections: the state section (lazy-loaded members included), the
// room summary and invite_state. Member state comes from the read model when it knows it (its
// answers equal the store's: see ReadModel.membersAt), otherwise from the store.
// Lazy-loading redundancy (spec: a member event the client already has is not resent unless
// include_redundant_members) is tracked per device in LazyMemberLedger. An entry counts as
// delivered only once the client syncs from a position at or after the response that carried
// it, so a lost response or a retry from an older token gets the member again. Only long-poll
// syncs, whose `since` is an acknowledgement, use it; socket frames always resend (allowed).

import type { JsonObject } from '../protocol/types.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { strippedState } from '../room/client-event.js';
import type { MembershipRecord, StateEntry, Store, StoredEvent } from '../store/types.js';
import { eventMatches } from './filter.js';
import { HERO_CANDIDATES, type ReadModel, type RoomSummaryBase } from './read-model/read-model.js';
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

/** Which member events each device was sent, and in the response at which position. */
export class LazyMemberLedger {
  private readonly devices = new Map<string, Map<string, { eventId: string; sentAt: number }>>();
  /** Per request: the position its client acknowledged (undefined: initial sync), when tracked. */
  private readonly acked = new WeakMap<SyncRequest, { at: number | undefined }>();

  constructor(
    private readonly maxDevices = 5000,
    private readonly maxEntriesPerDevice = 20000,
  ) {}

  /** A long-poll request starts: `acked` is its since position; none means a new sequence. */
  begin(req: SyncRequest, acked: number | undefined): void {
    const key = deviceKey(req);
    // A client starting over has forgotten what it was sent (spec: "amnesia").
    if (acked === undefined) this.devices.delete(key);
    this.acked.set(req, { at: acked });
  }

  tracked(req: SyncRequest): boolean {
    return this.acked.has(req);
  }

  /** True when the client acknowledged a response carrying exactly this member event. */
  delivered(req: SyncRequest, roomId: string, userId: string, eventId: string): boolean {
    const at = this.acked.get(req)?.at;
    if (at === undefined) return false;
    const e = this.devices.get(deviceKey(req))?.get(`${roomId}\u0000${userId}`);
    return !!e && e.eventId === eventId && e.sentAt <= at;
  }

  note(req: SyncRequest, roomId: string, events: Iterable<StoredEvent>, sentAt: number): void {
    if (!this.acked.has(req)) return;
    const key = deviceKey(req);
    let m = this.devices.get(key);
    if (!m) {
      if (this.devices.size >= this.maxDevices) this.devices.delete(this.devices.keys().next().value as string);
      m = new Map();
    } else this.devices.delete(key);
    this.devices.set(key, m);
    for (const e of events) {
      if (e.pdu.type !== 'm.room.member' || typeof e.pdu.state_key !== 'string') continue;
      const k = `${roomId}\u0000${e.pdu.state_key}`;
      const prev = m.get(k);
      // The earliest response that carried this event is the one whose acknowledgement counts.
      if (prev && prev.eventId === e.eventId && prev.sentAt <= sentAt) continue;
      m.delete(k);
      m.set(k, { eventId: e.eventId, sentAt });
      if (m.size > this.maxEntriesPerDevice) m.delete(m.keys().next().value as string);
    }
  }
}

function deviceKey(req: SyncRequest): string {
  return `${req.userId}\u0000${req.deviceId}`;
}

export class RoomStateSections {
  constructor(
    private readonly store: Store,
    private readonly model?: ReadModel,
    readonly ledger = new LazyMemberLedger(),
  ) {}

  /**
   * The state section. Without lazy loading: the given entries. With lazy loading (spec
   * "Lazy-loading room members"): non-member state as given, plus the member events of the
   * timeline's senders and the heroes (and on a full section, the user's own), and on a limited
   * incremental sync every membership change in the gap, redundant or not. On an incremental
   * section, member events the client has acknowledged receiving are left out unless the filter
   * asks for include_redundant_members.
   */
  async stateEvents(
    req: SyncRequest,
    roomId: string,
    entries: StateEntry[],
    timeline: StoredEvent[],
    opts: { full: boolean; limited: boolean; timelineStart: number; heroes: string[]; upTo?: number },
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
      if (!opts.full && !f.includeRedundantMembers) {
        // Gap changes stay even when redundant (spec), so joins and leaves are never lost.
        const fromGap = new Set(gap ? entries.filter((e) => e.type === 'm.room.member').map((e) => e.eventId) : []);
        wanted = wanted.filter(
          (e) => e.type !== 'm.room.member' || fromGap.has(e.eventId) || !this.ledger.delivered(req, roomId, e.stateKey, e.eventId),
        );
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
    if (f.lazyLoadMembers && opts.upTo !== undefined) this.ledger.note(req, roomId, [...out, ...timeline], opts.upTo);
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
        if (last?.eventId) out.push({ type: 'm.room.member', stateKey: u, eventId: last.eventId });
      }),
    );
    return out;
  }

  async summary(roomId: string, userId: string): Promise<JsonObject> {
    // The viewer-independent part is shared by every member woken by the same change.
    const base = this.model ? await this.model.roomSummary(roomId, () => this.summaryBase(roomId)) : await this.summaryBase(roomId);
    const heroes = base.candidates.filter((u) => u !== userId).slice(0, 5);
    const counts = { 'm.joined_member_count': base.joined, 'm.invited_member_count': base.invited };
    // Heroes are only needed to name a room that has neither a name nor an alias (spec
    // RoomSummary), and lazy-loading clients get their member events only when they are sent.
    return base.hasName ? counts : { 'm.heroes': heroes, ...counts };
  }

  private async summaryBase(roomId: string): Promise<RoomSummaryBase> {
    const [members, hasName] = await Promise.all([this.store.rooms.getRoomMembers(roomId, ['join', 'invite']), this.hasName(roomId)]);
    let joined = 0;
    for (const m of members) if (m.membership === 'join') joined++;
    const candidates = [...members]
      .sort((a, b) => a.stream - b.stream)
      .slice(0, HERO_CANDIDATES)
      .map((m) => m.userId);
    return { joined, invited: members.length - joined, candidates, hasName };
  }

  private async hasName(roomId: string): Promise<boolean> {
    const state = await this.store.rooms.getCurrentState(roomId);
    const ids = state.filter((e) => e.stateKey === '' && (e.type === 'm.room.name' || e.type === 'm.room.canonical_alias')).map((e) => e.eventId);
    if (ids.length === 0) return false;
    for (const e of (await this.store.rooms.getEvents(ids)).values()) {
      const c = e.pdu.content;
      if (e.pdu.type === 'm.room.name' && typeof c.name === 'string' && c.name !== '') return true;
      if (e.pdu.type === 'm.room.canonical_alias') {
        if (typeof c.alias === 'string' && c.alias !== '') return true;
        if (Array.isArray(c.alt_aliases) && c.alt_aliases.some((a) => typeof a === 'string' && a !== '')) return true;
      }
    }
    return false;
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
      // A room known only through a remote invite: what the inviting server sent along with it.
      const sent = inviteEvent.pdu.unsigned?.invite_room_state;
      if (Array.isArray(sent)) {
        for (const e of sent) {
          if (!isJsonObject(e) || stripped.some((s) => s.type === e.type && s.state_key === e.state_key)) continue;
          stripped.push(e);
        }
      }
      // The invitee's own member event, with its event_id, is what makes clients show the invite.
      const own = stripped.find((s) => s.type === 'm.room.member' && s.state_key === m.userId);
      if (own) Object.assign(own, { event_id: inviteEvent.eventId, origin_server_ts: inviteEvent.pdu.origin_server_ts });
    }
    return { invite_state: { events: stripped } };
  }
}
