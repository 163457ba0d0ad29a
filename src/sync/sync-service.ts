// Builds /sync responses. This is the one response builder: the long-poll endpoint and the
// WebSocket stream (later) both call `sync()`/`waitForChanges()` and only differ in transport.
// It decides which rooms a response shows and from where; what one room's section holds is
// room-sections.ts's business.
//
// Every response covers the stream range (since, upTo] where upTo = store.currentPosition() read
// once at the start, so nothing still being written can be skipped: it lands above upTo and is
// picked up by the next sync from the returned next_batch.
//
// With a read model (read-model/read-model.ts), an incremental sync whose token the model covers
// is a delta: rooms and streams whose change caches show nothing after the token are skipped
// without a read, memberships come from memory and timelines from the rooms' ring buffers. Every
// question the model cannot answer for sure falls back to the same store read as without it, so
// both paths return the same response (spec/sync/read-model-property.spec.ts checks that).
//
// A request whose token is the head of both streams parks without a build: the range is empty,
// so the build could only be an empty answer. Its waiter watches the rooms that build would have
// (joined rooms and active peeks, by the same rules); a timeout builds the empty answer then.

import type { JsonObject } from '../protocol/types.js';
import type { EventFormatter } from '../room/client-event.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { MembershipRecord, Store, ToDeviceMessage } from '../store/types.js';
import { DELIVERED_EVENT_TYPE, eventMatches, matchesNothing, roomIncluded, type SyncFilter } from './filter.js';
import { parseToken, serializeToken, type StreamToken } from './token.js';
import type { SyncWaiters, Wants } from './waiters.js';
import { ParkedSync } from './parked-sync.js';
import type { ChangeHints, SyncRange, SyncSources } from './sources.js';
import type { ReadModel } from './read-model/read-model.js';
import { RoomStateSections } from './room-state.js';
import { dict } from '../protocol/canonical-json.js';
import { MemberHistoryReader } from './member-history.js';
import { emptyJoined, isEmpty, joinsIn, sectionEmpty } from './response-shape.js';
import { RoomSections } from './room-sections.js';
import { peekSections } from './peek-sections.js';

/** How often a request holding a token from ahead checks whether this worker has caught up. */
const CATCH_UP_POLL_MS = 10;

export interface SyncRequest {
  userId: string;
  deviceId: string;
  since?: string;
  filter: SyncFilter;
  timeoutMs: number;
  fullState: boolean;
  signal?: AbortSignal;
  /** A cheaper cancel flag than `signal` (the socket's session): once aborted, nothing parks. */
  gone?: { readonly aborted: boolean };
  /**
   * Whether `since` acknowledges what was sent before it (long-poll: the client can only send
   * a token it received). The socket sets false and acknowledges on the client's ack frames.
   */
  acknowledgeSince?: boolean;
  /** Opt-in to io.hearth.delivered ephemeral events. */
  delivered?: boolean;
  /** Called when the request first parks waiting for changes (it stops counting as a catch-up); then cleared. */
  onPark?: () => void;
  /**
   * The socket's loop: remember which rooms a non-empty answer's build watched, so the next
   * request, sent from that answer (`previous`), parks on them without reading them again.
   */
  recordWatched?: boolean;
  /** The answer whose next_batch is `since` (see recordWatched); cleared once read, so a parked request holds no answer. */
  previous?: SyncResponse;
}

export type SyncResponse = JsonObject & { next_batch: string };

/** Runs the request's onPark once and forgets it: a parked request keeps no callback (nor what it holds). */
function parking(req: SyncRequest): void {
  const onPark = req.onPark;
  if (onPark === undefined) return;
  req.onPark = undefined;
  onPark();
}

export class SyncService {
  constructor(
    private readonly store: Store,
    private readonly waiters: SyncWaiters,
    private readonly formatter: EventFormatter,
    private readonly visibility: VisibilityChecker,
    private readonly sources: SyncSources,
    private readonly model?: ReadModel,
  ) {
    this.state = new RoomStateSections(store, model);
    this.members = new MemberHistoryReader(store.rooms);
    this.sections = new RoomSections(store, formatter, visibility, this.state, model);
  }

  private readonly state: RoomStateSections;
  private readonly members: MemberHistoryReader;
  private readonly sections: RoomSections;
  /** Rooms watched by the build of an answer (recordWatched), for as long as the answer lives. */
  private readonly watched = new WeakMap<SyncResponse, { upTo: StreamToken; roomIds: readonly string[] }>();

