// Our users' device lists, as other servers see them: GET /user/devices, POST /user/keys/query
// and /user/keys/claim, and the m.device_list_update / m.signing_key_update EDUs sent when a
// local user's devices or cross-signing keys change.
//
// Invariants:
// - Only local users are answered or announced; a request naming other users gets nothing for them.
// - Device display names never leave this server (as Synapse's default): they can say more about
//   a person than their keys do, and other servers' clients do not need them. A rename is still
//   announced (an update carrying the keys, not the name): the spec asks for an update on any
//   change of device information, and it is what tells other servers' clients to look again.
// - Per user, stream IDs only grow (max(last + 1, the store's stream position)) and every EDU's
//   prev_id names the previous one, so a receiver that missed one sees the gap and resyncs.
// - The baseline (the list as last announced, or as last served by /user/devices) lives in
//   memory: after a restart the first update carries an empty prev_id, which receivers holding
//   our list treat as a gap (resync), so a change made while we were down is never lost.
// - Each user's work (snapshot, diff, stream IDs) runs through one promise chain: updates go out
//   in the order the changes were stored, and /user/devices never interleaves with them.
// - Updates go through the durable per-destination queue to every server sharing a room with the
//   user, driven by DeviceListOutbox (device-list-outbox.ts: from the store's device-list change
//   stream, so a crash after the change's commit loses nothing). The baseline and stream ID move
//   only once the updates are queued: a failed queue write leaves the change to the next drain.

import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { canonicalJson, dict, isJsonObject } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { KeyService } from '../e2ee/key-service.js';
import { withoutUnsigned } from '../e2ee/signed-keys.js';
import type { Edu } from './sender.js';

export interface LocalDevicesDeps {
  serverName: string;
  keys: Pick<KeyService, 'query' | 'claim'>;
  /** Servers (other than ours) sharing a room with the user, ACLs applied. */
  serversSharing: (userId: string) => Promise<Set<string>>;
  /** Queues the EDU durably; rejects when it was not queued. */
  sendEdu: (servers: Iterable<string>, edu: Edu) => Promise<void>;
  /** The store's completed stream position (grows across restarts). */
  position: () => number;
  logger: Logger;
}

interface DeviceView {
  keys: JsonObject;
  /** Compared, never sent. */
  name?: string;
}

interface Snapshot {
  devices: Map<string, DeviceView>;
  master?: JsonObject;
  selfSigning?: JsonObject;
}

interface UserStream {
  last: number | null;
  baseline: Snapshot | null;
  chain: Promise<unknown>;
}

const MAX_USERS = 1000;

export class LocalDeviceLists {
  private readonly users = new LRUCache<string, UserStream>({ max: 100_000 });

  constructor(private readonly d: LocalDevicesDeps) {}

  /**
   * Queues the updates for the user's stored list (diffed against what was last announced);
   * rejects when they could not be queued (DeviceListOutbox retries).
   */
  publishNow(userId: string): Promise<void> {
    if (serverNameOf(userId) !== this.d.serverName) return Promise.resolve();
    return this.serial(userId, () => this.publish(userId));
  }

  /** Resolves once every update queued so far has been handed to the sender (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.users.values()].map((u) => u.chain.catch(() => undefined)));
  }

  /** GET /_matrix/federation/v1/user/devices/{userId}. */
  async userDevices(userId: string): Promise<JsonObject> {
    this.mustBeLocal(userId);
    return this.serial(userId, async () => {
      const snap = await this.snapshot(userId);
      const st = this.stream(userId);
      if (st.last === null) {
        st.last = this.nextId(st);
        st.baseline = snap;
      }
      const out: JsonObject = {
        user_id: userId,
        stream_id: st.last,
        devices: [...snap.devices].map(([deviceId, v]) => ({ device_id: deviceId, keys: v.keys })),
      };
      if (snap.master) out.master_key = snap.master;
      if (snap.selfSigning) out.self_signing_key = snap.selfSigning;
      return out;
    });
  }

  /** POST /_matrix/federation/v1/user/keys/query: device and cross-signing keys of local users. */
  async queryKeys(body: JsonValue | undefined): Promise<JsonObject> {
    const asked = isJsonObject(body) && isJsonObject(body.device_keys) ? body.device_keys : undefined;
    if (!asked) throw new MatrixError('M_BAD_JSON', 'device_keys must be an object');
    const wanted: Record<string, string[]> = dict();
    for (const [userId, devices] of Object.entries(asked)) {
      if (serverNameOf(userId) !== this.d.serverName) continue;
      if (!Array.isArray(devices) || !devices.every((x) => typeof x === 'string')) throw new MatrixError('M_BAD_JSON', `device_keys.${userId} must be a list of device IDs`);
      wanted[userId] = devices as string[];
    }
    if (Object.keys(wanted).length > MAX_USERS) throw new MatrixError('M_LIMIT_EXCEEDED', `At most ${MAX_USERS} users per query`);
    // No requester: the user-signing keys (and signatures made with them) stay private.
    const res = await this.d.keys.query('', wanted);
    const deviceKeys: JsonObject = dict();
    if (isJsonObject(res.device_keys)) {
      for (const [userId, devices] of Object.entries(res.device_keys)) {
        const out: JsonObject = dict();
        if (isJsonObject(devices)) for (const [id, k] of Object.entries(devices)) if (isJsonObject(k)) out[id] = withoutUnsigned(k);
        deviceKeys[userId] = out;
      }
    }
    return { device_keys: deviceKeys, master_keys: res.master_keys ?? {}, self_signing_keys: res.self_signing_keys ?? {} };
  }

