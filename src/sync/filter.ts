// Matrix event filters (/user/{id}/filter and inline /sync?filter=). Stored verbatim by the store;
// parsed here into a normalised form. Unknown fields are ignored, as the spec allows.

import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import { canonicalJson, hardenParsed, parseTrustedJson } from '../protocol/canonical-json.js';
import { isValidUserId } from '../protocol/ids.js';

const strList = z.array(z.string().max(255)).max(1000);
// Room and sender lists name rooms and users: anything else can never match and is a client bug,
// refused like any other malformed filter.
const roomIdList = z.array(z.string().max(255).refine((v) => /^![^\s]+$/.test(v), 'not a room ID')).max(1000);
const userIdList = z.array(z.string().max(255).refine((v) => isValidUserId(v), 'not a user ID')).max(1000);

const eventFilter = z
  .object({
    limit: z.number().int().min(0).optional(),
    types: strList.optional(),
    not_types: strList.optional(),
    senders: userIdList.optional(),
    not_senders: userIdList.optional(),
  })
  .passthrough();

const roomEventFilter = eventFilter
  .extend({
    rooms: roomIdList.optional(),
    not_rooms: roomIdList.optional(),
    lazy_load_members: z.boolean().optional(),
    include_redundant_members: z.boolean().optional(),
    contains_url: z.boolean().optional(),
    unread_thread_notifications: z.boolean().optional(),
  })
  .passthrough();