  /** The answer as one promise (parks inside it when there is nothing yet); `req.signal` cancels. */
  async sync(req: SyncRequest): Promise<SyncResponse> {
    const out = await this.syncOrPark(req);
    return out instanceof ParkedSync ? out.promise(req.signal) : out;
  }

  /**
   * The answer, or a ParkedSync that will give it (see parked-sync.ts): a transport that can
   * attach a sink and return holds no await chain while the client waits. Whoever gets one
   * must attach a sink, and cancel it when the client goes away.
   */
  async syncOrPark(req: SyncRequest): Promise<SyncResponse | ParkedSync> {
    let since = req.since !== undefined ? parseToken(req.since, 'since') : undefined;
    // An ephemeral position from before a restart may be ahead of ours: resend ephemeral state.
    if (since && since.ephemeral > this.sources.ephemeralPosition()) since = { ...since, ephemeral: 0 };
    const deadline = Date.now() + req.timeoutMs;
    // A token from a worker whose feed is ahead of ours names positions we cannot read yet.
    // Answering from our lower position would hand the client a next_batch below its own and
    // repeat what it has; so wait (within the request's timeout) for our position to catch up.
    if (since && since.stream > this.store.currentPosition()) await this.catchUpTo(since.stream, deadline, req);
    if (req.delivered) this.sources.onDeliveredOptIn?.(req.userId);
    if (since && req.acknowledgeSince !== false) await this.acknowledge(req.userId, req.deviceId, since.stream);
    if (req.acknowledgeSince !== false && req.filter.lazyLoadMembers) this.state.ledger.begin(req, since?.stream);
    const previous = req.previous;
    req.previous = undefined;
    if (!since) return (await this.buildFrom(req, since)).res;
    return this.buildOrPark(req, since, deadline, undefined, previous && this.watchedBy(previous, since));
  }

  /**
   * The rooms the build of `previous` watched, if it was built up to exactly `since`: parked at
   * the head from there, nothing was written since that build, so the rooms are the same.
   */
  private watchedBy(previous: SyncResponse, since: StreamToken): readonly string[] | undefined {
    const w = this.watched.get(previous);
    return w && w.upTo.stream === since.stream && w.upTo.ephemeral === since.ephemeral ? w.roomIds : undefined;
  }

  /**
   * One response from `since`; when it is empty and time remains, parks (see parked-sync.ts)
   * and returns the parked sync instead, which answers later. Also how a woken parked sync
   * rebuilds (`parked` set: the same object parks again).
   */
  async buildOrPark(req: SyncRequest, since: StreamToken, deadline: number, parked?: ParkedSync, watchedAtSince?: readonly string[]): Promise<SyncResponse | ParkedSync> {
    for (let first = true; ; first = false) {
      // Nothing has been written since the token (a reader re-parking right after its last
      // response, the usual case): the range (since, now] is empty on every stream, so its
      // build would be an empty answer. Park on the rooms the build would have watched; a
      // timeout builds the empty answer then.
      if (!req.fullState && this.atHead(since) && deadline > Date.now() && !req.signal?.aborted && !req.gone?.aborted && !parked?.cancelled) {
        parking(req);
        const p = parked ?? new ParkedSync(this, req, deadline);
        const watched = first && watchedAtSince !== undefined ? watchedAtSince : await this.watchedRoomIds(req, since.stream);
        const waiting = this.waiters.park(p, req.userId, watched, since, deadline - Date.now(), wantsOf(req.filter));
        // Already something above the token: build it.
        if (waiting === true) continue;
        if (waiting === false) return this.buildAnswer(req, since);
        p.parkedAtHead(waiting, since);
        return p;
      }
      const { res, joinedIds, upTo } = await this.buildFrom(req, since);
      const remaining = deadline - Date.now();
      if (req.fullState || !this.isEmpty(res) || remaining <= 0 || req.signal?.aborted || req.gone?.aborted || parked?.cancelled) {
        if (req.recordWatched && !req.fullState) this.watched.set(res, { upTo, roomIds: joinedIds });
        return res;
      }
      parking(req);
      const p = parked ?? new ParkedSync(this, req, deadline);
      const waiting = this.waiters.park(p, req.userId, joinedIds, upTo, remaining, wantsOf(req.filter));
      if (waiting === false) return res;
      // Already something above upTo: build again from there, so the next read is smaller.
      if (waiting === true) {
        since = upTo;
        continue;
      }
      // Parked, this object is what a waiting client costs: the empty answer as shared JSON
      // text and nothing of the build (hints, ranges) but the rooms the waiter watches.
      p.parkedAt(waiting, res, upTo);
      return p;
    }
  }

