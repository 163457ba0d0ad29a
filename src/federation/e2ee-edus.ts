// End-to-end encryption and presence across servers: wires the device-list, to-device and
// presence services to federation, both ways.
//
// Out: a local user's device-list change (on the store's change stream, poked by KeyService
// listeners and the change feed) goes through DeviceListOutbox to LocalDeviceLists; a
// to-device message for a remote user becomes one m.direct_to_device EDU per server (durable
// queue, written before the client's request is answered: see src/e2ee/to-device.ts); a local user's visible presence change becomes an m.presence EDU to every server
// sharing a room with them (ephemeral), and where a room starts being shared (a join) the
// current presence of the new room-mates crosses too.
// In: m.device_list_update / m.signing_key_update go to RemoteDeviceLists; m.direct_to_device is
// delivered once per (origin, message_id) (a bounded in-memory record: a repeat within the
// last 50,000 messages from any server is dropped); m.presence is believed only for the origin's
// users who share a room with us (one that arrives just before the join that makes them a
// room-mate is held for up to a minute, 10,000 users at most, and believed on that join).
// The presence work a join starts (memberJoined) waits in a bounded queue, coalesced per (room,
// joining server; per user for our own): a flood of joins cannot grow memory without bound, and
// past `maxJoinWork` the oldest waiting work is dropped and counted (droppedJoinWork): presence
// is best effort, and the next change crosses anyway. A server "has our presence already" only if
// another of its users joined before this join (by stream position): two of its users joining
// back to back, both persisted before either's work runs, must not each count on the other.

import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { isJsonObject } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { E2eeServices } from '../e2ee/index.js';
import type { PresenceRecord, PresenceService, PresenceState } from '../ephemeral/presence.js';
import type { RoomStore } from '../store/types.js';
import type { FederationSender } from './sender.js';
import { LocalDeviceLists } from './local-devices.js';
import { DeviceListOutbox } from './device-list-outbox.js';
import type { FederationQueueStore } from '../store/federation-types.js';
import type { ChangeListener } from '../store/stream-id.js';
import type { DestinationGate } from '../cluster/destination-leases.js';
import { RemoteDeviceLists } from './remote-devices.js';
import type { FederationClient } from './client.js';
import type { E2eeStore } from '../store/e2ee-types.js';

export interface FederationE2eeDeps {
  serverName: string;
  e2ee: E2eeServices;
  e2eeStore: Pick<E2eeStore, 'markDeviceListChanged' | 'getDeviceListChanges'>;
  /** Where DeviceListOutbox keeps its cursor (the store's federationQueue). */
  cursors: Pick<FederationQueueStore, 'getCursor' | 'advanceCursor'>;
  /** The change feed (device-list changes poke the outbox). */
  onChanges?: (listener: ChangeListener) => () => void;
  /** A cluster: only the holder of the outbox's lease drains it. */
  gate?: Pick<DestinationGate, 'acquire'>;
  /** Test hook (spec/crash/edu-outbox.spec.ts): SIGKILL right after this user's device-list change is committed. */
  killAfterCommitOf?: string;
  presence?: PresenceService;
  rooms: Pick<RoomStore, 'getRoomsForUser' | 'getRoomMembers'>;
  client: Pick<FederationClient, 'request'>;
  sender: Pick<FederationSender, 'sendEdu'>;
  /** Servers (other than ours) sharing a room with the user, ACLs applied. */
  serversSharing: (userId: string) => Promise<Set<string>>;
  /** Servers (other than ours) in the room, ACLs applied. */
  serversInRoom?: (roomId: string) => Promise<Set<string>>;
  position: () => number;
  logger: Logger;
  now: () => number;
  /** Waiting memberJoined work kept at most (default 10,000); the oldest is dropped past it. */
  maxJoinWork?: number;
}

const PRESENCE_STATES = new Set<string>(['online', 'unavailable', 'offline']);
const MAX_TO_DEVICE_USERS = 10_000;

export class FederationE2ee {
  readonly local: LocalDeviceLists;
  readonly outbox: DeviceListOutbox;
  readonly remote: RemoteDeviceLists;
  private readonly seenMessages = new LRUCache<string, true>({ max: 50_000 });
  /** m.presence for users not (yet) sharing a room with us, by user: see presenceIn. */
  private readonly earlyPresence = new LRUCache<string, { entry: JsonObject; at: number }>({ max: 10_000, ttl: 60_000 });
  private pending: Promise<unknown> = Promise.resolve();
  /** m.direct_to_device EDUs dropped as repeats (tests, metrics). */
  duplicateMessages = 0;
  /** memberJoined work waiting, by coalescing key, oldest first. */
  private readonly joinWork = new Map<string, { roomId: string; userId: string; stream?: number }>();
  private joinDrain: Promise<void> | null = null;
  /** memberJoined work dropped because the queue was full (tests, metrics). */
  droppedJoinWork = 0;

