// The deprecated event-stream API that real clients and bots still call: GET /events (the old
// event stream, and its per-room form for peeking at world-readable rooms), GET /initialSync and
// GET /rooms/{roomId}/initialSync. Transports parse parameters; this builds the responses.
//
// Invariants:
// - Built on the public methods of the sync service: /events and /initialSync are reshaped
//   /sync responses, so they see exactly what /sync sees (visibility, ignored users, membership)
//   and share its tokens; /events tokens are /sync tokens and vice versa.
// - These calls never acknowledge anything for the device (acknowledgeSince: false): they do
//   not deliver to-device messages, so acknowledging would lose them.
// - Peeking (/events?room_id= for a room one has not joined) shows only what the room's history
//   visibility lets a non-member see: world-readable rooms, with their typing, public receipts
//   and members' presence. Everything else is 403.
// - Events come in the old API's shape (legacy-format.ts: `user_id` beside `sender`, `age` and
//   `prev_content` at the top level), as Synapse serves them; receipts go only to members (and
//   peekers of world-readable rooms), never someone else's private ones.

import { MatrixError } from '../errors.js';
import { presenceContent, type PresenceService } from '../ephemeral/presence.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { JsonObject } from '../protocol/types.js';
import { receiptContent } from '../receipts/receipt-source.js';
import type { EventFormatter } from '../room/client-event.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { ReceiptRecord } from '../store/chat-types.js';
import type { StateEntry, Store, StoredEvent } from '../store/types.js';
import { compileFilter, MAX_TIMELINE_LIMIT } from './filter.js';
import { v1Event } from './legacy-format.js';
import type { Notifier } from './notifier.js';
import type { SyncService } from './sync-service.js';
import { serializeToken, type StreamToken } from './token.js';

type SyncRoom = {
  timeline?: { events?: JsonObject[]; prev_batch?: string };
  state?: { events?: JsonObject[] };
  ephemeral?: { events?: JsonObject[] };
  account_data?: { events?: JsonObject[] };
  invite_state?: { events?: JsonObject[] };
};
type SyncRooms = { join?: Record<string, SyncRoom>; invite?: Record<string, SyncRoom>; leave?: Record<string, SyncRoom> };

/** The caller: a device of a user, possibly a guest. */
export interface LegacyViewer {
  userId: string;
  deviceId: string;
  isGuest: boolean;
}

export interface LegacyDeps {
  store: Store;
  sync: Pick<SyncService, 'sync'>;
  formatter: EventFormatter;
  visibility: VisibilityChecker;
  presence: PresenceService;
  typing: TypingService;
  notifier: Notifier;
  /** The position a stream token taken now names. */
  currentToken: () => StreamToken;
  now: () => number;
}

export class LegacyEventStream {
  constructor(private readonly s: LegacyDeps) {}

  /** GET /events: the stream from `from` (now when absent), or a peek with `roomId`. */
  async events(auth: LegacyViewer, q: { roomId?: string; from?: StreamToken; timeoutMs: number; signal: AbortSignal }): Promise<JsonObject> {
    const s = this.s;
    const { roomId, timeoutMs, signal } = q;
    // Polling the stream is activity, as /sync is; marked first, so that "now" lies after it.
    if (!auth.isGuest) s.presence.syncing(auth.userId, undefined);
    const from = q.from ?? s.currentToken();
    if (roomId !== undefined) {
      const m = await s.store.rooms.getMembership(roomId, auth.userId);
      if (m?.membership !== 'join') return peek(s, auth, roomId, from, timeoutMs, signal);
    } else if (auth.isGuest) {
      // Guests may use /events only to peek into a room (spec "Guest Access").
      throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guests may only call /events with a room_id', {}, 403);
    }
    const res = await s.sync.sync({
      userId: auth.userId,
      deviceId: auth.deviceId,
      since: serializeToken(from),
      filter: compileFilter({ room: { timeline: { limit: MAX_TIMELINE_LIMIT }, ...(roomId !== undefined ? { rooms: [roomId] } : {}) } }),
      timeoutMs,
      fullState: false,
      signal,
      acknowledgeSince: false,
    });
    return { start: serializeToken(from), end: res.next_batch, chunk: await streamEvents(s, auth, res) };
  }

