// Other servers' users' device lists, as this server's clients need them: the RemoteKeySource
// behind /keys/query and /keys/claim for remote users, a cache of their device lists, and the
// inbound m.device_list_update / m.signing_key_update EDUs that keep it right.
//
// Invariants:
// - A server is only believed about its own users (the origin of an EDU, the destination of a
//   request), and a device's keys never when they name another user or device.
// - A list is cached only for users sharing a room with a local member (their server then sends
//   us their updates). When the last such room stops being shared (they leave, or our last member
//   of it does: membershipChanged), the list is dropped at once, since updates stop coming
//   (spec: the list can no longer be trusted); when a room is shared again, or a client asks, it
//   is fetched again with /user/devices. The membership hook runs on the worker that persisted
//   the event; in a cluster every other worker runs it from the replication feed, and an update
//   applied here is announced (onUpdated) so that the others drop their copy
//   (src/cluster/device-list-invalidation.ts); the hour's TTL bounds what a lost announcement
//   leaves stale.
// - An update applies to the cached list only when its prev_id names the stream ID the cache is
//   at; otherwise (a gap, or a cache filled by /user/keys/query which has no stream ID) the list
//   is dropped and fetched again with /user/devices, in the background and once per user at a time.
// - A list we do not hold, of a user sharing a room with us, is fetched with /user/devices (not
//   /user/keys/query, which has no stream ID) when an update for it arrives or a client asks for it.
//   An update with a stream ID at or below the cache's is a repeat and ignored.
// - Every accepted update marks the user's device list changed in the store, so local room-mates'
//   /sync device_lists.changed and /keys/changes name them.
// - A fetch whose user was updated meanwhile (generation moved) does not fill the cache.

import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { dict, isJsonObject } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { KeyService, RemoteKeySource } from '../e2ee/key-service.js';
import type { E2eeStore } from '../store/e2ee-types.js';
import type { RoomStore } from '../store/types.js';
import { fedPath, type FederationClient } from './client.js';

export interface RemoteDevicesDeps {
  client: Pick<FederationClient, 'request'>;
  e2ee: Pick<E2eeStore, 'markDeviceListChanged'>;
  rooms: Pick<RoomStore, 'getRoomsForUser' | 'getRoomMembers'>;
  keys: Pick<KeyService, 'announce'>;
  serverName: string;
  logger: Logger;
}

export interface CachedDeviceList {
  /** Null when filled from /user/keys/query (no stream ID): the next update resyncs. */
  streamId: number | null;
  devices: Map<string, JsonObject>;
  master?: JsonObject;
  selfSigning?: JsonObject;
}

const CACHE_TTL_MS = 3600_000;
const MAX_RESPONSE = 8 * 1024 * 1024;

export class RemoteDeviceLists implements RemoteKeySource {
  private readonly cache = new LRUCache<string, CachedDeviceList>({ max: 20_000, ttl: CACHE_TTL_MS });
  private readonly generations = new LRUCache<string, number>({ max: 100_000 });
  private readonly resyncing = new Map<string, Promise<void>>();
  /** Users whose list was dropped when we stopped sharing a room: fetched again once one is shared. */
  private readonly unshared = new LRUCache<string, true>({ max: 100_000 });
  private membershipWork: Promise<unknown> = Promise.resolve();
  /** Resyncs through /user/devices started (tests, metrics). */
  resyncs = 0;
  /** Told of every update applied from an EDU (a cluster tells the other workers). */
  onUpdated: ((userIds: string[]) => void) | undefined;

  constructor(private readonly d: RemoteDevicesDeps) {}

  cached(userId: string): CachedDeviceList | undefined {
    return this.cache.get(userId);
  }

  /** Resolves once the resyncs in flight are done (tests). */
  async settled(): Promise<void> {
    await this.membershipWork.catch(() => undefined);
    await Promise.all([...this.resyncing.values()]);
  }

  // ---- RemoteKeySource -----------------------------------------------------------------------

