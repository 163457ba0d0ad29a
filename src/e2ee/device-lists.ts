// Which users' device lists a user must re-fetch: shared by /keys/changes and /sync's
// `device_lists`. "Sharing" means being joined to, or invited into, a room the user has joined
// (clients encrypt for invited members too).
//
// Only rooms with events in the range are inspected, and room member lists are only loaded when
// something in the range needs them, so an idle incremental sync costs two small queries.

import type { Membership, RoomStore } from '../store/types.js';
import type { E2eeStore } from '../store/e2ee-types.js';

const SHARING: Membership[] = ['join', 'invite'];
const isSharing = (m: unknown): boolean => m === 'join' || m === 'invite';

export interface DeviceListDelta {
  changed: string[];
  left: string[];
}

export class DeviceListTracker {
  constructor(
    private readonly rooms: Pick<RoomStore, 'getRoomsForUser' | 'getRoomMembers' | 'getMembershipChanges' | 'getStateChanges' | 'getStateHistory' | 'getEvents' | 'getRoomsMaxStream'>,
    private readonly e2ee: Pick<E2eeStore, 'getDeviceListChanges'>,
  ) {}

  /** The user plus everyone sharing a room with them: who must hear about their key changes. */
  async interestedIn(userId: string): Promise<string[]> {
    const out = new Set<string>([userId]);
    const mine = await this.rooms.getRoomsForUser(userId, SHARING);
    const lists = await Promise.all(mine.map((m) => this.rooms.getRoomMembers(m.roomId, SHARING)));
    for (const list of lists) for (const m of list) out.add(m.userId);
    return [...out];
  }

  /**
   * `changed`: users sharing a room with `userId` (or `userId` itself) whose device or
   * cross-signing keys changed in (fromExclusive, toInclusive], users who started sharing a
   * room with them in that range, and invited users who joined in that range. `left`: users who stopped sharing every room in that range.
   */
  async changes(userId: string, fromExclusive: number, toInclusive: number): Promise<DeviceListDelta> {
    if (toInclusive <= fromExclusive) return { changed: [], left: [] };
    const joined = await this.rooms.getRoomsForUser(userId, ['join']);
    const [keyChanges, myChanges, maxStreams] = await Promise.all([
      this.e2ee.getDeviceListChanges(fromExclusive, toInclusive, userId),
      this.rooms.getMembershipChanges(userId, fromExclusive, toInclusive),
      this.rooms.getRoomsMaxStream(joined.map((m) => m.roomId)),
    ]);

    const members = new Map<string, Promise<string[]>>();
    const membersOf = (roomId: string): Promise<string[]> => {
      let p = members.get(roomId);
      if (!p) members.set(roomId, (p = this.rooms.getRoomMembers(roomId, SHARING).then((l) => l.map((m) => m.userId))));
      return p;
    };
    let shared: Promise<Set<string>> | undefined;
    const sharedNow = (): Promise<Set<string>> =>
      (shared ??= Promise.all(joined.map((m) => membersOf(m.roomId))).then((lists) => new Set([userId, ...lists.flat()])));

    const changed = new Set<string>();
    const leftCandidates = new Set<string>();

    // The user's own joins bring every member of the room; their leaves take them away.
    const ownJoins = new Set<string>();
    for (const m of myChanges) {
      if (m.membership === 'join') {
        ownJoins.add(m.roomId);
        for (const u of await membersOf(m.roomId)) if (u !== userId) changed.add(u);
      } else if (m.membership === 'leave' || m.membership === 'ban') {
        for (const u of await membersOf(m.roomId)) leftCandidates.add(u);
      }
    }

    // Other users starting or stopping to share one of the user's rooms.
    const active = joined.filter((m) => !ownJoins.has(m.roomId) && (maxStreams.get(m.roomId) ?? 0) > fromExclusive);
    for (const room of active) {
      const delta = (await this.rooms.getStateChanges(room.roomId, fromExclusive, toInclusive)).filter(
        (e) => e.type === 'm.room.member' && e.stateKey !== userId,
      );
      if (delta.length === 0) continue;
      const now = await this.membershipsOf(delta.map((e) => e.eventId));
      for (const e of delta) {
        const nowM = now.get(e.eventId);
        const beforeM = await this.membershipAt(room.roomId, e.stateKey, fromExclusive);
        const after = isSharing(nowM);
        const before = isSharing(beforeM);
        // An invited user joining is changed again: their server sends us updates about their
        // devices only once they are a member, so what clients fetched at the invite may be stale.
        if (after && (!before || (nowM === 'join' && beforeM !== 'join'))) changed.add(e.stateKey);
        else if (!after && before) leftCandidates.add(e.stateKey);
      }
    }

    if (keyChanges.length > 0) {
      const s = await sharedNow();
      for (const u of keyChanges) if (s.has(u)) changed.add(u);
    }
    const left: string[] = [];
    if (leftCandidates.size > 0) {
      const s = await sharedNow();
      for (const u of leftCandidates) if (!s.has(u) && u !== userId) left.push(u);
    }
    for (const u of left) changed.delete(u);
    return { changed: [...changed].sort(), left: left.sort() };
  }

  private async membershipsOf(eventIds: string[]): Promise<Map<string, unknown>> {
    const events = await this.rooms.getEvents(eventIds);
    const out = new Map<string, unknown>();
    for (const [id, ev] of events) out.set(id, ev.pdu.content.membership);
    return out;
  }

  /** The user's membership in the room as of stream position `at` (inclusive), if any. */
  private async membershipAt(roomId: string, userId: string, at: number): Promise<unknown> {
    const history = await this.rooms.getStateHistory(roomId, 'm.room.member', userId);
    let eventId: string | undefined;
    for (const h of history) if (h.stream <= at) eventId = h.eventId ?? undefined;
    if (!eventId) return undefined;
    return (await this.membershipsOf([eventId])).get(eventId);
  }
}
