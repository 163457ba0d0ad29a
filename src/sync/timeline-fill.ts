// Completing a /sync timeline that history visibility thinned out. The newest `limit` events of a
// room may all be hidden from the user (sent while they were away from a room whose history is
// `joined` or `invited` only): the timeline would then hold their own join and nothing else, and
// the state events that happened in that stretch (another member's join) would reach the client
// only as state, never as timeline. So, as Synapse does, the page is read further back, a bounded
// number of times, until `limit` visible events are found or history (or `since`) is reached.
//
// Invariants:
// - Only events the user may see are added: the visibility filter runs on every page read, and a
//   hidden state event is kept only while it is still the room's state at `upTo` (a joined member
//   may read current state anyway; see keepCurrentState).
// - Bounded: at most REFILL_ROUNDS extra reads of REFILL_PAGE events each, whatever the room's size.
// - Stays inside (since, upTo]: nothing at or below `since` is added to an incremental timeline.

import type { VisibilityChecker } from '../room/visibility.js';
import type { Store, StoredEvent } from '../store/types.js';
import type { EventMatcher } from './filter.js';

const REFILL_ROUNDS = 5;
const REFILL_PAGE_MIN = 10;

/**
 * A joined member's page keeps the hidden state events that are still the room's state at `upTo`
 * (e.g. a join that happened while the member was away from a private-history room): the client
 * builds its state from the state section plus the timeline, and would otherwise never learn
 * them. They are current state, which a member may read anyway.
 */
export async function keepCurrentState(store: Store, roomId: string, page: StoredEvent[], visible: StoredEvent[], upTo: number): Promise<StoredEvent[]> {
  const shown = new Set(visible.map((e) => e.eventId));
  const hiddenState = page.filter((e) => !shown.has(e.eventId) && typeof e.pdu.state_key === 'string');
  if (hiddenState.length === 0) return visible;
  const current = new Set((await store.rooms.getStateAt(roomId, upTo)).map((e) => e.eventId));
  const keep = new Set(hiddenState.filter((e) => current.has(e.eventId)).map((e) => e.eventId));
  return keep.size === 0 ? visible : page.filter((e) => shown.has(e.eventId) || keep.has(e.eventId));
}

export interface FillQuery {
  userId: string;
  roomId: string;
  /** Exclusive lower bound (the since position), or undefined for the whole history. */
  from: number | undefined;
  upTo: number;
  limit: number;
  matcher: EventMatcher;
  /** The user's join position when joined: hidden current state is then kept (keepCurrentState). */
  joinedAt: number | undefined;
}

/**
 * Visible events before `oldest` (the oldest event read so far) prepended to `visible` until there
 * are `limit` of them; `more` says whether events remain before what was read.
 */
export async function fillTimeline(
  store: Store,
  visibility: VisibilityChecker,
  q: FillQuery,
  oldest: number,
  visible: StoredEvent[],
): Promise<{ events: StoredEvent[]; more: boolean }> {
  const pageSize = Math.max(2 * q.limit, REFILL_PAGE_MIN);
  let events = visible;
  let more = true;
  for (let round = 0; round < REFILL_ROUNDS && events.length < q.limit && more; round++) {
    const raw = await store.rooms.getRoomEvents({
      roomId: q.roomId,
      dir: 'b',
      from: oldest - 1,
      to: q.from,
      limit: pageSize + 1,
      types: q.matcher.types,
      notTypes: q.matcher.notTypes,
      senders: q.matcher.senders,
      notSenders: q.matcher.notSenders,
    });
    more = raw.length > pageSize;
    const page = raw.slice(0, pageSize).reverse();
    if (page.length === 0) break;
    oldest = page[0].stream;
    let shown = await visibility.filter(q.userId, q.roomId, page);
    if (shown.length < page.length && q.joinedAt !== undefined) shown = await keepCurrentState(store, q.roomId, page, shown, q.upTo);
    events = [...shown, ...events];
  }
  if (events.length > q.limit) return { events: events.slice(events.length - q.limit), more: true };
  return { events, more };
}