  async queryKeys(server: string, wanted: Record<string, string[]>, timeoutMs: number): Promise<{ device_keys: JsonObject; master_keys: JsonObject; self_signing_keys: JsonObject }> {
    const out = { device_keys: dict<JsonValue>(), master_keys: dict<JsonValue>(), self_signing_keys: dict<JsonValue>() };
    const ask: Record<string, string[]> = dict();
    const gens = new Map<string, number>();
    const users = Object.keys(wanted).filter((u) => serverNameOf(u) === server);
    // A user sharing a room with us whose list we do not hold: fetch the list with /user/devices,
    // whose stream_id later m.device_list_update EDUs are applied against (a /user/keys/query
    // answer has none, so the first EDU after it would be a gap).
    const fetching: Array<Promise<void>> = [];
    for (const userId of users) {
      if (!this.cache.get(userId) && (await this.sharesRoom(userId))) fetching.push(this.resync(server, userId, timeoutMs));
    }
    await Promise.all(fetching);
    for (const userId of users) {
      const c = this.cache.get(userId);
      if (c) {
        this.fill(out, userId, c);
      } else {
        ask[userId] = []; // the whole list, so that it can be cached
        gens.set(userId, this.generation(userId));
      }
    }
    if (Object.keys(ask).length === 0) return out;
    const res = await this.d.client.request(server, {
      method: 'POST',
      path: '/_matrix/federation/v1/user/keys/query',
      body: { device_keys: ask },
      timeoutMs,
      maxResponseBytes: MAX_RESPONSE,
    });
    if (!isJsonObject(res)) throw new Error('user/keys/query: not an object');
    for (const userId of Object.keys(ask)) {
      const devices = isJsonObject(res.device_keys) ? res.device_keys[userId] : undefined;
      if (!isJsonObject(devices)) continue;
      const entry: CachedDeviceList = {
        streamId: null,
        devices: validDevices(userId, Object.entries(devices)),
        master: ownKey(res.master_keys, userId),
        selfSigning: ownKey(res.self_signing_keys, userId),
      };
      this.fill(out, userId, entry);
      if (this.generation(userId) === gens.get(userId) && (await this.sharesRoom(userId))) this.cache.set(userId, entry);
    }
    return out;
  }

  async claimKeys(server: string, wanted: Record<string, Record<string, string>>, timeoutMs: number): Promise<{ one_time_keys: JsonObject }> {
    const ask: Record<string, Record<string, string>> = dict();
    for (const [userId, devices] of Object.entries(wanted)) if (serverNameOf(userId) === server) ask[userId] = devices;
    const res = await this.d.client.request(server, {
      method: 'POST',
      path: '/_matrix/federation/v1/user/keys/claim',
      body: { one_time_keys: ask },
      timeoutMs,
      maxResponseBytes: MAX_RESPONSE,
    });
    if (!isJsonObject(res) || !isJsonObject(res.one_time_keys)) throw new Error('user/keys/claim: no one_time_keys');
    const out: JsonObject = dict();
    for (const userId of Object.keys(ask)) if (isJsonObject(res.one_time_keys[userId])) out[userId] = res.one_time_keys[userId];
    return { one_time_keys: out };
  }

  // ---- room membership ----------------------------------------------------------------------

  /**
   * A membership event was persisted (any server's). Drops the lists of remote users we no
   * longer share a room with, and fetches again those dropped earlier that share one now.
   * Serialised, so a leave and the rejoin after it are looked at in order.
   */
  membershipChanged(roomId: string, userId: string, membership: string): Promise<void> {
    const p = this.membershipWork.catch(() => undefined).then(async () => {
      const local = serverNameOf(userId) === this.d.serverName;
      const users = local
        ? (await this.d.rooms.getRoomMembers(roomId, ['join', 'invite'])).map((m) => m.userId).filter((u) => serverNameOf(u) !== this.d.serverName)
        : [userId];
      const sharing = membership === 'join' || membership === 'invite';
      for (const u of users) {
        if (!sharing) {
          if (!this.cache.has(u) && !this.resyncing.has(u)) continue; // nothing held that could go stale
          if (!(await this.sharesRoom(u))) {
            this.bump(u); // a resync in flight must not fill the cache either
            this.unshared.set(u, true);
          }
        } else if (this.unshared.has(u) && !this.cache.has(u) && (await this.sharesRoom(u))) {
          void this.resync(serverNameOf(u)!, u);
        }
      }
    });
    this.membershipWork = p;
    return p;
  }

