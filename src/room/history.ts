// Reading a room's history for a user: /messages pages, /context windows and single events, each
// filtered by history visibility. Transports parse tokens and format events; this decides what a
// user may see and where a page ends.
//
// Invariants:
// - Nothing above the store's completed position is ever returned.
// - A user who may not read the room is refused for the room (403) before any event is looked up,
//   so refusals say nothing about an event's existence; an unknown, foreign or invisible event is
//   one and the same 404.
// - A member who left or was banned sees the room as it was when they went: nothing after their
//   leave, whatever the history visibility (world_readable included), as for /sync.

import { MatrixError } from '../errors.js';
import type { MembershipRecord, Store, StoredEvent, TopologicalPosition } from '../store/types.js';
import { eventMatches, type EventMatcher } from '../sync/filter.js';
import type { RoomService } from './room-service.js';
import type { VisibilityChecker } from './visibility.js';

/** A /messages bound: a stream position (from /sync) or a topological one (from /messages). */
export interface HistoryBound {
  stream: number;
  topo?: TopologicalPosition;
}

export interface MessagesQuery {
  dir: 'b' | 'f';
  limit: number;
  from?: HistoryBound;
  to?: HistoryBound;
  filter: EventMatcher;
  /** Lazy-loading members: also return the member events of the page's senders. */
  lazyMembers: boolean;
}

export interface MessagesPage {
  /** The stream position the page started from when no `from` was given. */
  startStream: number;
  events: StoredEvent[];
  /** Where the next page starts; absent at the end of history. */
  end?: TopologicalPosition;
  memberState?: StoredEvent[];
}

export interface ContextWindow {
  event: StoredEvent;
  before: StoredEvent[];
  after: StoredEvent[];
  start: TopologicalPosition;
  end: TopologicalPosition;
  /** The state after the window's last event, sorted by stream. */
  state: StoredEvent[];
}

export class RoomHistory {
  constructor(
    private readonly store: Store,
    private readonly rooms: Pick<RoomService, 'backfill'>,
    private readonly visibility: VisibilityChecker,
  ) {}

  async messages(userId: string, roomId: string, q: MessagesQuery): Promise<MessagesPage> {
    const mine = await this.assertCanRead(userId, roomId);
    const gone = mine !== null && (mine.membership === 'leave' || mine.membership === 'ban');
    const current = this.store.currentPosition();
    const head = gone ? Math.min(mine.stream, current) : current;
    // Paged in the room's topological (depth, stream) order, as the spec asks. Stream tokens
    // (from /sync) bound by stream position, topological tokens (from /messages) by (depth, stream).
    const from = q.from && !q.from.topo ? Math.min(q.from.stream, head) : q.dir === 'b' ? head : 0;
    const query = () =>
      this.store.rooms.getRoomEvents({
        roomId,
        dir: q.dir,
        from,
        fromTopo: q.from?.topo,
        to: q.to && !q.to.topo ? q.to.stream : undefined,
        toTopo: q.to?.topo,
        maxStream: head,
        order: 'topological',
        limit: q.limit,
        types: q.filter.types,
        notTypes: q.filter.notTypes,
        senders: q.filter.senders,
        notSenders: q.filter.notSenders,
      });
    let page = await query();
    // Paged back past the oldest event here: a room joined over federation may have history
    // before it on other servers (fetched once, then paged like the rest).
    if (q.dir === 'b' && page.length < q.limit && !gone && (await this.rooms.backfill(roomId, q.limit)) > 0) page = await query();
    const events = await this.visibility.filter(userId, roomId, page);
    const out: MessagesPage = { startStream: from, events };
    // `end` is omitted at the end of history: clients treat its absence as "nothing more".
    const last = page[page.length - 1];
    if ((page.length === q.limit && q.limit > 0) || (q.dir === 'f' && last)) {
      // "b from P" includes P, so the next backward page starts just below the last event.
      out.end = { depth: last.pdu.depth, stream: q.dir === 'b' ? last.stream - 1 : last.stream };
    }
    if (q.lazyMembers) out.memberState = await this.memberEventsOf(roomId, events);
    return out;
  }

