// POST /search, category room_events. The store finds text matches in the rooms the user is
// joined to; this service keeps only events the user may see (history visibility, ignored users)
// and pages on until a page is full, so a page never shows an event the user could not read.
//
// Tokens (next_batch) are opaque to clients: base64url JSON of the order and the store cursor
// (a stream position for 'recent', the number of raw matches consumed for 'rank'), so the next
// page continues exactly after the last match examined, visible or not.
//
// Encrypted events are never indexed (the server has no plaintext): results and `count` cover
// searchable events only. `count` is the store's match count in the searched rooms before the
// visibility filter, which the spec allows as "an approximate count".

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { SearchHit, SearchKey, SearchQuery, Store, StoredEvent } from '../store/types.js';
import { serializeToken } from '../sync/token.js';
import type { EventFormatter } from './client-event.js';
import type { VisibilityChecker } from './visibility.js';

export interface RoomEventsSearch {
  searchTerm: string;
  keys?: SearchKey[];
  filter?: {
    rooms?: string[];
    notRooms?: string[];
    senders?: string[];
    notSenders?: string[];
    types?: string[];
    notTypes?: string[];
    limit?: number;
    includeLeave?: boolean;
  };
  orderBy?: 'recent' | 'rank';
  eventContext?: { beforeLimit?: number; afterLimit?: number; includeProfile?: boolean };
  includeState?: boolean;
  groupBy?: Array<'room_id' | 'sender'>;
  nextBatch?: string;
}

interface Cursor {
  o: 'recent' | 'rank';
  /** recent: stream of the last match examined. rank: raw matches consumed so far. */
  p: number;
}

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 100;
const MAX_CONTEXT = 100;
/** Store rounds per request: bounds the work a page of mostly-invisible matches can cause. */
const MAX_ROUNDS = 8;

export const SEARCH_KEYS: readonly SearchKey[] = ['content.body', 'content.name', 'content.topic'];

