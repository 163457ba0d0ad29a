// The in-memory read model of /sync. It is fed only by the store's completion hook
// (`onChanges`: change records in position order, as the watermark passes them), so no writer
// can forget to feed it, and a replication stream can feed it the same records later. Writes
// outside the stream (device one-time/fallback keys) report through `applyUnpositioned`, right
// after their COMMIT.
//
// What it holds (each bounded, see ReadModelBounds; sizes, bounds, hits and misses on /metrics):
// - change caches (position of each key's last change): rooms (events), room membership
//   events, per-user own membership, account data, to-device per device, receipts and delivered
//   markers per room, relations per target event, and the device-list stream as a whole;
// - each user's memberships with their positions, loaded from the store on first use and kept
//   current by the records (least recently used users evicted);
// - each room's current member events (lazy-loaded members), loaded on first use;
// - ring buffers of recent events per room (timelines.ts);
// - unread counters per (user, room) (unread.ts); ignore lists; device key counts and how far
//   each device's to-device messages were acknowledged;
// - each room's summary inputs (member counts, the earliest members as hero candidates, whether
//   it has a name or alias), dropped by any state change or redaction in the room;
// - each device's MSC2753 peeks (peeks.ts), dropped by the device's peek records.
// Entries loaded from the store are kept only when no record touching them arrived during the
// read, so a load can never overwrite a newer value.
//
// Rules:
// - The model is exactly as current as `store.currentPosition()`: both advance in the same
//   synchronous call, so a reader bounded by the watermark finds everything below it here.
// - Every answer is either certain or "unknown" (undefined / true for "may have changed"), and
//   unknown sends the caller to the store. Evictions only make more answers unknown.
// - The model starts cold at the store's position when it is created: tokens from before that
//   (e.g. from before a restart) are served from the store once, later ones from memory.
//
// Member events per room live in room-members.ts, the per-device caches in device-caches.ts.

import { LRUCache } from 'lru-cache';
import type { Pdu } from '../../protocol/types.js';
import type { ChangeRecord, UnpositionedChange } from '../../store/change-types.js';
import type { Membership, MembershipRecord, RoomStore, StoredEvent } from '../../store/types.js';
import type { EventMatcher } from '../filter.js';
import { StreamChangeCache } from './change-cache.js';
import { RoomTimelines } from './timelines.js';
import { UnreadCounters } from './unread.js';
import { DevicePeeks } from './peeks.js';
import type { PeekRecord } from '../../store/peek-types.js';
import { RoomMemberState } from './room-members.js';
import { DeviceCaches, deviceKey } from './device-caches.js';
import type { RoomUnreadCounts } from '../../store/chat-types.js';
import { parseTrustedJson } from '../../protocol/canonical-json.js';

export interface ReadModelBounds {
  /** Keys per change cache (rooms, users, devices). */
  changeCacheEntries: number;
  /** Users whose membership lists are kept. */
  membershipUsers: number;
  /** Rooms with a timeline ring buffer. */
  timelineRooms: number;
  /** Events per room ring buffer. */
  timelineEvents: number;
}

export const DEFAULT_READ_MODEL_BOUNDS: ReadModelBounds = {
  changeCacheEntries: 100_000,
  membershipUsers: 50_000,
  timelineRooms: 20_000,
  timelineEvents: 50,
};

const IGNORED_LIST = 'm.ignored_user_list';
const MEMBERSHIPS: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'leave', 'ban', 'knock']);

/**
 * What a room summary is made of, independent of the viewer: member counts, the joined and invited
 * members in join order (enough of them to leave 5 after removing the viewer) and whether the room
 * has a name or an alias (then no heroes are sent).
 */
export interface RoomSummaryBase {
  joined: number;
  invited: number;
  /** At most HERO_CANDIDATES user IDs, earliest member event first. */
  candidates: readonly string[];
  hasName: boolean;
}

/** Heroes are 5 members other than the viewer: one more covers the viewer being among them. */
export const HERO_CANDIDATES = 6;

export interface CacheStats {
  name: string;
  size: number;
  bound: number;
  hits: number;
  misses: number;
}