  /** The answer for the range from `since` (a parked sync's empty answer, built at its timeout). */
  async buildAnswer(req: SyncRequest, since: StreamToken): Promise<SyncResponse> {
    return (await this.buildFrom(req, since)).res;
  }

  /** Whether `since` is the current position of both streams: nothing after it to answer. */
  private atHead(since: StreamToken): boolean {
    return since.stream === this.store.currentPosition() && since.ephemeral === this.sources.ephemeralPosition();
  }

  /**
   * The rooms a build of the empty range at `upTo` watches: those it shows the user joined to,
   * and the device's active peeks (their sections are not built: nothing lies in the range).
   */
  private async watchedRoomIds(req: SyncRequest, upTo: number): Promise<string[]> {
    const memberships = (this.model ? await this.model.roomsForUser(req.userId) : await this.store.rooms.getRoomsForUser(req.userId)).filter((m) =>
      roomIncluded(req.filter, m.roomId),
    );
    const current = await Promise.all(memberships.map((m) => this.members.membershipAsOf(m, upTo)));
    const joined = current.flatMap((m) => (m?.membership === 'join' ? [m.roomId] : []));
    if (!this.sources.peeks) return joined;
    const peeked = await peekSections({
      peeks: await this.sources.peeks.forDevice(req.userId, req.deviceId),
      membership: (roomId) => current.find((m) => m?.roomId === roomId) ?? undefined,
      from: upTo,
      upTo,
      fullState: false,
      included: (roomId) => roomIncluded(req.filter, roomId),
      lastEvents: async (ids) => (this.model?.covers(upTo) ? this.model.rooms.changesSince(ids, upTo) : undefined) ?? (await this.store.rooms.getRoomsMaxStream(ids)),
      section: (roomId, sectionFrom, end, full) => this.sections.joined(req, roomId, sectionFrom, end, full, undefined),
    });
    return [...joined, ...peeked.watched];
  }

  /** One response from `since` up to the current position; its locals die with this frame. */
  private async buildFrom(req: SyncRequest, since: StreamToken | undefined): Promise<{ res: SyncResponse; joinedIds: string[]; upTo: StreamToken }> {
    const upTo: StreamToken = { stream: this.store.currentPosition(), ephemeral: this.sources.ephemeralPosition() };
    const hints = since ? this.hints(req, since.stream) : undefined;
    let toDevice: ToDeviceMessage[] = [];
    const device = this.sources.device;
    if (device) ({ upTo: upTo.stream, messages: toDevice } = await device.bound(req.userId, req.deviceId, since?.stream, upTo.stream, hints));
    const { res, joinedIds } = await this.build(req, since, upTo, toDevice, hints);
    return { res, joinedIds, upTo };
  }

