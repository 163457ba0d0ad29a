// One room's section of a /sync response: a joined room's, a peeked room's (built as a joined
// one without a join) and a left room's. SyncService decides which rooms get one and from where;
// this decides what is in it.
//
// Invariants:
// - A timeline holds only events the user may see (visibility.ts); hidden ones are replaced by
//   reading further back (timeline-fill.ts), so `limited` means visible history was cut.
// - A peeked room (joinedAt undefined) shows state only as visible as its timeline: a full state
//   only while the room was or became world_readable within the section.
// - The ring buffer (read model) answers timelines only when it reaches back far enough; else the
//   store answers, with the same result.

import type { JsonObject } from '../protocol/types.js';
import type { EventFormatter } from '../room/client-event.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { MembershipRecord, StateEntry, Store, StoredEvent } from '../store/types.js';
import type { ReadModel } from './read-model/read-model.js';
import type { RoomStateSections } from './room-state.js';
import type { SyncRequest } from './sync-service.js';
import { serializeToken } from './token.js';
import { fillTimeline, keepCurrentState } from './timeline-fill.js';

export class RoomSections {
  constructor(
    private readonly store: Store,
    private readonly formatter: EventFormatter,
    private readonly visibility: VisibilityChecker,
    private readonly state: RoomStateSections,
    private readonly model?: ReadModel,
  ) {}

  /**
   * A joined room's section. `from` undefined means a full (initial or newly joined) section:
   * the latest timeline plus the full state at its start.
   */
  async joined(
    req: SyncRequest,
    roomId: string,
    from: number | undefined,
    upTo: number,
    fullState: boolean,
    /** Stream of the user's join; undefined for a peeked room (every event's visibility is checked). */
    joinedAt: number | undefined,
    /** The user was joined before this join (kicked or left, then joined again). */
    rejoined = false,
  ): Promise<JsonObject | null> {
    const f = req.filter;
    const full = fullState || from === undefined;
    const { events, limited: more } = await this.timeline(req, roomId, from, upTo, joinedAt);
    const timelineStart = events.length ? events[0].stream - 1 : upTo;
    // A room newly joined in an incremental sync is new to the client: any history before its
    // timeline (events the filter skipped included) makes it limited. An initial sync keeps
    // the plain rule (limited when the filtered timeline was cut), as clients expect there.
    // A rejoined room is always limited: history precedes the rejoin (the earlier stint at
    // least), and a client still holding its old timeline must drop it, not append to it.
    const newlyJoined = from === undefined && req.since !== undefined;
    const limited =
      more || (newlyJoined && (rejoined || (await this.hasVisibleEarlier(req.userId, roomId, events[0]?.stream ?? upTo + 1, upTo))));

    let stateEntries: StateEntry[];
    if (full) {
      stateEntries = await this.store.rooms.getStateAt(roomId, timelineStart);
      // A room joined through another server has no timeline state before the join (its state
      // came with send_join, as outliers, or an invite stub heads it): the state at the end of
      // the timeline is what the client needs. (A timeline that starts at the create event has
      // no state before it, rightly.)
      if (events.length > 0 && !stateEntries.some((e) => e.type === 'm.room.create') && !events.some((e) => e.pdu.type === 'm.room.create')) {
        stateEntries = await this.store.rooms.getStateAt(roomId, events[events.length - 1].stream);
      }
    } else if (limited) stateEntries = await this.store.rooms.getStateChanges(roomId, from, timelineStart);
    else stateEntries = [];

    const memberChanged = full || stateEntries.some((s) => s.type === 'm.room.member') || events.some((e) => e.pdu.type === 'm.room.member');
    const summary = memberChanged ? await this.state.summary(roomId, req.userId) : undefined;
    const heroes = (summary?.['m.heroes'] as string[] | undefined) ?? [];
    let stateEvents = await this.state.stateEvents(req, roomId, stateEntries, events, { full, limited, timelineStart, heroes, upTo });
    // A peeker (no join) may see a full state only if the room was world_readable at the start
    // of the timeline or turned so within it (public then, as GET /state of such a room); any
    // other state event must be visible to them like a timeline event, so a room that stopped
    // being world_readable shows no newer state either.
    const publicState = full && (events.some(worldReadableEvent) || (await this.worldReadableIn(stateEntries)));
    if (joinedAt === undefined && stateEvents.length > 0 && !publicState) {
      stateEvents = await this.visibility.filter(req.userId, roomId, stateEvents);
    }

    const section: JsonObject = {
      timeline: {
        events: await this.formatter.format(events, req, f.format, { noAggregations: this.model?.withoutRelations(events) }),
        limited,
        prev_batch: serializeToken({ stream: timelineStart, ephemeral: 0 }),
      },
      state: { events: await this.formatter.format(stateEvents, req, f.format, { noAggregations: this.model?.withoutRelations(stateEvents) }) },
      account_data: { events: [] },
      ephemeral: { events: [] },
      unread_notifications: { notification_count: 0, highlight_count: 0 },
    };
    if (summary) section.summary = summary;
    return section;
  }