export class ReadModel {
  private pos: number;
  /** The last reset's position: records at or below it are not applied (see reset). */
  private resetAt = -Infinity;
  readonly rooms: StreamChangeCache;
  readonly roomMembers: StreamChangeCache;
  readonly ownMembership: StreamChangeCache;
  readonly accountData: StreamChangeCache;
  readonly toDevice: StreamChangeCache;
  readonly receipts: StreamChangeCache;
  readonly delivered: StreamChangeCache;
  /** One key: the device-list stream as a whole (who cares is decided by the tracker). */
  readonly deviceLists: StreamChangeCache;
  /** Event ID -> last relation to it (edits, threads, references): whose aggregations exist. */
  readonly relations: StreamChangeCache;
  /** Room -> last state event or redaction (what a room summary depends on). */
  readonly roomState: StreamChangeCache;
  /** roomId -> summary inputs as of the room's current state. Bound: timelineRooms. */
  private readonly summaries: LRUCache<string, RoomSummaryBase>;
  summaryHits = 0;
  summaryMisses = 0;
  /** Each room's current member events (lazy-loaded members). Bound: timelineRooms. */
  private readonly members: RoomMemberState;
  readonly timelines: RoomTimelines;
  readonly unread: UnreadCounters;
  /** userId -> roomId -> membership, least recently used dropped first. */
  private readonly memberships: LRUCache<string, Map<string, MembershipRecord>>;
  membershipHits = 0;
  membershipMisses = 0;
  /** Device key counts and to-device acknowledgements. Bound: changeCacheEntries. */
  private readonly devices: DeviceCaches;
  /** userId -> m.ignored_user_list; least recently used first. Bound: membershipUsers. */
  private readonly ignored: LRUCache<string, ReadonlySet<string>>;
  ignoredHits = 0;
  ignoredMisses = 0;
  /** device -> MSC2753 peeks. Bound: membershipUsers. */
  private readonly peeks: DevicePeeks;
  private readonly caches: StreamChangeCache[];

  constructor(
    private readonly store: Pick<RoomStore, 'getRoomsForUser'>,
    start: number,
    readonly bounds: ReadModelBounds = DEFAULT_READ_MODEL_BOUNDS,
  ) {
    this.pos = start;
    // lru-cache keeps each bound: a get refreshes an entry, a set past the bound drops the least
    // recently used one.
    this.memberships = new LRUCache({ max: bounds.membershipUsers });
    this.ignored = new LRUCache({ max: bounds.membershipUsers });
    const n = bounds.changeCacheEntries;
    this.rooms = new StreamChangeCache('rooms', start, n);
    this.roomMembers = new StreamChangeCache('room_members', start, n);
    this.ownMembership = new StreamChangeCache('user_memberships', start, n);
    this.accountData = new StreamChangeCache('account_data', start, n);
    this.toDevice = new StreamChangeCache('to_device', start, n);
    this.receipts = new StreamChangeCache('receipts', start, n);
    this.delivered = new StreamChangeCache('delivered', start, n);
    this.deviceLists = new StreamChangeCache('device_lists', start, 1);
    this.relations = new StreamChangeCache('relations', start, n);
    this.roomState = new StreamChangeCache('room_state', start, n);
    this.summaries = new LRUCache({ max: bounds.timelineRooms });
    this.members = new RoomMemberState(bounds.timelineRooms, () => this.pos, this.roomMembers);
    this.devices = new DeviceCaches(n, this.toDevice);
    this.peeks = new DevicePeeks(start, n, bounds.membershipUsers);
    this.caches = [this.rooms, this.roomMembers, this.ownMembership, this.accountData, this.toDevice, this.receipts, this.delivered, this.deviceLists, this.relations, this.roomState, this.peeks.changes];
    this.timelines = new RoomTimelines(bounds.timelineEvents, bounds.timelineRooms);
    this.unread = new UnreadCounters(n);
  }

  /** The position the model is current to (the store's watermark). */
  get position(): number {
    return this.pos;
  }

  /** The completion hook's listener. */
  apply(changes: ChangeRecord[], current: number): void {
    for (const c of changes) {
      // After a reset above the watermark, records below it may have gaps (lost on the way):
      // applying them would make a room's timeline look complete without the missing events.
      if (c.kind !== 'reset' && c.stream <= this.resetAt) continue;
      this.applyOne(c);
    }
    this.pos = current;
  }