  /** GET /initialSync. */
  async initialSync(auth: LegacyViewer, limit: number, archived: boolean): Promise<JsonObject> {
    const s = this.s;
    // The old API's session starts here, as /sync's does: the caller is online.
    if (!auth.isGuest) s.presence.syncing(auth.userId, undefined);
    const res = await s.sync.sync({
      userId: auth.userId,
      deviceId: auth.deviceId,
      filter: compileFilter({ room: { timeline: { limit }, include_leave: archived } }),
      timeoutMs: 0,
      fullState: false,
      acknowledgeSince: false,
    });
    const rooms = (res.rooms ?? {}) as SyncRooms;
    const out: JsonObject[] = [];
    for (const [roomId, room] of Object.entries(rooms.join ?? {})) out.push(await roomInfo(s, roomId, 'join', room, res.next_batch));
    for (const [roomId, room] of Object.entries(rooms.leave ?? {})) {
      const m = await s.store.rooms.getMembership(roomId, auth.userId);
      out.push(await roomInfo(s, roomId, m?.membership === 'ban' ? 'ban' : 'leave', room, res.next_batch));
    }
    for (const roomId of Object.keys(rooms.invite ?? {})) {
      const invite = await ownMemberEvent(s, auth, roomId);
      const info: JsonObject = { room_id: roomId, membership: 'invite', visibility: await s.store.rooms.getRoomVisibility(roomId) };
      if (invite) info.invite = invite;
      out.push(info);
    }
    const presence = ((res.presence as { events?: JsonObject[] } | undefined)?.events ?? []).map(legacyPresence);
    // One's own presence is always there (a new user in no room included), as Synapse gives it.
    const own = s.presence.enabled ? s.presence.get(auth.userId) : undefined;
    if (own && !presence.some((p) => p.sender === auth.userId)) {
      presence.push(legacyPresence({ type: 'm.presence', sender: auth.userId, content: presenceContent(own, s.now()) }));
    }
    return {
      end: res.next_batch,
      rooms: out,
      presence,
      receipts: await receiptEvents(s, auth.userId, Object.keys(rooms.join ?? {})),
      // What the user stored; the push rules /sync adds as m.push_rules are read from /pushrules
      // by the clients of this API (Synapse leaves them out here too).
      account_data: ((res.account_data as { events?: JsonObject[] } | undefined)?.events ?? []).filter((e) => e.type !== 'm.push_rules'),
    };
  }

  /** GET /rooms/{roomId}/initialSync. */
  roomInitialSync(auth: LegacyViewer, roomId: string, limit: number): Promise<JsonObject> {
    return roomInitialSync(this.s, auth, roomId, limit);
  }
}

/** A /sync response flattened into the old stream's chunk: every event carries its room_id. */
async function streamEvents(s: LegacyDeps, auth: LegacyViewer, res: JsonObject): Promise<JsonObject[]> {
  const out: JsonObject[] = [];
  const inRoom = (roomId: string, events: JsonObject[] | undefined) => {
    for (const e of events ?? []) out.push(v1Event(e, roomId));
  };
  const rooms = (res.rooms ?? {}) as SyncRooms;
  for (const [roomId, room] of [...Object.entries(rooms.join ?? {}), ...Object.entries(rooms.leave ?? {})]) {
    inRoom(roomId, room.state?.events);
    inRoom(roomId, room.timeline?.events);
    inRoom(roomId, room.ephemeral?.events);
    inRoom(roomId, room.account_data?.events);
  }
  // The old stream carried the invite event itself; /sync gives stripped state instead.
  for (const roomId of Object.keys(rooms.invite ?? {})) {
    const ev = await ownMemberEvent(s, auth, roomId);
    if (ev) out.push(ev);
  }
  for (const e of (res.presence as { events?: JsonObject[] } | undefined)?.events ?? []) out.push(legacyPresence(e));
  for (const e of (res.account_data as { events?: JsonObject[] } | undefined)?.events ?? []) out.push(e);
  return out;
}

/** The old API's presence events also named the user in content.user_id. */
function legacyPresence(e: JsonObject): JsonObject {
  return { ...e, content: { ...(e.content as JsonObject), user_id: e.sender ?? null } };
}