  /** Waits until currentPosition() reaches `stream`, the deadline passes or the request ends. */
  private async catchUpTo(stream: number, deadline: number, req: SyncRequest): Promise<void> {
    while (this.store.currentPosition() < stream && Date.now() < deadline && !req.signal?.aborted && !req.gone?.aborted) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(CATCH_UP_POLL_MS, Math.max(1, deadline - Date.now()))));
    }
  }

  /**
   * A device has received everything up to `stream`: its to-device messages up to there are
   * deleted and, for delivered receipts, the events up to there count as delivered.
   */
  async acknowledge(userId: string, deviceId: string, stream: number): Promise<void> {
    await Promise.all([
      this.sources.device?.acknowledge(userId, deviceId, stream),
      this.sources.onAcknowledged?.(userId, stream),
    ]);
  }

  /** What the read model can tell the sources about changes after `from`, if it covers it. */
  private hints(req: SyncRequest, from: number): ChangeHints | undefined {
    const m = this.model;
    if (!m || !m.covers(from)) return undefined;
    return {
      receiptRooms: (roomIds) => m.changedRooms(m.receipts, roomIds, from),
      deliveredRooms: (roomIds) => m.changedRooms(m.delivered, roomIds, from),
      toDeviceChanged: () => m.toDeviceChanged(req.userId, req.deviceId, from),
      deviceListsMayChange: () => m.deviceListsMayChange(req.userId, from),
    };
  }

  /** Readers parked waiting for changes (long-polls and sockets). */
  waiterCount(): number {
    return this.waiters.size;
  }

  /** Sizes, bounds, hits and misses of the read model's caches (empty without one). */
  modelStats(): ReturnType<ReadModel['stats']> {
    return this.model?.stats() ?? [];
  }

  /** The same service without the read model: every sync rebuilt from the store (checks, tests). */
  withoutModel(): SyncService {
    const sources = { ...this.sources, unread: this.sources.unread?.withoutCache?.() ?? this.sources.unread, device: this.sources.device?.withoutCache(), peeks: this.sources.peeks?.withoutCache() };
    return new SyncService(this.store, this.waiters, this.formatter, this.visibility.withoutCache(), sources);
  }

  /**
   * Whether anything waits for the client to acknowledge this answer: its to-device messages
   * (deleted on acknowledgement) or delivered receipts (recorded on it, when anyone opted in).
   * Acknowledgements are positions, so a later one covers an answer that was not acknowledged.
   */
  ackWanted(res: SyncResponse): boolean {
    const toDevice = (res.to_device as { events?: unknown[] } | undefined)?.events;
    if (toDevice !== undefined && toDevice.length > 0) return true;
    return this.sources.onAcknowledged !== undefined && (this.sources.acknowledgementsWanted?.() ?? true);
  }

  /** True when a response carries nothing (only next_batch moved). */
  isEmpty(res: SyncResponse): boolean {
    return isEmpty(res);
  }

  private async build(
    req: SyncRequest,
    since: StreamToken | undefined,
    upToToken: StreamToken,
    toDevice: ToDeviceMessage[],
    hints: ChangeHints | undefined,
  ): Promise<{ res: SyncResponse; joinedIds: string[] }> {
    const upTo = upToToken.stream;
    const range: SyncRange = { userId: req.userId, deviceId: req.deviceId, since, upTo: upToToken, delivered: req.delivered === true, hints };
    const model = hints ? this.model : undefined;
    const from = since?.stream ?? 0;
    const f = req.filter;
    const join: JsonObject = dict();
    const invite: JsonObject = dict();
    const leave: JsonObject = dict();
    const knock: JsonObject = dict();

    const memberships = (this.model ? await this.model.roomsForUser(req.userId) : await this.store.rooms.getRoomsForUser(req.userId)).filter((m) =>
      roomIncluded(f, m.roomId),
    );
    const changed = since
      ? model && !model.ownMembership.changedSince(req.userId, from)
        ? new Map<string, MembershipRecord>()
        : new Map((await this.store.rooms.getMembershipChanges(req.userId, from, upTo)).map((m) => [m.roomId, m]))
      : undefined;

    // Memberships written after upTo are not part of this response; use their state as of upTo.
    const current = await Promise.all(memberships.map((m) => this.members.membershipAsOf(m, upTo)));

    const joinedRooms = current.filter((m): m is MembershipRecord => m?.membership === 'join');
    const joinedRoomIds = joinedRooms.map((m) => m.roomId);
    const maxStreams = since
      ? (model?.rooms.changesSince(joinedRoomIds, from) ?? (await this.store.rooms.getRoomsMaxStream(joinedRoomIds)))
      : new Map<string, number>();

    const ephemeral = await this.collectEphemeral(range, joinedRoomIds, req.filter);
    const accountData =
      model && !model.accountData.changedSince(req.userId, from)
        ? { global: [], rooms: new Map<string, JsonObject[]>() }
        : await this.accountData(req, from, upTo, since === undefined);

    /** Incremental joined sections, dropped below when nothing in them reaches the client. */
    const incremental = new Set<string>();
    /** Users the syncing user newly shares a room with: their presence is sent even if unchanged. */
    const newlyShared = new Set<string>();
    for (const m of current) {
      if (!m) continue;
      if (m.membership === 'join') {
        const hist = changed?.has(m.roomId) ? await this.members.of(m.roomId, req.userId) : undefined;
        const newlyJoined = !!hist && (await this.members.wasNotJoined(hist, from));
        // A rejoin: the client may still hold the room's timeline from the earlier stint.
        const rejoined = newlyJoined && (await this.members.isRejoin(hist, m.stream));
        if (since && newlyJoined) for (const o of await this.store.rooms.getRoomMembers(m.roomId, ['join'])) newlyShared.add(o.userId);
        const quiet = (maxStreams.get(m.roomId) ?? 0) <= from;
        const hasExtras = ephemeral.has(m.roomId) || accountData.rooms.has(m.roomId);
        if (since && !newlyJoined && !req.fullState && quiet && !hasExtras) continue;
        const section =
          since && !newlyJoined && !req.fullState && quiet
            ? emptyJoined()
            : await this.sections.joined(req, m.roomId, since && !newlyJoined ? from : undefined, upTo, req.fullState || newlyJoined, m.stream, rejoined);
        if (section) join[m.roomId] = section;
        if (section && since && !newlyJoined && !req.fullState) {
          incremental.add(m.roomId);
          for (const u of joinsIn(section)) newlyShared.add(u);
        }
      } else if (m.membership === 'invite') {
        if (since && !changed?.has(m.roomId)) continue;
        if (await this.invitedByIgnored(req.userId, m)) continue;
        invite[m.roomId] = await this.state.invitedRoom(m);
      } else if (m.membership === 'knock') {
        if (since && !changed?.has(m.roomId)) continue;
        // The same stripped state an invite shows, the knock itself included.
        knock[m.roomId] = { knock_state: (await this.state.invitedRoom(m)).invite_state };
      } else if (m.membership === 'leave' || m.membership === 'ban') {
        if (since ? !changed?.has(m.roomId) : !f.includeLeave) continue;
        if (await this.store.rooms.isRoomForgotten(req.userId, m.roomId)) continue;
        // Rejected invites and rooms we were never joined to have no timeline worth showing.
        // A room joined and left within the range is new to the client: its full section.
        let joinedAndLeft = false;
        if (since !== undefined) {
          const hist = await this.members.of(m.roomId, req.userId);
          joinedAndLeft = (await this.members.wasNotJoined(hist, from)) && (await this.members.joinedWithin(hist, from, m.stream));
        }
        const section = await this.sections.left(req, m, since && !joinedAndLeft ? from : undefined);
        if (section) leave[m.roomId] = section;
      }
    }

    for (const [roomId, section] of Object.entries(join) as Array<[string, JsonObject]>) {
      (section.account_data as JsonObject).events = accountData.rooms.get(roomId) ?? [];
      (section.ephemeral as JsonObject).events = ephemeral.get(roomId) ?? [];
    }
    await this.addUnreadCounts(req, join, upTo);
    for (const roomId of incremental) if (sectionEmpty(join[roomId] as JsonObject)) delete join[roomId];
    newlyShared.delete(req.userId);

    // MSC2753: the device's peeked rooms, built like joined ones (peek-sections.ts).
    const peeked = this.sources.peeks
      ? await peekSections({
          peeks: await this.sources.peeks.forDevice(req.userId, req.deviceId),
          membership: (roomId) => current.find((m) => m?.roomId === roomId) ?? undefined,
          from: since ? from : undefined,
          upTo,
          fullState: req.fullState,
          included: (roomId) => roomIncluded(f, roomId),
          lastEvents: async (ids) => model?.rooms.changesSince(ids, from) ?? (await this.store.rooms.getRoomsMaxStream(ids)),
          section: (roomId, sectionFrom, end, full) => this.sections.joined(req, roomId, sectionFrom, end, full, undefined),
        })
      : undefined;
    for (const [roomId, section] of peeked?.left ?? []) if (!(roomId in leave) && !(roomId in join)) leave[roomId] = section;

    const out: SyncResponse = {
      next_batch: serializeToken(upToToken),
      rooms: { join, invite, leave, knock, ...(peeked ? { peek: peeked.peek } : {}) },
      account_data: { events: accountData.global },
      presence: {
        events:
          this.sources.presence && !matchesNothing(req.filter.presence)
            ? (await this.sources.presence.collect(range, joinedRoomIds, [...newlyShared])).filter((e) => eventMatches(req.filter.presence, String(e.type), String(e.sender)))
            : [],
      },
      to_device: { events: [] },
      device_lists: { changed: [], left: [] },
      device_one_time_keys_count: {},
      device_unused_fallback_key_types: [],
      ...(this.sources.device ? await this.sources.device.collect(range, toDevice) : {}),
    };
    return { res: out, joinedIds: peeked ? [...joinedRoomIds, ...peeked.watched] : joinedRoomIds };
  }

  private async collectEphemeral(range: SyncRange, roomIds: string[], f: SyncFilter): Promise<Map<string, JsonObject[]>> {
    const merged = new Map<string, JsonObject[]>();
    const parts = await Promise.all(this.sources.ephemeral.map((s) => s.collect(range, roomIds)));
    for (const part of parts) {
      for (const [roomId, events] of part) {
        // Delivered receipts only reach clients that asked for them by name.
        const kept = events.filter((e) => (e.type === DELIVERED_EVENT_TYPE ? range.delivered : eventMatches(f.ephemeral, String(e.type))));
        if (kept.length) merged.set(roomId, [...(merged.get(roomId) ?? []), ...kept]);
      }
    }
    return merged;
  }

  private async addUnreadCounts(req: SyncRequest, join: JsonObject, upTo: number): Promise<void> {
    const roomIds = Object.keys(join);
    if (!this.sources.unread || roomIds.length === 0) return;
    const counts = await this.sources.unread.counts(req.userId, roomIds, upTo);
    for (const roomId of roomIds) {
      const c = counts.get(roomId);
      const section = join[roomId] as JsonObject;
      if (req.filter.unreadThreadNotifications) {
        if (c) section.unread_notifications = c.main;
        section.unread_thread_notifications = c?.threads ?? {};
      } else if (c) {
        // Clients that don't ask for thread counts get one count for the whole room.
        const total = { notification_count: Number(c.main.notification_count ?? 0), highlight_count: Number(c.main.highlight_count ?? 0) };
        for (const t of Object.values(c.threads)) {
          total.notification_count += Number(t.notification_count ?? 0);
          total.highlight_count += Number(t.highlight_count ?? 0);
        }
        section.unread_notifications = total;
      }
    }
  }

  private async invitedByIgnored(userId: string, m: MembershipRecord): Promise<boolean> {
    const ignored = await this.visibility.ignoredUsers(userId);
    if (ignored.size === 0) return false;
    const ev = await this.store.rooms.getEvent(m.eventId);
    return !!ev && ignored.has(ev.pdu.sender);
  }

  private async accountData(
    req: SyncRequest,
    from: number,
    upTo: number,
    initial: boolean,
  ): Promise<{ global: JsonObject[]; rooms: Map<string, JsonObject[]> }> {
    // Clients that filter all account data out (types: []) cost no query.
    const none = matchesNothing(req.filter.accountData) && matchesNothing(req.filter.roomAccountData);
    const records = none
      ? []
      : initial
        ? (await this.store.userData.getAllAccountData(req.userId)).filter((r) => r.stream <= upTo)
        : await this.store.userData.getAccountDataChanges(req.userId, from, upTo);
    const global: JsonObject[] = [];
    const rooms = new Map<string, JsonObject[]>();
    const hidden = this.sources.hiddenAccountDataPrefix;
    if (initial && this.sources.defaultAccountData) {
      for (const d of this.sources.defaultAccountData(req.userId)) {
        if (!records.some((r) => r.roomId === '' && r.type === d.type) && eventMatches(req.filter.accountData, d.type)) global.push(d);
      }
    }
    for (const r of records) {
      if (hidden && r.type.startsWith(hidden)) continue;
      const ev = { type: r.type, content: r.content };
      if (r.roomId === '') {
        if (eventMatches(req.filter.accountData, r.type)) global.push(ev);
      } else if (eventMatches(req.filter.roomAccountData, r.type) && roomIncluded(req.filter, r.roomId)) {
        const list = rooms.get(r.roomId) ?? [];
        list.push(ev);
        rooms.set(r.roomId, list);
      }
    }
    return { global, rooms };
  }
}

/** Which ephemeral kinds can reach this reader: the others need not wake it. */
function wantsOf(f: SyncFilter): Wants {
  // Filters are shared and read-only once compiled (SyncFilterResolver), so one Wants each.
  let w = WANTS.get(f);
  if (!w) WANTS.set(f, (w = { typing: eventMatches(f.ephemeral, 'm.typing'), presence: !matchesNothing(f.presence) }));
  return w;
}

const WANTS = new WeakMap<SyncFilter, Wants>();