  constructor(private readonly d: FederationE2eeDeps) {
    this.local = new LocalDeviceLists({
      serverName: d.serverName,
      keys: d.e2ee.keys,
      serversSharing: d.serversSharing,
      sendEdu: (servers, edu) => d.sender.sendEdu(servers, edu, { strict: true }),
      position: d.position,
      logger: d.logger,
    });
    this.outbox = new DeviceListOutbox({
      serverName: d.serverName,
      changes: d.e2eeStore,
      cursors: d.cursors,
      position: d.position,
      publish: (userId) => this.local.publishNow(userId),
      ...(d.onChanges ? { onChanges: d.onChanges } : {}),
      ...(d.gate ? { gate: d.gate } : {}),
      ...(d.killAfterCommitOf !== undefined ? { killAfterCommitOf: d.killAfterCommitOf } : {}),
      logger: d.logger,
    });
    this.remote = new RemoteDeviceLists({ client: d.client, e2ee: d.e2eeStore, rooms: d.rooms, keys: d.e2ee.keys, serverName: d.serverName, logger: d.logger });
    d.e2ee.keys.remote = this.remote;
    d.e2ee.keys.listeners.push((userIds) => {
      if (userIds.some((u) => serverNameOf(u) === d.serverName)) this.outbox.poke();
    });
    d.e2ee.toDevice.remote = {
      send: (server, content) => d.sender.sendEdu([server], { edu_type: 'm.direct_to_device', content: content as unknown as JsonObject }, { strict: true }),
    };
    d.presence?.listeners.push((r) => this.presenceChanged(r));
  }

  /** Waits for outbound work queued so far and the resyncs in flight (tests). */
  async settled(): Promise<void> {
    await this.outbox.settled();
    await Promise.all([this.pending.catch(() => undefined), this.joinsSettled(), this.local.settled(), this.remote.settled()]);
  }

  private async joinsSettled(): Promise<void> {
    while (this.joinDrain) await this.joinDrain;
  }

