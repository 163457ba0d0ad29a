// Relations of an event (/relations) and a room's threads (/threads), as a user may see them.
// Bundled aggregations are EventFormatter's.
//
// Invariants:
// - The parent event must be one the user may see (else 404, alike for unknown and invisible);
//   every child and thread root is filtered by history visibility as well.
// - Pages are bounded by stream position; the store's `from` is exclusive in both directions, so
//   a page's last stream continues it.

import { MatrixError } from '../errors.js';
import type { Store, StoredEvent } from '../store/types.js';
import type { VisibilityChecker } from './visibility.js';

export interface RelationsQuery {
  relType?: string;
  eventType?: string;
  dir: 'b' | 'f';
  from?: number;
  to?: number;
  limit: number;
}

/** Visible events of a page, and where the next page starts when it was full. */
export interface RelationPage {
  events: StoredEvent[];
  next?: number;
}

export class RelationsService {
  constructor(
    private readonly store: Store,
    private readonly visibility: VisibilityChecker,
  ) {}

  async relations(userId: string, roomId: string, eventId: string, q: RelationsQuery): Promise<RelationPage> {
    const parent = await this.store.rooms.getEvent(eventId);
    const [visibleParent] = parent && parent.roomId === roomId ? await this.visibility.filter(userId, roomId, [parent]) : [];
    if (!visibleParent) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    let page = await this.store.relations.getRelations({ roomId, eventId, relType: q.relType, eventType: q.eventType, dir: q.dir, from: q.from, limit: q.limit });
    const to = q.to;
    // A page cut short by `to` has reached the end the client asked for: no next page.
    if (to !== undefined) page = page.filter((p) => (q.dir === 'b' ? p.stream > to : p.stream <= to));
    const next = page.length === q.limit ? page[page.length - 1].stream : undefined;
    return { events: await this.visibleInOrder(userId, roomId, page.map((p) => p.eventId)), next };
  }

  async threads(userId: string, roomId: string, q: { participatedOnly: boolean; before?: number; limit: number }): Promise<RelationPage> {
    const mine = await this.store.rooms.getMembership(roomId, userId);
    if (!mine && !(await this.visibility.canPeek(userId, roomId))) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
    const threads = await this.store.relations.getThreads(roomId, { participant: q.participatedOnly ? userId : undefined, before: q.before, limit: q.limit });
    const next = threads.length === q.limit ? threads[threads.length - 1].latestStream : undefined;
    return { events: await this.visibleInOrder(userId, roomId, threads.map((t) => t.rootEventId)), next };
  }

  private async visibleInOrder(userId: string, roomId: string, ids: string[]): Promise<StoredEvent[]> {
    const events = await this.store.rooms.getEvents(ids);
    const ordered = ids.map((id) => events.get(id)).filter((e): e is StoredEvent => !!e);
    return this.visibility.filter(userId, roomId, ordered);
  }
}