export const filterSchema = z
  .object({
    event_fields: strList.optional(),
    event_format: z.enum(['client', 'federation']).optional(),
    presence: eventFilter.optional(),
    account_data: eventFilter.optional(),
    room: z
      .object({
        rooms: roomIdList.optional(),
        not_rooms: roomIdList.optional(),
        include_leave: z.boolean().optional(),
        timeline: roomEventFilter.optional(),
        state: roomEventFilter.optional(),
        ephemeral: roomEventFilter.optional(),
        account_data: roomEventFilter.optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

export type FilterJson = z.infer<typeof filterSchema>;

export interface EventMatcher {
  types?: string[];
  notTypes?: string[];
  senders?: string[];
  notSenders?: string[];
}

export interface SyncFilter {
  raw: FilterJson;
  format: 'client' | 'federation';
  timelineLimit: number;
  timeline: EventMatcher;
  state: EventMatcher;
  lazyLoadMembers: boolean;
  includeRedundantMembers: boolean;
  includeLeave: boolean;
  unreadThreadNotifications: boolean;
  ephemeral: EventMatcher;
  /** room.ephemeral.types names io.hearth.delivered explicitly (never via a wildcard). */
  deliveredOptIn: boolean;
  accountData: EventMatcher;
  roomAccountData: EventMatcher;
  presence: EventMatcher;
  rooms?: string[];
  notRooms: string[];
}

export const DEFAULT_TIMELINE_LIMIT = 10;
/** Our ephemeral event for delivered receipts (sent -> delivered -> read). */
export const DELIVERED_EVENT_TYPE = 'io.hearth.delivered';
export const MAX_TIMELINE_LIMIT = 100;

/** Validates a filter definition; throws M_BAD_JSON naming the offending field. */
export function validateFilter(json: unknown): FilterJson {
  const r = filterSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MatrixError('M_BAD_JSON', `Invalid filter: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

export function compileFilter(json: FilterJson | undefined): SyncFilter {
  const f = json ?? {};
  const room = f.room ?? {};
  const tl = room.timeline ?? {};
  const st = room.state ?? {};
  return {
    raw: f,
    format: f.event_format ?? 'client',
    timelineLimit: Math.min(tl.limit ?? DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT),
    timeline: matcher(tl),
    state: matcher(st),
    lazyLoadMembers: st.lazy_load_members === true,
    includeRedundantMembers: st.include_redundant_members === true,
    includeLeave: room.include_leave === true,
    unreadThreadNotifications: tl.unread_thread_notifications === true,
    ephemeral: matcher(room.ephemeral ?? {}),
    deliveredOptIn: room.ephemeral?.types?.includes(DELIVERED_EVENT_TYPE) === true,
    accountData: matcher(f.account_data ?? {}),
    presence: matcher(f.presence ?? {}),
    roomAccountData: matcher(room.account_data ?? {}),
    rooms: room.rooms,
    notRooms: room.not_rooms ?? [],
  };
}

function matcher(f: { types?: string[]; not_types?: string[]; senders?: string[]; not_senders?: string[] }): EventMatcher {
  return { types: f.types, notTypes: f.not_types, senders: f.senders, notSenders: f.not_senders };
}

/** Glob match as filters define it: a trailing or embedded '*' matches any run of characters. */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  return globMatches(pattern, type);
}

/**
 * `*` matches any run of characters (the filter spec's only wildcard). A two-pointer match that
 * backtracks to the last star only: at most O(pattern × type) steps, never the exponential
 * backtracking a `.*`-per-star regex can hit on a client's pattern, and nothing to compile or cache
 * on this per-event path.
 */
function globMatches(pattern: string, type: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < type.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === type[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

export function eventMatches(m: EventMatcher, type: string, sender?: string): boolean {
  if (m.notTypes?.some((p) => typeMatches(p, type))) return false;
  if (m.types && !m.types.some((p) => typeMatches(p, type))) return false;
  if (sender !== undefined) {
    if (m.notSenders?.includes(sender)) return false;
    if (m.senders && !m.senders.includes(sender)) return false;
  }
  return true;
}

export function roomIncluded(f: SyncFilter, roomId: string): boolean {
  if (f.notRooms.includes(roomId)) return false;
  return !f.rooms || f.rooms.includes(roomId);
}

export function parseFilterParam(text: string): FilterJson {
  // The intake rules of a POST /filter body (null prototypes, no fractions, bounded depth): the
  // same filter must not be refused one way and taken the other.
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'filter is not valid JSON');
  }
  try {
    json = hardenParsed(text, json);
  } catch (err) {
    throw new MatrixError('M_BAD_JSON', `filter contains a value Matrix does not allow: ${(err as Error).message}`);
  }
  return validateFilter(json);
}

/** Resolves /sync's `filter` parameter: inline JSON, a stored filter ID, or none. */
export async function loadSyncFilter(
  getFilter: (userId: string, filterId: string) => Promise<string | null>,
  userId: string,
  value: string | undefined,
): Promise<SyncFilter> {
  if (value === undefined || value === '') return compileFilter(undefined);
  if (value.trimStart().startsWith('{')) return compileFilter(parseFilterParam(value));
  const text = await getFilter(userId, value);
  if (text === null) throw new MatrixError('M_NOT_FOUND', 'No such filter');
  // Stored by POST /filter after its intake checks.
  return compileFilter(validateFilter(parseTrustedJson(text)));
}

/** The longest inline filter text kept compiled. */
const INLINE_MAX_CHARS = 4_096;

/**
 * /sync's `filter` parameter resolved with stored filters cached compiled, per (user, filter ID).
 * Valid for ever: a stored filter never changes (no update or delete API). Only found filters
 * are cached (an unknown ID may be created later). Entries are shared by concurrent syncs, so
 * a SyncFilter is read-only once compiled. Bound: `max` entries, least recently used evicted.
 */
export class SyncFilterResolver {
  private readonly cache: LRUCache<string, SyncFilter>;
  hits = 0;
  misses = 0;

  constructor(
    private readonly getFilter: (userId: string, filterId: string) => Promise<string | null>,
    readonly max = 10_000,
    private readonly createFilter?: (userId: string, canonical: string) => Promise<string>,
    readonly inlineMax = 1_000,
  ) {
    this.cache = new LRUCache({ max });
    this.inline = new LRUCache({ max: inlineMax });
  }

  /** Validates and stores a filter exactly as received (its canonical JSON); returns its ID. */
  async create(userId: string, raw: JsonObject): Promise<string> {
    validateFilter(raw);
    if (!this.createFilter) throw new Error('SyncFilterResolver was built without a filter store');
    return this.createFilter(userId, canonicalJson(raw));
  }

  /** A stored filter as it was uploaded; 404 when the user has none of that ID. */
  async get(userId: string, filterId: string): Promise<JsonObject> {
    const text = await this.getFilter(userId, filterId);
    if (text === null) throw new MatrixError('M_NOT_FOUND', 'No such filter');
    return parseTrustedJson<JsonObject>(text);
  }

  async resolve(userId: string, value: string | undefined): Promise<SyncFilter> {
    if (value === undefined || value === '') return loadSyncFilter(this.getFilter, userId, value);
    if (value.trimStart().startsWith('{')) return this.inlineFilter(userId, value);
    const key = `${userId}\u0000${value}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const f = await loadSyncFilter(this.getFilter, userId, value);
    this.cache.set(key, f);
    return f;
  }

  /**
   * An inline JSON filter, compiled once per distinct text (clients send the same one on every
   * long-poll). Its meaning depends on the text alone, so entries are shared between users. Texts
   * over INLINE_MAX_CHARS are compiled each time, so the cache holds at most inlineMax × that many chars.
   */
  private async inlineFilter(userId: string, text: string): Promise<SyncFilter> {
    if (text.length > INLINE_MAX_CHARS) return loadSyncFilter(this.getFilter, userId, text);
    const hit = this.inline.get(text);
    if (hit) {
      this.inlineHits++;
      return hit;
    }
    this.inlineMisses++;
    const f = await loadSyncFilter(this.getFilter, userId, text);
    this.inline.set(text, f);
    return f;
  }

  private readonly inline: LRUCache<string, SyncFilter>;
  inlineHits = 0;
  inlineMisses = 0;

  /** Size, bound, hits and misses (for /metrics). */
  stats(): { name: string; size: number; bound: number; hits: number; misses: number } {
    return { name: 'sync_filters', size: this.cache.size, bound: this.max, hits: this.hits, misses: this.misses };
  }

  /** The same for inline JSON filters. */
  inlineStats(): { name: string; size: number; bound: number; hits: number; misses: number } {
    return { name: 'sync_inline_filters', size: this.inline.size, bound: this.inlineMax, hits: this.inlineHits, misses: this.inlineMisses };
  }
}

/** A matcher with `types: []` can match nothing: callers skip the work behind it. */
export function matchesNothing(m: EventMatcher): boolean {
  return m.types !== undefined && m.types.length === 0;
}