  /** Another worker applied an update to these lists: ours are stale (in-flight fetches too). */
  dropLists(userIds: readonly string[]): void {
    for (const u of userIds) if (serverNameOf(u) !== this.d.serverName) this.bump(u);
  }

  /** Announcements may have been lost (a replication reset): every list is fetched afresh. */
  dropAll(): void {
    for (const u of [...this.cache.keys(), ...this.resyncing.keys()]) this.bump(u);
  }

  // ---- inbound EDUs --------------------------------------------------------------------------

  async deviceListUpdate(origin: string, c: JsonObject): Promise<void> {
    const { user_id: userId, device_id: deviceId, stream_id: streamId } = c;
    if (typeof userId !== 'string' || serverNameOf(userId) !== origin || typeof deviceId !== 'string' || !Number.isSafeInteger(streamId)) return;
    const prev = Array.isArray(c.prev_id) ? c.prev_id.filter((x): x is number => typeof x === 'number') : [];
    if (!(await this.sharesRoom(userId))) return;
    const cached = this.cache.get(userId);
    if (cached && cached.streamId !== null && (streamId as number) <= cached.streamId) return; // seen already
    if (cached && cached.streamId !== null && prev.includes(cached.streamId)) {
      if (c.deleted === true) cached.devices.delete(deviceId);
      else if (isJsonObject(c.keys)) {
        const [keys] = validDevices(userId, [[deviceId, c.keys]]).values();
        if (keys && typeof c.device_display_name === 'string') keys.unsigned = { device_display_name: c.device_display_name };
        if (keys) cached.devices.set(deviceId, keys);
      }
      cached.streamId = streamId as number;
      this.bump(userId, false);
    } else {
      // A gap, or a list we do not hold at all: an update cannot be applied to nothing, and this
      // user shares a room with us, so their list is fetched now (spec: resynchronise).
      this.bump(userId);
      // A resync already running started before this change and will not fill the cache: fetch again after it.
      const running = this.resyncing.get(userId);
      void (running ? running.then(() => (this.cache.get(userId) ? undefined : this.resync(origin, userId))) : this.resync(origin, userId));
    }
    this.onUpdated?.([userId]);
    await this.markChanged(userId);
  }

  async signingKeyUpdate(origin: string, c: JsonObject): Promise<void> {
    const userId = c.user_id;
    if (typeof userId !== 'string' || serverNameOf(userId) !== origin || !(await this.sharesRoom(userId))) return;
    const cached = this.cache.get(userId);
    if (cached) {
      const master = ownKey({ [userId]: c.master_key ?? null }, userId);
      const self = ownKey({ [userId]: c.self_signing_key ?? null }, userId);
      if (master) cached.master = master;
      if (self) cached.selfSigning = self;
    }
    this.bump(userId, false);
    this.onUpdated?.([userId]);
    await this.markChanged(userId);
  }