async function ownMemberEvent(s: LegacyDeps, auth: LegacyViewer, roomId: string): Promise<JsonObject | undefined> {
  const m = await s.store.rooms.getMembership(roomId, auth.userId);
  const ev = m && (await s.store.rooms.getEvent(m.eventId));
  return ev ? v1Event((await s.formatter.format([ev], auth))[0], roomId) : undefined;
}

/** One room of GET /initialSync from its /sync section: current state is state + timeline state. */
async function roomInfo(s: LegacyDeps, roomId: string, membership: string, room: SyncRoom, end: string): Promise<JsonObject> {
  const timeline = room.timeline?.events ?? [];
  const state = new Map<string, JsonObject>();
  for (const e of [...(room.state?.events ?? []), ...timeline]) {
    if (typeof e.state_key === 'string') state.set(`${String(e.type)}\u0000${e.state_key}`, v1Event(e, roomId));
  }
  const messages: JsonObject = { chunk: timeline.map((e) => v1Event(e, roomId)), end };
  if (room.timeline?.prev_batch) messages.start = room.timeline.prev_batch;
  return {
    room_id: roomId,
    membership,
    messages,
    state: [...state.values()],
    visibility: await s.store.rooms.getRoomVisibility(roomId),
    account_data: room.account_data?.events ?? [],
  };
}

/**
 * GET /rooms/{roomId}/initialSync: members see the room as it is (leavers as they left it);
 * others only a world-readable room, with what its history visibility shows non-members.
 */
async function roomInitialSync(s: LegacyDeps, auth: LegacyViewer, roomId: string, limit: number): Promise<JsonObject> {
  const mine = await s.store.rooms.getMembership(roomId, auth.userId);
  const head = s.store.currentPosition();
  let bound = head;
  const left = mine?.membership === 'leave' || mine?.membership === 'ban';
  let state: StateEntry[];
  if (mine?.membership === 'join') {
    state = await s.store.rooms.getCurrentState(roomId);
  } else if (mine && left) {
    bound = mine.stream;
    state = await s.store.rooms.getStateAt(roomId, bound);
  } else if (await s.visibility.isWorldReadable(roomId)) {
    state = await s.store.rooms.getCurrentState(roomId);
  } else {
    throw new MatrixError('M_FORBIDDEN', 'You are not allowed to view this room');
  }
  const page = await s.store.rooms.getRoomEvents({ roomId, dir: 'b', from: bound, limit });
  const visible = (await s.visibility.filter(auth.userId, roomId, page)).reverse();
  const stateEvents = await s.store.rooms.getEvents(state.map((e) => e.eventId));
  const oldest = page[page.length - 1];
  const messages: JsonObject = {
    chunk: (await s.formatter.format(visible, auth)).map((e) => v1Event(e, roomId)),
    // From the live end, ephemeral changes continue from now too, not from the start of time.
    end: serializeToken({ stream: bound, ephemeral: bound === head ? s.currentToken().ephemeral : 0 }),
  };
  // Always present (clients page back from it); at the start of history it names the start.
  messages.start = serializeToken({ stream: oldest ? oldest.stream - 1 : bound, ephemeral: 0 });
  const res: JsonObject = {
    room_id: roomId,
    messages,
    state: (await s.formatter.format([...stateEvents.values()].sort((a, b) => a.stream - b.stream), auth)).map((e) => v1Event(e, roomId)),
    presence: mine?.membership === 'join' ? await roomPresence(s, roomId) : [],
    // A leaver sees the room as they left it: no receipts (Synapse gives none either).
    receipts: left ? [] : await receiptEvents(s, auth.userId, [roomId]),
    account_data: (await s.store.userData.getAllAccountData(auth.userId))
      .filter((d) => d.roomId === roomId)
      .map((d) => ({ type: d.type, content: d.content })),
    visibility: await s.store.rooms.getRoomVisibility(roomId),
  };
  if (mine) res.membership = mine.membership;
  return res;
}