  private applyOne(c: ChangeRecord): void {
    switch (c.kind) {
      case 'event': {
        // A new buffer covers back to the room's previous change: nothing of the room lies between.
        const previous = this.rooms.covers(c.stream - 1) ? this.rooms.lastChange(c.roomId) : c.stream - 1;
        this.timelines.apply(c, previous);
        this.rooms.record(c.roomId, c.stream);
        this.unread.applyEvent(c);
        if (c.relatesTo !== null) this.relations.record(c.relatesTo, c.stream);
        // A redacted name or alias event no longer names the room: redactions count as state.
        if (c.stateDelta.length > 0 || c.stateRemoved.length > 0 || c.redaction) {
          this.roomState.record(c.roomId, c.stream);
          this.summaries.delete(c.roomId);
        }
        // A redacted relation stops counting for its target: that target is already marked, and
        // marks are never removed, so it keeps going to the store.
        if (c.redaction) this.members.redact(c.roomId, c.redaction.targetEventId, c.redaction.redactedPduJson, c.eventId);
        for (const s of c.stateDelta) {
          if (s.type !== 'm.room.member') continue;
          this.roomMembers.record(c.roomId, c.stream);
          this.ownMembership.record(s.stateKey, c.stream);
          this.updateMembership(c.roomId, s.stateKey, s.eventId, c.eventId === s.eventId ? c.pduJson : null, c.stream);
          this.members.update(c, s.stateKey, s.eventId);
        }
        for (const s of c.stateRemoved) {
          if (s.type !== 'm.room.member') continue;
          // Resolution dropped the member key: as in the store, the user has no membership here.
          this.roomMembers.record(c.roomId, c.stream);
          this.ownMembership.record(s.stateKey, c.stream);
          this.memberships.get(s.stateKey)?.delete(c.roomId);
          this.members.remove(c.roomId, s.stateKey);
        }
        return;
      }
      case 'account_data':
        this.accountData.record(c.userId, c.stream);
        if (c.roomId === '' && c.dataType === IGNORED_LIST) this.ignored.delete(c.userId);
        return;
      case 'receipt':
        this.receipts.record(c.roomId, c.stream);
        this.unread.drop(c.userId, c.roomId);
        return;
      case 'delivered':
        this.delivered.record(c.roomId, c.stream);
        return;
      case 'to_device':
        for (const t of c.targets) this.toDevice.record(deviceKey(t.userId, t.deviceId), c.stream);
        return;
      case 'device_list': {
        this.deviceLists.record('*', c.stream);
        const users = new Set(c.userIds);
        this.devices.dropUsers(users);
        this.peeks.dropUsers(users);
        return;
      }
      case 'peek':
        this.peeks.apply(c.userId, c.deviceId, c.stream);
        return;
      case 'reset':
        this.reset(c.stream);
        return;
    }
  }

  /** The store's listener for changes outside the stream. */
  applyUnpositioned(changes: UnpositionedChange[]): void {
    for (const c of changes) {
      if (c.kind === 'room_purged') {
        // Purged events must not be served from memory; the next read goes to the store.
        this.timelines.drop(c.roomId);
        this.members.drop(c.roomId);
        this.summaries.delete(c.roomId);
        continue;
      }
      if (c.kind === 'event_pruned') {
        // A message event (never state): only timelines hold its copy.
        this.timelines.drop(c.roomId);
        continue;
      }
      this.devices.dropDevice(c.userId, c.deviceId);
    }
  }

  /** One-time key counts and unused fallback key types of a device, from memory once loaded. */
  deviceKeyCounts(
    userId: string,
    deviceId: string,
    load: () => Promise<{ otk: Record<string, number>; fallback: string[] }>,
  ): Promise<{ otk: Record<string, number>; fallback: string[] }> {
    return this.devices.deviceKeyCounts(userId, deviceId, load);
  }

  private updateMembership(roomId: string, userId: string, eventId: string, pduJson: string | null, stream: number): void {
    const rooms = this.memberships.get(userId);
    if (!rooms) return;
    const membership = pduJson === null ? undefined : parseTrustedJson<Pdu>(pduJson).content.membership;
    if (typeof membership !== 'string' || !MEMBERSHIPS.has(membership)) {
      // State resolution put back another member event: its membership is in the store.
      this.memberships.delete(userId);
      return;
    }
    rooms.set(roomId, { roomId, userId, membership: membership as Membership, eventId, stream });
  }

  /**
   * Member state of `userIds` as of position `at` (as RoomStore.getStateHistory would give it):
   * a user's current member event answers when it is at or below `at`. Users with none are
   * unknown too: a member key dropped by state resolution leaves no membership, yet the user had
   * member state before the drop (senders of accepted events always have one otherwise, so this
   * costs no reads in practice). `unknown` lists the users whose value at `at` the store must give. Loads the room's
   * member list from the store on first use (memberships mirror the member state).
   */
  membersAt(
    roomId: string,
    userIds: string[],
    at: number,
    load: (roomId: string) => Promise<MembershipRecord[]>,
  ): Promise<{ entries: Array<{ type: string; stateKey: string; eventId: string }>; events: Map<string, StoredEvent>; unknown: string[] }> {
    return this.members.membersAt(roomId, userIds, at, load);
  }