  /**
   * Fetches a user's whole list with /user/devices (once at a time per user). A resync still
   * running when the user's list changes again (generation moved) does not fill the cache; an
   * update that moved it fetches again once that one is done.
   */
  resync(origin: string, userId: string, timeoutMs = 30_000): Promise<void> {
    const running = this.resyncing.get(userId);
    if (running) return running;
    this.resyncs++;
    this.cache.delete(userId);
    const gen = this.generation(userId);
    const p = (async () => {
      try {
        const res = await this.d.client.request(origin, { method: 'GET', path: fedPath`/_matrix/federation/v1/user/devices/${userId}`, timeoutMs, maxResponseBytes: MAX_RESPONSE });
        if (!isJsonObject(res) || res.user_id !== userId || !Number.isSafeInteger(res.stream_id) || !Array.isArray(res.devices)) throw new Error('user/devices: malformed answer');
        const devices: Array<[string, JsonValue]> = [];
        for (const dev of res.devices) {
          if (!isJsonObject(dev) || typeof dev.device_id !== 'string' || !isJsonObject(dev.keys)) continue;
          const keys: JsonObject = { ...dev.keys };
          if (typeof dev.device_display_name === 'string') keys.unsigned = { device_display_name: dev.device_display_name };
          devices.push([dev.device_id, keys]);
        }
        if (this.generation(userId) !== gen) return; // updated meanwhile: the next query fetches again
        this.cache.set(userId, {
          streamId: res.stream_id as number,
          devices: validDevices(userId, devices),
          master: ownKey({ [userId]: res.master_key ?? null }, userId),
          selfSigning: ownKey({ [userId]: res.self_signing_key ?? null }, userId),
        });
        this.unshared.delete(userId);
        await this.markChanged(userId);
      } catch (err) {
        this.d.logger.warn({ err, origin, userId }, 'device list resync failed');
      } finally {
        this.resyncing.delete(userId);
      }
    })();
    this.resyncing.set(userId, p);
    return p;
  }

  private fill(out: { device_keys: JsonObject; master_keys: JsonObject; self_signing_keys: JsonObject }, userId: string, c: CachedDeviceList): void {
    const devices: JsonObject = dict();
    for (const [id, k] of c.devices) devices[id] = k;
    out.device_keys[userId] = devices;
    if (c.master) out.master_keys[userId] = c.master;
    if (c.selfSigning) out.self_signing_keys[userId] = c.selfSigning;
  }

  private generation(userId: string): number {
    return this.generations.get(userId) ?? 0;
  }

  /** The user's list changed in a way the cache may not hold: fetches in flight must not fill it. */
  private bump(userId: string, drop = true): void {
    this.generations.set(userId, this.generation(userId) + 1);
    if (drop) this.cache.delete(userId);
  }

  /**
   * Whether the user is joined to or invited into a room a local user is joined to. Their
   * membership alone is not enough: once our last member leaves we hear nothing more of the room,
   * so our copy of it still shows them joined.
   */
  private async sharesRoom(userId: string): Promise<boolean> {
    for (const m of await this.d.rooms.getRoomsForUser(userId, ['join', 'invite'])) {
      const members = await this.d.rooms.getRoomMembers(m.roomId, ['join']);
      if (members.some((x) => serverNameOf(x.userId) === this.d.serverName)) return true;
    }
    return false;
  }

  private async markChanged(userId: string): Promise<void> {
    await this.d.e2ee.markDeviceListChanged(userId);
    await this.d.keys.announce([userId]);
  }
}

/**
 * The devices a server lists for its own user. A key object naming another user or device is a
 * claim about someone else and dropped; one that names neither (SyTest's fake servers send
 * `keys: {device_keys: {}}`) is kept as given, as Synapse does: the device exists in the list,
 * and clients check the keys' user_id, device_id and signatures before using them.
 */
function validDevices(userId: string, entries: Array<[string, JsonValue]>): Map<string, JsonObject> {
  const out = new Map<string, JsonObject>();
  for (const [deviceId, k] of entries) {
    if (namesOnly(k, userId, deviceId)) out.set(deviceId, k);
  }
  return out;
}

/** `k` is an object whose user_id and device_id, where present, are `userId` and `deviceId`. */
function namesOnly(k: JsonValue | undefined, userId: string, deviceId: string): k is JsonObject {
  return isJsonObject(k) && (k.user_id === undefined || k.user_id === userId) && (k.device_id === undefined || k.device_id === deviceId);
}

function ownKey(all: JsonValue | undefined, userId: string): JsonObject | undefined {
  const k = isJsonObject(all) ? all[userId] : undefined;
  return isJsonObject(k) && k.user_id === userId && isJsonObject(k.keys) ? k : undefined;
}
