// History visibility (spec: "Server behaviour" of m.room.history_visibility). Decides, per event,
// whether a user may see it, from the room's history_visibility and the user's membership *at
// that event*. A member who left sees nothing sent after leaving; a non-member of a private room
// sees nothing at all.

import type { Store, StoredEvent } from '../store/types.js';

interface Timeline<T> {
  /** Ascending by stream. */
  points: Array<{ stream: number; value: T }>;
}

function valueAt<T>(t: Timeline<T>, stream: number, inclusive: boolean): T | undefined {
  let v: T | undefined;
  for (const p of t.points) {
    if (p.stream < stream || (inclusive && p.stream === stream)) v = p.value;
    else break;
  }
  return v;
}

/**
 * Whether `userId` may see `e`, given their membership timeline and the room's history
 * visibility timeline. `membership`'s last point is taken as their membership now.
 */
function visibleTo(
  userId: string,
  e: StoredEvent,
  membership: Timeline<string | undefined>,
  visibility: Timeline<string | undefined>,
  worldReadableAsShared: boolean,
): boolean {
  // A user always sees their own membership events.
  if (e.pdu.type === 'm.room.member' && e.pdu.state_key === userId) return true;
  const m = valueAt(membership, e.stream, false);
  const allows = (setting: string): boolean => {
    const vis = worldReadableAsShared && setting === 'world_readable' ? 'shared' : setting;
    if (vis === 'world_readable' || m === 'join') return true;
    if (vis === 'shared' && membership.points.some((p) => p.value === 'join' && p.stream > e.stream)) {
      // Joined at some point after the event. For a user who left, that must also be a join
      // that is still in force, or they would see history from between their stints.
      const last = membership.points[membership.points.length - 1];
      return last?.value === 'join';
    }
    return vis === 'invited' && m === 'invite';
  };
  const before = valueAt(visibility, e.stream, false) ?? 'shared';
  if (allows(before)) return true;
  // A history_visibility change is visible if the setting before *or* after it allows it
  // (spec: a non-member sees a change to or from world_readable).
  const isChange = e.pdu.type === 'm.room.history_visibility' && e.pdu.state_key === '';
  return isChange && allows(String(e.pdu.content.history_visibility ?? 'shared'));
}

export class VisibilityChecker {
  constructor(
    private readonly store: Store,
    /** A cache of ignore lists kept current by the store's completion hook (the sync read model). */
    private readonly cache?: { ignoredUsers(userId: string, load: () => Promise<Set<string>>): Promise<ReadonlySet<string>> },
  ) {}

  /** Filters events of one room down to those `userId` may see; keeps order. */
  async filter(userId: string, roomId: string, events: StoredEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return events;
    const [membership, visibility, ignored] = await Promise.all([
      this.timeline(roomId, 'm.room.member', userId, 'membership'),
      this.timeline(roomId, 'm.room.history_visibility', '', 'history_visibility'),
      this.ignoredUsers(userId),
    ]);
    return events.filter((e) => {
      // Messages of ignored users are hidden; their state events stay so room state is coherent.
      if (ignored.has(e.pdu.sender) && e.pdu.state_key === undefined) return false;
      return visibleTo(userId, e, membership, visibility, false);
    });
  }

  /**
   * The IDs of the events (of one room) `userId` had visibility on at stream position `asOf`,
   * judged by their membership up to then only. world_readable counts as shared here: it let
   * anyone read, but erasure (the caller) must serve redacted copies to everyone who joins
   * later, so only what the user's own membership gave them counts. Ignored users play no part.
   */
  async visibleAsOf(userId: string, roomId: string, events: StoredEvent[], asOf: number): Promise<Set<string>> {
    const out = new Set<string>();
    const candidates = events.filter((e) => e.stream <= asOf);
    if (candidates.length === 0) return out;
    const [membership, visibility] = await Promise.all([
      this.timeline(roomId, 'm.room.member', userId, 'membership'),
      this.timeline(roomId, 'm.room.history_visibility', '', 'history_visibility'),
    ]);
    const then = { points: membership.points.filter((p) => p.stream <= asOf) };
    for (const e of candidates) if (visibleTo(userId, e, then, visibility, true)) out.add(e.eventId);
    return out;
  }

  /** Events minus messages of users the viewer ignores (state events stay, as in filter()). */
  async withoutIgnored(userId: string, events: StoredEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return events;
    const ignored = await this.ignoredUsers(userId);
    if (ignored.size === 0) return events;
    return events.filter((e) => !(ignored.has(e.pdu.sender) && e.pdu.state_key === undefined));
  }

  /** Whether the user may see anything of the room right now (for /messages, /state etc.). */
  async canPeek(userId: string, roomId: string): Promise<boolean> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m) return true; // members, invitees and leavers see (part of) history
    return this.isWorldReadable(roomId);
  }

  async isWorldReadable(roomId: string): Promise<boolean> {
    const state = await this.store.rooms.getCurrentState(roomId);
    const hv = state.find((s) => s.type === 'm.room.history_visibility' && s.stateKey === '');
    if (!hv) return false;
    const ev = await this.store.rooms.getEvent(hv.eventId);
    return ev?.pdu.content.history_visibility === 'world_readable';
  }

  /** The same checker reading everything from the store (verification, tests). */
  withoutCache(): VisibilityChecker {
    return new VisibilityChecker(this.store);
  }

  /** The user's m.ignored_user_list as a set (read-only: it may be shared). */
  async ignoredUsers(userId: string): Promise<ReadonlySet<string>> {
    return this.cache ? this.cache.ignoredUsers(userId, () => this.loadIgnored(userId)) : this.loadIgnored(userId);
  }

  private async loadIgnored(userId: string): Promise<Set<string>> {
    const data = await this.store.userData.getAccountData(userId, '', 'm.ignored_user_list');
    const list = data?.ignored_users;
    return new Set(list && typeof list === 'object' && !Array.isArray(list) ? Object.keys(list) : []);
  }

  private async timeline(roomId: string, type: string, stateKey: string, field: string): Promise<Timeline<string | undefined>> {
    const hist = await this.store.rooms.getStateHistory(roomId, type, stateKey);
    if (hist.length === 0) return { points: [] };
    const events = await this.store.rooms.getEvents(hist.flatMap((h) => (h.eventId === null ? [] : [h.eventId])));
    return {
      points: hist.map((h) => {
        // A key dropped by state resolution reads as no value (not a member; default visibility).
        if (h.eventId === null) return { stream: h.stream, value: undefined };
        const v = events.get(h.eventId)?.pdu.content[field];
        return { stream: h.stream, value: typeof v === 'string' ? v : '' };
      }),
    };
  }
}