  /**
   * Keeps member events read from the store (`readAt`: the model position before the read) for
   * later syncs, when they are still the room's current ones and nothing in the room (a
   * redaction, say) has been applied since the read.
   */
  noteMemberEvents(roomId: string, events: Iterable<StoredEvent>, readAt: number): void {
    if (this.rooms.changedSince(roomId, readAt)) return;
    this.members.note(roomId, events);
  }

  /**
   * True when none of the events can have bundled aggregations: each was persisted after the
   * relations cache's horizon and nothing related to it since. Relies on a relation being
   * persisted after its target (true for locally sent events: a target's ID is a hash of it).
   */
  withoutRelations(events: StoredEvent[]): boolean {
    const r = this.relations;
    for (const e of events) if (e.stream <= r.earliest || r.changedSince(e.eventId, e.stream - 1)) return false;
    return true;
  }

  /**
   * Drops everything: nothing at or below `pos` is known from memory any more. `pos` may be
   * above the model's position: until the model passes it, every answer below it comes from the
   * store (change caches do not cover it, loads are not kept) and records at or below it are
   * ignored.
   */
  reset(pos: number): void {
    this.resetAt = Math.max(this.resetAt, pos);
    for (const c of this.caches) c.reset(pos);
    this.timelines.clear();
    this.memberships.clear();
    this.members.clear();
    this.summaries.clear();
    this.ignored.clear();
    this.unread.clear();
    this.devices.clear();
    this.peeks.clear();
  }

  /** Unread counts of (user, room) as of `upTo` from the counters, or undefined. */
  unreadCounts(userId: string, roomId: string, upTo: number): RoomUnreadCounts | undefined {
    return this.unread.get(userId, roomId, upTo);
  }

  /**
   * Starts counters from a store answer as of `upTo`, if nothing that could change them (an
   * event or receipt in the room, a membership change of the user) happened since.
   */
  offerUnread(userId: string, roomId: string, counts: RoomUnreadCounts, upTo: number): void {
    if (this.rooms.changedSince(roomId, upTo) || this.receipts.changedSince(roomId, upTo) || this.ownMembership.changedSince(userId, upTo)) return;
    this.unread.offer(userId, roomId, counts, upTo);
  }

  /**
   * Whether change caches can answer for changes after `since`. A sync it cannot serve (its
   * token is older than what the rooms cache remembers) counts as a miss of that cache.
   */
  covers(since: number): boolean {
    if (since >= this.rooms.earliest) return true;
    this.rooms.misses++;
    return false;
  }

