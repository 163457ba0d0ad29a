// Turns persisted events and read receipts into queued push notifications (the Push Gateway
// API's `notification` object, as Sygnal parses it). It only reads and enqueues: delivery is
// the gateway worker's job (src/push/gateway.ts), so a slow or dead gateway never reaches here.
//
// By default a user with a connected device (a /sync in flight or just finished) gets no push
// for an event: that device shows it already (`push.always_push` restores Synapse's behaviour).
// Badge counts are pushed whenever a read changes them, connected or not: the phone in the
// pocket still shows the old badge.

import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { JsonObject, JsonValue, Pdu } from '../protocol/types.js';
import { roomIdOf } from '../protocol/events.js';
import type { RoomState } from '../room/room-state.js';
import type { PushActionInput, PushJob, PusherRecord, Store } from '../store/types.js';
import { dict, isJsonObject } from '../protocol/canonical-json.js';

export interface PersistedEvent {
  eventId: string;
  pdu: Pdu;
  stream: number;
  pushActions: PushActionInput[];
}

/** Display details of the room an event is in; each absent when unknown. */
export interface RoomPushInfo {
  roomName?: string;
  roomAlias?: string;
  senderDisplayName?: string;
}

export interface PushDispatcherOptions {
  store: Store;
  isConnected: (userId: string) => boolean;
  /**
   * In a cluster: whether the user is connected to another process. Asked only for users this
   * process sees as offline and who have a pusher; absent on a single node (no remote calls).
   */
  isConnectedElsewhere?: (userId: string) => Promise<boolean>;
  roomInfo: (roomId: string, senderId: string) => Promise<RoomPushInfo>;
  /** Called after jobs were queued (wakes the gateway worker). */
  onEnqueued: () => void;
  logger: Logger;
  /** false: every hook is a no-op. */
  enabled?: boolean;
  alwaysPush?: boolean;
  now?: () => number;
}

type NewJob = Omit<PushJob, 'id' | 'attempts'>;

export class PushDispatcher {
  private readonly pending = new Set<Promise<void>>();
  /**
   * The badge each user's devices were last sent. A read that leaves the count where it was
   * needs no push (most reads in an active chat); forgotten on restart, which costs one push.
   */
  private readonly lastBadge = new LRUCache<string, number>({ max: 100_000 });
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: PushDispatcherOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** RoomInput's onPersisted: returns at once, the work happens after the send is answered. */
  eventPersisted(ev: PersistedEvent): void {
    if (this.closed || this.opts.enabled === false) return;
    const targets = ev.pushActions.filter((a) => a.notify && (this.opts.alwaysPush || !this.opts.isConnected(a.userId)));
    if (targets.length > 0) this.track(this.dispatchEvent(ev, targets));
  }

  /** ReceiptService's onRead: the user's unread count may have dropped. */
  countsChanged(userId: string): void {
    if (this.closed || this.opts.enabled === false) return;
    this.track(this.dispatchCounts(userId));
  }

  /** Stops taking work and waits for dispatches under way (before the store closes). */
  async drain(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
  }