/** The current receipts of joined rooms as m.receipt events, others' private receipts left out. */
async function receiptEvents(s: LegacyDeps, userId: string, roomIds: string[]): Promise<JsonObject[]> {
  if (roomIds.length === 0) return [];
  const byRoom = new Map<string, ReceiptRecord[]>();
  for (const r of await s.store.receipts.getRoomReceipts(roomIds)) {
    if (r.type === 'm.read.private' && r.userId !== userId) continue;
    const list = byRoom.get(r.roomId) ?? [];
    list.push(r);
    byRoom.set(r.roomId, list);
  }
  return [...byRoom].map(([roomId, list]) => ({ type: 'm.receipt', room_id: roomId, content: receiptContent(list) }));
}

async function roomPresence(s: LegacyDeps, roomId: string): Promise<JsonObject[]> {
  if (!s.presence.enabled) return [];
  const out: JsonObject[] = [];
  for (const m of await s.store.rooms.getRoomMembers(roomId, ['join'])) {
    const rec = s.presence.get(m.userId);
    if (rec) out.push(legacyPresence({ type: 'm.presence', sender: m.userId, content: presenceContent(rec, s.now()) }));
  }
  return out;
}

/** Typing, public receipts and members' presence of a peeked room in (since, upTo]. */
async function peekEphemeral(s: LegacyDeps, roomId: string, since: StreamToken, upTo: StreamToken): Promise<JsonObject[]> {
  const out: JsonObject[] = [];
  if (s.typing.changedSince(roomId, since.ephemeral)) {
    out.push({ type: 'm.typing', room_id: roomId, content: { user_ids: s.typing.typingUsers(roomId) } });
  }
  const receipts = (await s.store.receipts.getReceiptChanges([roomId], since.stream, upTo.stream)).filter((r) => r.type !== 'm.read.private');
  if (receipts.length > 0) out.push({ type: 'm.receipt', room_id: roomId, content: receiptContent(receipts) });
  if (s.presence.enabled) {
    const changed = s.presence.changedSince(since.ephemeral).filter((r) => r.pos <= upTo.ephemeral);
    if (changed.length > 0) {
      const members = new Set((await s.store.rooms.getRoomMembers(roomId, ['join'])).map((m) => m.userId));
      for (const r of changed) {
        if (members.has(r.userId)) out.push(legacyPresence({ type: 'm.presence', sender: r.userId, content: presenceContent(r, s.now()) }));
      }
    }
  }
  return out;
}

/**
 * /events?room_id= for a room the user has not joined: the events of a world-readable room
 * after `from`, as a non-member may see them, waiting up to `timeoutMs` for some.
 */
async function peek(s: LegacyDeps, auth: LegacyViewer, roomId: string, from: StreamToken, timeoutMs: number, signal: AbortSignal): Promise<JsonObject> {
  if (!(await s.visibility.isWorldReadable(roomId))) throw new MatrixError('M_FORBIDDEN', 'You may not peek into this room');
  const deadline = Date.now() + timeoutMs;
  let since = from;
  for (;;) {
    // Subscribe before reading, so a change between the read and the wait is not missed.
    let wake: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const unsubscribe = s.notifier.subscribe((n) => {
      if (n.roomId === roomId) wake();
    });
    try {
      const upTo = s.currentToken();
      const page: StoredEvent[] = await s.store.rooms.getRoomEvents({ roomId, dir: 'f', from: since.stream, to: upTo.stream, limit: MAX_TIMELINE_LIMIT });
      const visible = await s.visibility.filter(auth.userId, roomId, page);
      const chunk: JsonObject[] = (await s.formatter.format(visible, auth)).map((e) => v1Event(e, roomId));
      chunk.push(...(await peekEphemeral(s, roomId, since, upTo)));
      // A page that filled up ends at its last event, so the next call continues from there.
      const end = page.length === MAX_TIMELINE_LIMIT ? { stream: page[page.length - 1].stream, ephemeral: upTo.ephemeral } : upTo;
      const remaining = deadline - Date.now();
      if (chunk.length > 0 || remaining <= 0 || signal.aborted) return { start: serializeToken(from), end: serializeToken(end), chunk };
      since = end;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        woken,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, remaining);
          signal.addEventListener('abort', () => resolve(), { once: true });
        }),
      ]);
      clearTimeout(timer);
    } finally {
      unsubscribe();
    }
  }
}