  /** The user's current memberships (as the store's getRoomsForUser), from memory when loaded. */
  async roomsForUser(userId: string): Promise<MembershipRecord[]> {
    const cached = this.memberships.get(userId);
    if (cached) {
      this.membershipHits++;
      return [...cached.values()].sort((a, b) => (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
    }
    this.membershipMisses++;
    const loadedAt = this.pos;
    const rows = await this.store.getRoomsForUser(userId);
    // Kept only if no membership of the user changed while the rows were being read.
    if (!this.ownMembership.changedSince(userId, loadedAt) && !this.memberships.has(userId)) {
      this.memberships.set(userId, new Map(rows.map((m) => [m.roomId, { ...m }])));
    }
    return rows;
  }

  /**
   * A room's summary inputs, from memory once loaded. Loaded from the room's current state like
   * the store-only path, and kept only if no state change of the room was applied during the read.
   */
  async roomSummary(roomId: string, load: () => Promise<RoomSummaryBase>): Promise<RoomSummaryBase> {
    const cached = this.summaries.get(roomId);
    if (cached) {
      this.summaryHits++;
      return cached;
    }
    this.summaryMisses++;
    const loadedAt = this.pos;
    const base = await load();
    if (!this.roomState.changedSince(roomId, loadedAt) && !this.summaries.has(roomId)) this.summaries.set(roomId, base);
    return base;
  }

  /** The user's ignore list, from memory once loaded; dropped whenever the user changes it. */
  async ignoredUsers(userId: string, load: () => Promise<Set<string>>): Promise<ReadonlySet<string>> {
    const cached = this.ignored.get(userId);
    if (cached) {
      this.ignoredHits++;
      return cached;
    }
    this.ignoredMisses++;
    const loadedAt = this.pos;
    const set = await load();
    // Kept only if none of the user's account data changed while it was being read.
    if (!this.accountData.changedSince(userId, loadedAt) && !this.ignored.has(userId)) {
      this.ignored.set(userId, set);
    }
    return set;
  }

  /** The device's MSC2753 peeks, from memory once loaded. */
  devicePeeks(userId: string, deviceId: string, load: () => Promise<PeekRecord[]>): Promise<PeekRecord[]> {
    return this.peeks.get(userId, deviceId, this.pos, load);
  }

  /** Joined rooms from memory, or undefined when the user's memberships are not loaded. */
  joinedRooms(userId: string): string[] | undefined {
    const cached = this.memberships.get(userId);
    if (!cached) return undefined;
    const out: string[] = [];
    for (const m of cached.values()) if (m.membership === 'join') out.push(m.roomId);
    return out;
  }

  /** Rooms among `roomIds` whose `cache` may have changed after `since`. */
  changedRooms(cache: StreamChangeCache, roomIds: readonly string[], since: number): string[] {
    return roomIds.filter((r) => cache.changedSince(r, since));
  }

  /**
   * Whether the user's /sync device_lists may be non-empty for (since, now]: a key change
   * anywhere, a membership change of the user, or a membership change in one of their rooms.
   */
  deviceListsMayChange(userId: string, since: number): boolean {
    if (this.deviceLists.changedSince('*', since) || this.ownMembership.changedSince(userId, since)) return true;
    const joined = this.joinedRooms(userId);
    if (!joined) return true;
    return joined.some((r) => this.roomMembers.changedSince(r, since));
  }

  /**
   * Whether acknowledging up to `upTo` may delete anything: false once the device acknowledged
   * up to some position A (everything at or below A is gone) and no message for it was queued
   * after A. Positions at or below an acknowledged token were all complete when it was issued,
   * so nothing can later appear below A.
   */
  ackMayDelete(userId: string, deviceId: string, upTo: number): boolean {
    return this.devices.ackMayDelete(userId, deviceId, upTo);
  }

  /** The device's messages up to `upTo` were deleted. */
  acknowledged(userId: string, deviceId: string, upTo: number): void {
    this.devices.acknowledged(userId, deviceId, upTo);
  }

  toDeviceChanged(userId: string, deviceId: string, since: number): boolean {
    return this.toDevice.changedSince(deviceKey(userId, deviceId), since);
  }

  /** Timeline slice from the ring buffer, or undefined when the store must answer. */
  timeline(roomId: string, from: number | undefined, upTo: number, limit: number, filter: EventMatcher): { events: StoredEvent[]; more: boolean } | undefined {
    return this.timelines.read(roomId, from, upTo, limit, filter);
  }

  stats(): CacheStats[] {
    const out: CacheStats[] = this.caches.map((c) => ({ name: c.name, size: c.size, bound: c.maxEntries, hits: c.hits, misses: c.misses }));
    out.push({ name: 'memberships', size: this.memberships.size, bound: this.bounds.membershipUsers, hits: this.membershipHits, misses: this.membershipMisses });
    out.push({ name: 'device_key_counts', size: this.devices.keyCountsSize, bound: this.bounds.changeCacheEntries, hits: this.devices.keyHits, misses: this.devices.keyMisses });
    out.push({ name: 'to_device_acks', size: this.devices.ackedSize, bound: this.bounds.changeCacheEntries, hits: this.devices.ackHits, misses: this.devices.ackMisses });
    out.push({ name: 'ignored_users', size: this.ignored.size, bound: this.bounds.membershipUsers, hits: this.ignoredHits, misses: this.ignoredMisses });
    out.push({ name: 'room_member_state', size: this.members.size, bound: this.bounds.timelineRooms, hits: this.members.hits, misses: this.members.misses });
    out.push({ name: 'room_summaries', size: this.summaries.size, bound: this.bounds.timelineRooms, hits: this.summaryHits, misses: this.summaryMisses });
    out.push({ name: 'unread_counters', size: this.unread.size, bound: this.unread.maxEntries, hits: this.unread.hits, misses: this.unread.misses });
    out.push({ name: 'device_peeks', size: this.peeks.size, bound: this.peeks.bound, hits: this.peeks.hits, misses: this.peeks.misses });
    out.push({ name: 'timelines', size: this.timelines.size, bound: this.bounds.timelineRooms, hits: this.timelines.hits, misses: this.timelines.misses });
    return out;
  }
}