  private track(work: Promise<void>): void {
    const tracked: Promise<void> = work
      .catch((err: unknown) => this.opts.logger.warn({ err }, 'push dispatch failed'))
      .finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private async dispatchEvent(ev: PersistedEvent, targets: PushActionInput[]): Promise<void> {
    // Store reads are synchronous underneath: let the send's reply and other I/O go first.
    await yieldToIo();
    const { store } = this.opts;
    let info: RoomPushInfo | undefined;
    const jobs: NewJob[] = [];
    for (const action of targets) {
      const pushers = await store.pushers.getPushers(action.userId);
      if (pushers.length === 0) continue;
      if (!this.opts.alwaysPush && this.opts.isConnectedElsewhere && (await this.opts.isConnectedElsewhere(action.userId))) continue;
      const roomId = roomIdOf(ev.pdu, ev.eventId);
      info ??= await this.opts.roomInfo(roomId, ev.pdu.sender).catch((err: unknown) => {
        this.opts.logger.debug({ err, room_id: roomId }, 'push: no room details');
        return {};
      });
      const unread = await this.unreadCount(action.userId);
      const tweaks = tweaksOf(action.actions);
      const prio = action.highlight || tweaks.sound !== undefined || tweaks.highlight === true ? 'high' : 'low';
      for (const p of pushers) {
        jobs.push(this.job(p, eventNotification(ev, action.userId, p, { unread, tweaks, prio, info })));
      }
      this.lastBadge.set(action.userId, unread);
    }
    await this.enqueue(jobs);
  }

  private async dispatchCounts(userId: string): Promise<void> {
    await yieldToIo();
    const pushers = await this.opts.store.pushers.getPushers(userId);
    if (pushers.length === 0) return;
    const unread = await this.unreadCount(userId);
    if (this.lastBadge.get(userId) === unread) return;
    this.lastBadge.set(userId, unread);
    await this.enqueue(pushers.map((p) => this.job(p, { counts: { unread }, devices: [device(p)] })));
  }

  private job(p: PusherRecord, notification: JsonObject): NewJob {
    return { userId: p.userId, appId: p.appId, pushkey: p.pushkey, notification, notBefore: this.now() };
  }

  private async enqueue(jobs: NewJob[]): Promise<void> {
    if (jobs.length === 0) return;
    // Issued together so they share one write batch (one commit).
    await Promise.all(jobs.map((j) => this.opts.store.pushers.enqueuePush(j)));
    this.opts.onEnqueued();
  }

  /** Notifying events not covered by the user's read state, over all joined rooms and threads. */
  private async unreadCount(userId: string): Promise<number> {
    const { store } = this.opts;
    const rooms = await store.rooms.getRoomsForUser(userId, ['join']);
    if (rooms.length === 0) return 0;
    const counts = await store.notifications.getUnreadCounts(userId, rooms.map((r) => r.roomId), store.currentPosition());
    let total = 0;
    for (const c of counts.values()) {
      total += c.main.notification_count;
      for (const t of c.threads.values()) total += t.notification_count;
    }
    return total;
  }
}

/** What a gateway needs to reach one device: the pusher's data minus the URL (spec). */
function device(p: PusherRecord, tweaks?: JsonObject): JsonObject {
  const data: JsonObject = { ...p.data };
  delete data.url;
  const d: JsonObject = { app_id: p.appId, pushkey: p.pushkey, pushkey_ts: Math.floor(p.pushkeyTs / 1000), data };
  if (tweaks) d.tweaks = tweaks;
  return d;
}

function eventNotification(
  ev: PersistedEvent,
  userId: string,
  p: PusherRecord,
  c: { unread: number; tweaks: JsonObject; prio: 'high' | 'low'; info: RoomPushInfo },
): JsonObject {
  const { pdu } = ev;
  const counts: JsonObject = { unread: c.unread };
  if (pdu.type === 'm.call.invite') counts.missed_calls = 1;
  const base: JsonObject = { event_id: ev.eventId, room_id: roomIdOf(pdu, ev.eventId), prio: c.prio, counts, devices: [device(p, c.tweaks)] };
  // event_id_only exists so that nothing about the message passes through the gateway and the
  // push provider; the app fetches the event itself. So no sender or room name either.
  if (p.data.format === 'event_id_only') return base;
  const n: JsonObject = { ...base, id: ev.eventId, type: pdu.type, sender: pdu.sender };
  if (c.info.senderDisplayName !== undefined) n.sender_display_name = c.info.senderDisplayName;
  if (c.info.roomName !== undefined) n.room_name = c.info.roomName;
  if (c.info.roomAlias !== undefined) n.room_alias = c.info.roomAlias;
  if (pdu.type === 'm.room.member' && pdu.state_key !== undefined) {
    n.user_is_target = pdu.state_key === userId;
    if (typeof pdu.content.membership === 'string') n.membership = pdu.content.membership;
  }
  n.content = pdu.content;
  return n;
}

/** `set_tweak` actions as a tweaks object; a highlight without a value means true. */
export function tweaksOf(actions: Array<string | JsonObject>): JsonObject {
  const tweaks: JsonObject = dict();
  for (const a of actions) {
    if (typeof a !== 'object' || a === null || typeof a.set_tweak !== 'string') continue;
    const value: JsonValue | undefined = a.value;
    if (value !== undefined) tweaks[a.set_tweak] = value;
    else if (a.set_tweak === 'highlight') tweaks.highlight = true;
  }
  return tweaks;
}

/** Room name, canonical alias and the sender's display name from the room's current state. */
export function roomInfoFromState(state: RoomState | null, senderId: string): RoomPushInfo {
  if (!state) return {};
  const info: RoomPushInfo = {};
  // A room known only through an invite: its name is in the stripped state the invite came with.
  const stripped = state.get('m.room.create', '') ? undefined : strippedStateOf(state);
  const content = (type: string) => (stripped ? stripped.get(type) : state.content(type));
  const name = content('m.room.name')?.name;
  if (typeof name === 'string' && name !== '') info.roomName = name;
  const alias = content('m.room.canonical_alias')?.alias;
  if (typeof alias === 'string' && alias !== '') info.roomAlias = alias;
  // room_name is what the client would show as the room's name: without a name, the alias.
  if (info.roomName === undefined && info.roomAlias !== undefined) info.roomName = info.roomAlias;
  const displayname = state.content('m.room.member', senderId)?.displayname;
  if (typeof displayname === 'string' && displayname !== '') info.senderDisplayName = displayname;
  return info;
}

/** The invite_room_state of a stub room's invite, by event type (state keys '' only). */
function strippedStateOf(state: RoomState): Map<string, JsonObject> {
  const out = new Map<string, JsonObject>();
  for (const e of state.all()) {
    const list = e.pdu.type === 'm.room.member' && e.pdu.content.membership === 'invite' ? (e.pdu.unsigned as JsonObject | undefined)?.invite_room_state : undefined;
    if (!Array.isArray(list)) continue;
    for (const s of list) {
      if (isJsonObject(s) && typeof s.type === 'string' && s.state_key === '' && isJsonObject(s.content) && !out.has(s.type)) out.set(s.type, s.content);
    }
  }
  return out;
}

function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