  async context(userId: string, roomId: string, eventId: string, limit: number, filter: EventMatcher, lazyMembers: boolean): Promise<ContextWindow> {
    await this.assertCanRead(userId, roomId);
    const ev = await this.visibleEvent(userId, roomId, eventId);
    const before = Math.floor(limit / 2);
    const after = limit - before;
    const head = this.store.currentPosition();
    const at = { depth: ev.pdu.depth, stream: ev.stream };
    const [b, a] = await Promise.all([
      this.store.rooms.getRoomEvents({ roomId, dir: 'b', from: head, fromTopo: { ...at, stream: at.stream - 1 }, order: 'topological', limit: before }),
      this.store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, fromTopo: at, maxStream: head, order: 'topological', limit: after }),
    ]);
    const keep = (list: StoredEvent[]) => list.filter((e) => eventMatches(filter, e.pdu.type, e.pdu.sender));
    const [vb, va] = await Promise.all([this.visibility.filter(userId, roomId, keep(b)), this.visibility.filter(userId, roomId, keep(a))]);
    const lastEv = a[a.length - 1] ?? ev;
    let state = (await this.store.rooms.getStateAtEvent(lastEv.eventId, 'after')) ?? (await this.store.rooms.getStateAt(roomId, lastEv.stream));
    if (lazyMembers) {
      // Lazy loading (spec): only the member events of the senders of the returned events.
      const senders = new Set([ev, ...vb, ...va].map((e) => e.pdu.sender));
      state = state.filter((e) => e.type !== 'm.room.member' || senders.has(e.stateKey));
    }
    const stateEvents = await this.store.rooms.getEvents(state.map((e) => e.eventId));
    const firstEv = b[b.length - 1] ?? ev;
    return {
      event: ev,
      before: vb,
      after: va,
      start: { depth: firstEv.pdu.depth, stream: firstEv.stream - 1 },
      end: { depth: lastEv.pdu.depth, stream: lastEv.stream },
      state: [...stateEvents.values()].sort((x, y) => x.stream - y.stream),
    };
  }

  /** One event of the room, if the user may see it. */
  async event(userId: string, roomId: string, eventId: string): Promise<StoredEvent> {
    return this.visibleEvent(userId, roomId, eventId);
  }

  /** The user's membership; 403 when they have none and the room is not world-readable to them. */
  private async assertCanRead(userId: string, roomId: string): Promise<MembershipRecord | null> {
    const mine = await this.store.rooms.getMembership(roomId, userId);
    if (!mine && !(await this.visibility.canPeek(userId, roomId))) {
      throw new MatrixError('M_FORBIDDEN', 'You are not allowed to view this room');
    }
    return mine;
  }

  private async visibleEvent(userId: string, roomId: string, eventId: string): Promise<StoredEvent> {
    const ev = await this.store.rooms.getEvent(eventId);
    // Unknown, elsewhere, or invisible all look the same, so existence does not leak.
    if (!ev || ev.roomId !== roomId || ev.stream > this.store.currentPosition()) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    const [visible] = await this.visibility.filter(userId, roomId, [ev]);
    if (!visible) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    return ev;
  }

  /** Current member events of the senders of `events`, for lazy-loading clients. */
  private async memberEventsOf(roomId: string, events: StoredEvent[]): Promise<StoredEvent[]> {
    const senders = new Set(events.map((e) => e.pdu.sender));
    const state = await this.store.rooms.getCurrentState(roomId);
    const ids = state.filter((e) => e.type === 'm.room.member' && senders.has(e.stateKey)).map((e) => e.eventId);
    return [...(await this.store.rooms.getEvents(ids)).values()];
  }
}