  /** Shutdown: outbound work is handed to the sender; a resync still waiting on a slow peer is not waited for past 2 s. */
  async stop(): Promise<void> {
    await this.outbox.stop();
    await Promise.all([this.pending.catch(() => undefined), this.joinsSettled(), this.local.settled()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.remote.settled(), new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
  }

  /** Inbound EDUs of the types this handles; returns false for other types. */
  async edu(origin: string, type: JsonValue | undefined, c: JsonObject): Promise<boolean> {
    switch (type) {
      case 'm.device_list_update':
        await this.remote.deviceListUpdate(origin, c);
        return true;
      case 'm.signing_key_update':
        await this.remote.signingKeyUpdate(origin, c);
        return true;
      case 'm.direct_to_device':
        await this.toDevice(origin, c);
        return true;
      case 'm.presence':
        await this.presenceIn(origin, c);
        return true;
      default:
        return false;
    }
  }

  private async toDevice(origin: string, c: JsonObject): Promise<void> {
    const { sender, type, message_id: messageId, messages } = c;
    if (typeof sender !== 'string' || serverNameOf(sender) !== origin || typeof type !== 'string' || typeof messageId !== 'string' || !isJsonObject(messages)) return;
    const key = `${origin}\u0000${messageId}`;
    if (this.seenMessages.has(key)) {
      this.duplicateMessages++;
      return;
    }
    const list: Array<[string, JsonObject]> = [];
    for (const [userId, byDevice] of Object.entries(messages).slice(0, MAX_TO_DEVICE_USERS)) {
      if (serverNameOf(userId) !== this.d.serverName || !isJsonObject(byDevice)) continue;
      list.push([userId, byDevice]);
    }
    this.seenMessages.set(key, true);
    try {
      await this.d.e2ee.toDevice.deliver(sender, type, list);
    } catch (err) {
      this.seenMessages.delete(key); // not delivered: a retry of the transaction may try again
      throw err;
    }
  }

  private async presenceIn(origin: string, c: JsonObject): Promise<void> {
    const presence = this.d.presence;
    if (!presence?.enabled || !Array.isArray(c.push)) return;
    for (const p of c.push.slice(0, 1000)) {
      if (!isJsonObject(p) || typeof p.user_id !== 'string' || serverNameOf(p.user_id) !== origin) continue;
      if (typeof p.presence !== 'string' || !PRESENCE_STATES.has(p.presence)) continue;
      if ((await this.d.rooms.getRoomsForUser(p.user_id, ['join'])).length === 0) {
        // Sent as our user joins their room, it can overtake the join itself (the resident
        // server sends it as it stores the join, before we have the room): kept a little while,
        // bounded, and believed once the user is a room-mate (memberJoined).
        this.earlyPresence.set(p.user_id, { entry: p, at: this.d.now() });
        continue;
      }
      this.applyPresence(p);
    }
  }

  private applyPresence(p: JsonObject, agoExtra = 0): void {
    const ago = (typeof p.last_active_ago === 'number' && Number.isFinite(p.last_active_ago) ? p.last_active_ago : 0) + agoExtra;
    const status = typeof p.status_msg === 'string' ? p.status_msg : null;
    this.d.presence?.setRemote(p.user_id as string, p.presence as PresenceState, status, ago, p.currently_active === true);
  }

  private presenceChanged(r: PresenceRecord): void {
    if (serverNameOf(r.userId) !== this.d.serverName) return;
    const entry = this.presenceEntry(r);
    this.pending = this.pending
      .then(async () => {
        const servers = await this.d.serversSharing(r.userId);
        if (servers.size > 0) this.d.sender.sendEdu(servers, { edu_type: 'm.presence', content: { push: [entry] } });
      })
      .catch((err: unknown) => this.d.logger.warn({ err, userId: r.userId }, 'presence not sent'));
  }

  /**
   * A join was persisted: presence is only sent on change, so where sharing starts the current
   * presence crosses now (as Synapse does), or a new room-mate would not see it until it next
   * changes. Our user joined: their presence to the room's other servers. Another server's first
   * member of the room joined: our members' presence to that server.
   */
  memberJoined(roomId: string, userId: string, stream?: number): void {
    const presence = this.d.presence;
    const serversInRoom = this.d.serversInRoom;
    if (!presence?.enabled || !serversInRoom) return;
    const server = serverNameOf(userId);
    if (server === undefined) return;
    // Our user: their own presence goes out, so per user. Another server: the same work for any
    // of its users (our members' presence to it), so one per server; the first join kept.
    const key = server === this.d.serverName ? `${roomId}\u0000${userId}` : `${roomId}\u0000:${server}`;
    if (this.joinWork.has(key)) return;
    if (this.joinWork.size >= (this.d.maxJoinWork ?? 10_000)) {
      const oldest = this.joinWork.keys().next().value as string;
      this.joinWork.delete(oldest);
      if (this.droppedJoinWork++ % 1000 === 0) this.d.logger.warn({ dropped: this.droppedJoinWork, roomId }, 'presence work for joins dropped: queue full');
    }
    this.joinWork.set(key, { roomId, userId, stream });
    this.drainJoins();
  }

  /** One drain at a time, oldest work first; restarts if work arrived as it finished. */
  private drainJoins(): void {
    if (this.joinDrain) return;
    this.joinDrain = (async () => {
      for (let next = this.joinWork.entries().next(); !next.done; next = this.joinWork.entries().next()) {
        const [key, { roomId, userId, stream }] = next.value;
        this.joinWork.delete(key);
        await this.joinedWork(roomId, userId, stream).catch((err: unknown) => this.d.logger.warn({ err, roomId, userId }, 'presence for a new room-mate not sent'));
      }
    })().finally(() => {
      this.joinDrain = null;
      if (this.joinWork.size > 0) this.drainJoins();
    });
  }

  /** The work of one join (see memberJoined); presence and serversInRoom were checked there. */
  private async joinedWork(roomId: string, userId: string, stream: number | undefined): Promise<void> {
    const presence = this.d.presence!;
    const serversInRoom = this.d.serversInRoom!;
    const server = serverNameOf(userId)!;
    if (this.earlyPresence.size > 0) {
      for (const m of await this.d.rooms.getRoomMembers(roomId, ['join'])) {
        const early = this.earlyPresence.get(m.userId);
        if (!early) continue;
        this.earlyPresence.delete(m.userId);
        this.applyPresence(early.entry, Math.max(0, this.d.now() - early.at));
      }
    }
    if (server === this.d.serverName) {
      const r = presence.get(userId);
      const servers = r && r.pos > 0 ? await serversInRoom(roomId) : new Set<string>();
      if (servers.size > 0) this.d.sender.sendEdu(servers, { edu_type: 'm.presence', content: { push: [this.presenceEntry(r!)] } });
      return;
    }
    const members = await this.d.rooms.getRoomMembers(roomId, ['join']);
    // It has them already if another of its users joined earlier (a later one's work is its own).
    const earlier = (m: { userId: string; stream: number }) => m.userId !== userId && serverNameOf(m.userId) === server && (stream === undefined || m.stream < stream);
    if (members.some(earlier)) return;
    if (!(await serversInRoom(roomId)).has(server)) return; // banned by the room's ACL
    const push: JsonValue[] = [];
    for (const m of members) {
      const r = serverNameOf(m.userId) === this.d.serverName ? presence.get(m.userId) : undefined;
      if (r && r.pos > 0) push.push(this.presenceEntry(r));
    }
    for (let i = 0; i < push.length; i += 100) this.d.sender.sendEdu([server], { edu_type: 'm.presence', content: { push: push.slice(i, i + 100) } });
  }

  private presenceEntry(r: PresenceRecord): JsonObject {
    const entry: JsonObject = {
      user_id: r.userId,
      presence: r.state,
      last_active_ago: r.lastActiveTs > 0 ? Math.max(0, this.d.now() - r.lastActiveTs) : 0,
      currently_active: r.currentlyActive,
    };
    if (r.statusMsg !== null) entry.status_msg = r.statusMsg;
    return entry;
  }
}