/** The words of a search term (letters, digits, underscores), lowercased; punctuation separates. */
export function searchWords(term: string): string[] {
  return (term.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).slice(0, 32);
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(raw: string, order: 'recent' | 'rank'): Cursor {
  try {
    const c = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<Cursor>;
    if ((c.o === 'recent' || c.o === 'rank') && Number.isSafeInteger(c.p) && (c.p as number) >= 0 && c.o === order) {
      return { o: c.o, p: c.p as number };
    }
  } catch {
    // fall through: any malformed token is the client's error
  }
  throw new MatrixError('M_INVALID_PARAM', 'Invalid next_batch token');
}

export class SearchService {
  constructor(
    private readonly store: Store,
    private readonly visibility: VisibilityChecker,
    private readonly formatter: EventFormatter,
  ) {}

  async searchRoomEvents(userId: string, req: RoomEventsSearch): Promise<JsonObject> {
    const order = req.orderBy ?? 'rank';
    const f = req.filter ?? {};
    const limit = Math.min(Math.max(f.limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT);
    const memberships = f.includeLeave ? (['join', 'leave', 'ban'] as const) : (['join'] as const);
    let roomIds = (await this.store.rooms.getRoomsForUser(userId, [...memberships])).map((m) => m.roomId);
    if (f.rooms !== undefined) {
      const wanted = new Set(f.rooms);
      roomIds = roomIds.filter((r) => wanted.has(r));
    }
    if (f.notRooms !== undefined) {
      const unwanted = new Set(f.notRooms);
      roomIds = roomIds.filter((r) => !unwanted.has(r));
    }
    const words = searchWords(req.searchTerm);
    const query: SearchQuery = {
      words,
      roomIds,
      keys: req.keys && req.keys.length > 0 ? req.keys : [...SEARCH_KEYS],
      types: f.types,
      notTypes: f.notTypes,
      senders: f.senders,
      notSenders: f.notSenders,
      order,
      limit,
    };
    let cursor: Cursor = req.nextBatch !== undefined ? decodeCursor(req.nextBatch, order) : { o: order, p: order === 'rank' ? 0 : Number.MAX_SAFE_INTEGER };

    const hits: SearchHit[] = [];
    let exhausted = false;
    for (let round = 0; round < MAX_ROUNDS && hits.length < limit && !exhausted; round++) {
      const batch = Math.max(limit * 2, 20);
      const raw = await this.store.search.searchEvents(
        order === 'rank' ? { ...query, limit: batch, offset: cursor.p } : { ...query, limit: batch, before: cursor.p },
      );
      if (raw.length < batch) exhausted = true;
      const visible = await this.visibleIds(userId, raw.map((h) => h.event));
      let consumed = 0;
      for (const h of raw) {
        consumed++;
        if (visible.has(h.event.eventId)) hits.push(h);
        if (hits.length === limit) break;
      }
      if (consumed < raw.length) exhausted = false;
      cursor = order === 'rank' ? { o: 'rank', p: cursor.p + consumed } : { o: 'recent', p: raw[consumed - 1]?.event.stream ?? cursor.p };
    }

    const viewer = { userId };
    const formatted = await this.formatter.format(hits.map((h) => h.event), viewer);
    const results: JsonObject[] = [];
    for (let i = 0; i < hits.length; i++) {
      const r: JsonObject = { rank: hits[i].rank, result: formatted[i] };
      if (req.eventContext) r.context = await this.context(userId, hits[i].event, req.eventContext);
      results.push(r);
    }

    const out: JsonObject = {
      count: words.length > 0 ? await this.store.search.countEvents(query) : 0,
      highlights: words,
      results,
    };
    const nextBatch = exhausted ? undefined : encodeCursor(cursor);
    if (nextBatch !== undefined) out.next_batch = nextBatch;
    if (req.includeState) out.state = await this.roomStates(hits, viewer);
    if (req.groupBy && req.groupBy.length > 0) out.groups = this.groups(hits, req.groupBy, nextBatch);
    return out;
  }

  /** IDs of the events (of any rooms) that the user may see. */
  private async visibleIds(userId: string, events: StoredEvent[]): Promise<Set<string>> {
    const byRoom = new Map<string, StoredEvent[]>();
    for (const e of events) {
      const list = byRoom.get(e.roomId);
      if (list) list.push(e);
      else byRoom.set(e.roomId, [e]);
    }
    const out = new Set<string>();
    for (const [roomId, list] of byRoom) {
      for (const e of await this.visibility.filter(userId, roomId, list)) out.add(e.eventId);
    }
    return out;
  }

  private async context(userId: string, ev: StoredEvent, opts: NonNullable<RoomEventsSearch['eventContext']>): Promise<JsonObject> {
    const beforeLimit = Math.min(Math.max(opts.beforeLimit ?? 5, 0), MAX_CONTEXT);
    const afterLimit = Math.min(Math.max(opts.afterLimit ?? 5, 0), MAX_CONTEXT);
    const [b, a] = await Promise.all([
      beforeLimit > 0 ? this.store.rooms.getRoomEvents({ roomId: ev.roomId, dir: 'b', from: ev.stream - 1, limit: beforeLimit }) : [],
      afterLimit > 0
        ? this.store.rooms.getRoomEvents({ roomId: ev.roomId, dir: 'f', from: ev.stream, to: this.store.currentPosition(), limit: afterLimit })
        : [],
    ]);
    const [vb, va] = await Promise.all([this.visibility.filter(userId, ev.roomId, b), this.visibility.filter(userId, ev.roomId, a)]);
    const viewer = { userId };
    const out: JsonObject = {
      events_before: await this.formatter.format(vb, viewer),
      events_after: await this.formatter.format(va, viewer),
      start: serializeToken({ stream: (b[b.length - 1]?.stream ?? ev.stream) - 1, ephemeral: 0 }),
      end: serializeToken({ stream: a[a.length - 1]?.stream ?? ev.stream, ephemeral: 0 }),
    };
    if (opts.includeProfile) {
      const senders = new Set([ev, ...vb, ...va].map((e) => e.pdu.sender));
      const profiles: JsonObject = {};
      const state = await this.store.rooms.getCurrentState(ev.roomId);
      const memberIds = state.filter((s) => s.type === 'm.room.member' && senders.has(s.stateKey));
      const members = await this.store.rooms.getEvents(memberIds.map((m) => m.eventId));
      for (const m of memberIds) {
        const content = members.get(m.eventId)?.pdu.content ?? {};
        const p: JsonObject = {};
        if (typeof content.displayname === 'string') p.displayname = content.displayname;
        if (typeof content.avatar_url === 'string') p.avatar_url = content.avatar_url;
        profiles[m.stateKey] = p;
      }
      out.profile_info = profiles;
    }
    return out;
  }

  private async roomStates(hits: SearchHit[], viewer: { userId: string }): Promise<JsonObject> {
    const out: JsonObject = {};
    for (const roomId of new Set(hits.map((h) => h.event.roomId))) {
      const entries = await this.store.rooms.getCurrentState(roomId);
      const events = await this.store.rooms.getEvents(entries.map((e) => e.eventId));
      out[roomId] = await this.formatter.format([...events.values()].sort((x, y) => x.stream - y.stream), viewer);
    }
    return out;
  }

  private groups(hits: SearchHit[], groupBy: Array<'room_id' | 'sender'>, nextBatch: string | undefined): JsonObject {
    const out: JsonObject = {};
    for (const key of new Set(groupBy)) {
      const groups = new Map<string, string[]>();
      for (const h of hits) {
        const k = key === 'room_id' ? h.event.roomId : h.event.pdu.sender;
        const list = groups.get(k);
        if (list) list.push(h.event.eventId);
        else groups.set(k, [h.event.eventId]);
      }
      const g: JsonObject = {};
      let order = 1;
      for (const [k, ids] of groups) {
        const entry: JsonObject = { order: order++, results: ids };
        if (nextBatch !== undefined) entry.next_batch = nextBatch;
        g[k] = entry;
      }
      out[key] = g;
    }
    return out;
  }
}