  /** POST /_matrix/federation/v1/user/keys/claim: one-time keys of local devices. */
  async claimKeys(body: JsonValue | undefined): Promise<JsonObject> {
    const asked = isJsonObject(body) && isJsonObject(body.one_time_keys) ? body.one_time_keys : undefined;
    if (!asked) throw new MatrixError('M_BAD_JSON', 'one_time_keys must be an object');
    const wanted: Record<string, Record<string, string>> = dict();
    let n = 0;
    for (const [userId, devices] of Object.entries(asked)) {
      if (serverNameOf(userId) !== this.d.serverName) continue;
      if (!isJsonObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) {
        throw new MatrixError('M_BAD_JSON', `one_time_keys.${userId} must map device IDs to algorithms`);
      }
      wanted[userId] = devices as Record<string, string>;
      n += Object.keys(devices).length;
    }
    if (n > MAX_USERS) throw new MatrixError('M_LIMIT_EXCEEDED', `At most ${MAX_USERS} devices per claim`);
    const res = await this.d.keys.claim(wanted);
    return { one_time_keys: res.one_time_keys ?? {} };
  }

  private mustBeLocal(userId: string): void {
    if (serverNameOf(userId) !== this.d.serverName) throw new MatrixError('M_INVALID_PARAM', 'Not a user of this server');
  }

  private stream(userId: string): UserStream {
    let st = this.users.get(userId);
    if (!st) this.users.set(userId, (st = { last: null, baseline: null, chain: Promise.resolve() }));
    return st;
  }

  private serial<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const st = this.stream(userId);
    const p = st.chain.catch(() => undefined).then(work);
    st.chain = p;
    return p;
  }

  private nextId(st: UserStream): number {
    return Math.max((st.last ?? 0) + 1, this.d.position());
  }

  private async snapshot(userId: string): Promise<Snapshot> {
    const res = await this.d.keys.query('', { [userId]: [] });
    const devices = new Map<string, DeviceView>();
    const mine = isJsonObject(res.device_keys) ? res.device_keys[userId] : undefined;
    if (isJsonObject(mine)) {
      for (const [deviceId, k] of Object.entries(mine)) {
        if (!isJsonObject(k)) continue;
        const name = isJsonObject(k.unsigned) ? k.unsigned.device_display_name : undefined;
        devices.set(deviceId, typeof name === 'string' ? { keys: withoutUnsigned(k), name } : { keys: withoutUnsigned(k) });
      }
    }
    const pick = (o: JsonValue | undefined) => (isJsonObject(o) && isJsonObject(o[userId]) ? (o[userId] as JsonObject) : undefined);
    return { devices, master: pick(res.master_keys), selfSigning: pick(res.self_signing_keys) };
  }

  /** Diffs the user's list against the baseline and sends one update per changed device. */
  private async publish(userId: string): Promise<void> {
    const now = await this.snapshot(userId);
    const st = this.stream(userId);
    const base = st.baseline;
    const edus: Edu[] = [];
    let last = st.last;
    let prev: number[] = base && last !== null ? [last] : [];
    const ids = new Set([...now.devices.keys(), ...(base?.devices.keys() ?? [])]);
    for (const deviceId of [...ids].sort()) {
      const after = now.devices.get(deviceId);
      const before = base?.devices.get(deviceId);
      if (sameDevice(after, before)) continue;
      const id = Math.max((last ?? 0) + 1, this.d.position());
      const content: JsonObject = { user_id: userId, device_id: deviceId, stream_id: id, prev_id: prev, deleted: after === undefined };
      if (after) content.keys = after.keys;
      edus.push({ edu_type: 'm.device_list_update', content });
      prev = [id];
      last = id;
    }
    if (!same(now.master, base?.master) || !same(now.selfSigning, base?.selfSigning)) {
      const content: JsonObject = { user_id: userId };
      if (now.master) content.master_key = now.master;
      if (now.selfSigning) content.self_signing_key = now.selfSigning;
      if (now.master || now.selfSigning) edus.push({ edu_type: 'm.signing_key_update', content });
    }
    if (edus.length > 0) {
      const servers = await this.d.serversSharing(userId);
      // In order, each once the previous is queued: the receiver applies them by prev_id.
      if (servers.size > 0) for (const edu of edus) await this.d.sendEdu(servers, edu);
    }
    st.baseline = now;
    st.last = last;
  }
}

function sameDevice(a: DeviceView | undefined, b: DeviceView | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.name === b.name && same(a.keys, b.keys);
}

function same(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalJson(a) === canonicalJson(b);
}