  private async worldReadableIn(entries: StateEntry[]): Promise<boolean> {
    const hv = entries.find((e) => e.type === 'm.room.history_visibility' && e.stateKey === '');
    const ev = hv ? await this.store.rooms.getEvent(hv.eventId) : null;
    return !!ev && worldReadableEvent(ev);
  }

  private async timeline(
    req: SyncRequest,
    roomId: string,
    from: number | undefined,
    upTo: number,
    /** Stream of the user's current `join` membership, when they are joined. */
    joinedAt?: number,
  ): Promise<{ events: StoredEvent[]; limited: boolean }> {
    const limit = req.filter.timelineLimit;
    const t = req.filter.timeline;
    // The ring buffer answers when it reaches back far enough; else the store (same result).
    const buffered = this.model?.timeline(roomId, from, upTo, limit, t);
    let page: StoredEvent[];
    let more: boolean;
    if (buffered) {
      ({ events: page, more } = buffered);
    } else {
      const raw = await this.store.rooms.getRoomEvents({
        roomId,
        dir: 'b',
        from: upTo,
        to: from,
        limit: limit + 1,
        types: t.types,
        notTypes: t.notTypes,
        senders: t.senders,
        notSenders: t.notSenders,
      });
      more = raw.length > limit;
      page = raw.slice(0, limit).reverse();
    }
    // A member joined before every event of the page may see all of them (membership at each
    // event is join), so only the ignore list applies: no visibility history to read.
    const allWhileJoined = joinedAt !== undefined && page.every((e) => e.stream > joinedAt);
    let visible = allWhileJoined
      ? await this.visibility.withoutIgnored(req.userId, page)
      : await this.visibility.filter(req.userId, roomId, page);
    if (visible.length < page.length && joinedAt !== undefined) visible = await keepCurrentState(this.store, roomId, page, visible, upTo);
    const hidden = visible.length < page.length;
    // Events were hidden and earlier ones exist: read further back for visible ones (timeline-fill.ts).
    if (hidden && more && visible.length < limit) {
      ({ events: visible, more } = await fillTimeline(this.store, this.visibility, { userId: req.userId, roomId, from, upTo, limit, matcher: t, joinedAt }, page[0].stream, visible));
    }
    let limited = more;
    // Hidden history before a join behaves like the start of the room for the client.
    if (hidden && from === undefined) limited = visible.length > 0 && limited;
    return { events: visible, limited: limited || (from !== undefined && more) };
  }

  /**
   * Whether a full section's timeline leaves out earlier history the user may see (events the
   * timeline filter skipped included): then it is `limited`, and the client knows to paginate.
   */
  private async hasVisibleEarlier(userId: string, roomId: string, before: number, upTo: number): Promise<boolean> {
    const prev = await this.store.rooms.getRoomEvents({ roomId, dir: 'b', from: Math.min(before - 1, upTo), limit: 1 });
    if (prev.length === 0) return false;
    return (await this.visibility.filter(userId, roomId, prev)).length > 0;
  }

  async left(req: SyncRequest, m: MembershipRecord, from: number | undefined): Promise<JsonObject | null> {
    // The timeline of a left room ends at the leave event.
    const { events, limited } = await this.timeline(req, m.roomId, from, m.stream);
    const timelineStart = events.length ? events[0].stream - 1 : m.stream;
    const stateEntries =
      from === undefined || limited ? await this.store.rooms.getStateAt(m.roomId, timelineStart) : [];
    const stateEvents = await this.state.stateEvents(req, m.roomId, stateEntries, events, { full: true, limited, timelineStart, heroes: [] });
    return {
      timeline: {
        events: await this.formatter.format(events, req, req.filter.format),
        limited,
        prev_batch: serializeToken({ stream: timelineStart, ephemeral: 0 }),
      },
      state: { events: await this.formatter.format(stateEvents, req, req.filter.format) },
      account_data: { events: [] },
    };
  }
}

function worldReadableEvent(e: StoredEvent): boolean {
  return e.pdu.type === 'm.room.history_visibility' && e.pdu.state_key === '' && e.pdu.content.history_visibility === 'world_readable';
}
