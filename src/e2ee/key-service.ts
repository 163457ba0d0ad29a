// Device keys, one-time/fallback keys and their claims, and the key query (spec "End-to-end
// encryption", /keys/upload, /keys/query, /keys/claim). Hearth checks that what it relays is
// well-formed and belongs to the device that uploads it; device keys' self-signatures are for
// clients to verify (signed-keys.ts); it never holds a private key.
//
// Remote users (with federation, `remote` is set): each server is asked once per request, all
// servers in parallel, each bounded by the request's timeout; a server that fails or is too slow
// is named in `failures` and the rest of the answer stands. A server's answer is only believed
// about its own users, and each device's keys must name that user and device.

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isJsonObject, dict } from '../protocol/canonical-json.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject } from '../protocol/types.js';
import type { DeviceStore } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import type { CrossSigningKeys, E2eeStore, SignatureInput } from '../store/e2ee-types.js';
import type { Notifier } from '../sync/notifier.js';
import type { DeviceListTracker } from './device-lists.js';
import { checkDeviceKeys, parseOneTimeKeys, withoutUnsigned, type ParsedOneTimeKey } from './signed-keys.js';

export interface KeyServiceDeps {
  devices: Pick<DeviceStore, 'listDevices' | 'getDevice'>;
  e2ee: E2eeStore;
  deviceLists: DeviceListTracker;
  notifier: Notifier;
  serverName: string;
  /** The store's completed stream position (a change written before the call is at or below it). */
  currentPosition: () => number;
  logger: Logger;
}

export interface KeyUploadRequest {
  device_keys?: JsonObject;
  one_time_keys?: Record<string, unknown>;
  fallback_keys?: Record<string, unknown>;
}

/** The answer for remote users when this server has no federation. */
const UNREACHABLE = { status: 503, message: 'Federation is not enabled on this server' };
const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;
const MAX_REMOTE_TIMEOUT_MS = 30_000;

/** How remote users' keys are fetched (src/federation); answers cover only that server's users. */
export interface RemoteKeySource {
  queryKeys(server: string, wanted: Record<string, string[]>, timeoutMs: number): Promise<{ device_keys: JsonObject; master_keys: JsonObject; self_signing_keys: JsonObject }>;
  claimKeys(server: string, wanted: Record<string, Record<string, string>>, timeoutMs: number): Promise<{ one_time_keys: JsonObject }>;
}

/** Listeners hear about users whose device list changed (local or remote), after the change is stored. */
export type DeviceListListener = (userIds: string[]) => void;

export class KeyService {
  /** Set by the composition root when federation is on. */
  remote: RemoteKeySource | undefined;
  readonly listeners: DeviceListListener[] = [];

  constructor(private readonly d: KeyServiceDeps) {}

  isLocal(userId: string): boolean {
    return serverNameOf(userId) === this.d.serverName;
  }

  async upload(userId: string, deviceId: string, req: KeyUploadRequest): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { e2ee } = this.d;
    // Everything is validated before the first write, so a bad request leaves nothing behind.
    const stored = (await e2ee.getDeviceKeys([userId])).get(userId)?.get(deviceId);
    let ed25519: string | undefined;
    let deviceKeys: JsonObject | undefined;
    if (req.device_keys) {
      deviceKeys = withoutUnsigned(req.device_keys);
      // A different upload replaces the stored keys (as Synapse does) after the same checks as
      // a first one; clients notice a changed identity key of a device they know themselves.
      ed25519 = checkDeviceKeys(deviceKeys, userId, deviceId);
    } else if (stored && isJsonObject(stored.keys)) {
      const k = stored.keys[`ed25519:${deviceId}`];
      ed25519 = typeof k === 'string' ? k : undefined;
    }
    const otks = req.one_time_keys ? parseOneTimeKeys('one_time_keys', req.one_time_keys, userId, deviceId, ed25519) : [];
    const fallbacks = req.fallback_keys ? parseOneTimeKeys('fallback_keys', req.fallback_keys, userId, deviceId, ed25519) : [];
    const fallbackByAlg = new Map<string, ParsedOneTimeKey>();
    for (const f of fallbacks) {
      if (fallbackByAlg.has(f.algorithm)) throw new MatrixError('M_INVALID_PARAM', `fallback_keys: more than one ${f.algorithm} key`);
      fallbackByAlg.set(f.algorithm, f);
    }

    if (otks.length > 0) {
      try {
        await e2ee.addOneTimeKeys(userId, deviceId, otks);
      } catch (err) {
        if (err instanceof StoreConflictError) throw new MatrixError('M_INVALID_PARAM', 'One-time key ID already used with a different key');
        throw err;
      }
    }
    let listChanged = false;
    if (deviceKeys) {
      listChanged = (await e2ee.setDeviceKeys(userId, deviceId, deviceKeys)) !== 'unchanged';
    }
    for (const f of fallbackByAlg.values()) await e2ee.setFallbackKey(userId, deviceId, f.algorithm, f.keyId, f.key);
    if (listChanged) await this.announce([userId]);
    return { one_time_key_counts: { signed_curve25519: 0, ...(await e2ee.countOneTimeKeys(userId, deviceId)) } };
  }

  /** Wakes only the user's own syncs, for a change nobody else can see (the change is already stored). */
  announceToOwner(userId: string): void {
    this.d.notifier.publish({ stream: this.d.currentPosition(), userIds: [userId] });
  }

  /** Wakes everyone who must re-fetch these users' keys (the change is already stored). */
  async announce(userIds: string[]): Promise<void> {
    const stream = this.d.currentPosition();
    const lists = await Promise.all(userIds.map((u) => this.d.deviceLists.interestedIn(u)));
    this.d.notifier.publish({ stream, userIds: [...new Set(lists.flat())] });
    for (const l of this.listeners) {
      try {
        l(userIds);
      } catch (err) {
        this.d.logger.warn({ err }, 'device list listener failed');
      }
    }
  }

  /**
   * Runs `fetch` for each server in parallel, bounded by `timeoutMs`; failures are recorded per
   * server. `apply` runs only for answers that came in time (a late one changes nothing).
   */
  private async perServer<T, R>(
    byServer: Map<string, T>,
    timeoutMs: number,
    failures: JsonObject,
    fetch: (remote: RemoteKeySource, server: string, wanted: T, timeoutMs: number) => Promise<R>,
    apply: (wanted: T, answer: R) => void,
  ): Promise<void> {
    const remote = this.remote;
    await Promise.all(
      [...byServer].map(async ([server, wanted]) => {
        if (!remote) {
          failures[server] = { ...UNREACHABLE };
          return;
        }
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
        });
        try {
          apply(wanted, await Promise.race([fetch(remote, server, wanted, timeoutMs), timeout]));
        } catch (err) {
          this.d.logger.info({ err, server }, 'remote key request failed');
          const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 504;
          failures[server] = { status, message: (err as Error).message === 'timed out' ? 'Timed out' : 'The server could not be reached or refused' };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  private groupRemote<T>(entries: Array<[string, T]>): Map<string, Record<string, T>> {
    const out = new Map<string, Record<string, T>>();
    for (const [userId, v] of entries) {
      const server = serverNameOf(userId);
      if (server === undefined || server === this.d.serverName) continue;
      let rec = out.get(server);
      if (!rec) out.set(server, (rec = dict() as Record<string, T>));
      rec[userId] = v;
    }
    return out;
  }

  async query(requester: string, wanted: Record<string, string[]>, timeoutMs?: number): Promise<JsonObject> {
    const deviceKeys: JsonObject = dict();
    const masterKeys: JsonObject = dict();
    const selfSigningKeys: JsonObject = dict();
    const userSigningKeys: JsonObject = dict();
    const failures: JsonObject = dict();
    const local: string[] = [];
    for (const userId of Object.keys(wanted)) {
      if (this.isLocal(userId)) local.push(userId);
      else if (serverNameOf(userId) === undefined) failures[userId] = { status: 400, message: 'Not a user ID' };
    }
    const remoteJob = this.perServer(
      this.groupRemote(Object.entries(wanted)),
      remoteTimeout(timeoutMs),
      failures,
      (remote, server, users, t) => remote.queryKeys(server, users, t),
      (users, res) => {
        for (const userId of Object.keys(users)) {
          if (isJsonObject(res.device_keys[userId])) deviceKeys[userId] = validDevices(res.device_keys[userId], userId, users[userId]);
          if (isJsonObject(res.master_keys[userId])) masterKeys[userId] = res.master_keys[userId];
          if (isJsonObject(res.self_signing_keys[userId])) selfSigningKeys[userId] = res.self_signing_keys[userId];
        }
      },
    );
    const [keys, signatures, devices, cross] = await Promise.all([
      this.d.e2ee.getDeviceKeys(local),
      this.d.e2ee.getSignatures(local),
      Promise.all(local.map((u) => this.d.devices.listDevices(u))),
      Promise.all(local.map((u) => this.d.e2ee.getCrossSigningKeys(u))),
    ]);
    const sigs = signatureIndex(signatures, requester);
    local.forEach((userId, i) => {
      // Every requested user gets an entry, {} included: the Rust SDK re-queries users it cannot find.
      const out: JsonObject = dict();
      const only = wanted[userId].length > 0 ? new Set(wanted[userId]) : null;
      const userKeys = keys.get(userId);
      for (const dev of devices[i]) {
        const k = userKeys?.get(dev.deviceId);
        if (!k || (only && !only.has(dev.deviceId))) continue;
        const o = withSignatures(withoutUnsigned(k), sigs.get(`${userId}\0${dev.deviceId}`));
        // Always an object, as Synapse serves it: clients read unsigned.device_display_name off it.
        o.unsigned = dev.displayName !== null ? { device_display_name: dev.displayName } : {};
        out[dev.deviceId] = o;
      }
      deviceKeys[userId] = out;
      const c: CrossSigningKeys = cross[i];
      const add = (into: JsonObject, key: JsonObject | undefined) => {
        if (!key) return;
        const pub = isJsonObject(key.keys) ? Object.values(key.keys)[0] : undefined;
        into[userId] = withSignatures(withoutUnsigned(key), typeof pub === 'string' ? sigs.get(`${userId}\0${pub}`) : undefined);
      };
      add(masterKeys, c.master);
      add(selfSigningKeys, c.self_signing);
      if (userId === requester) add(userSigningKeys, c.user_signing);
    });
    await remoteJob;
    return {
      device_keys: deviceKeys,
      master_keys: masterKeys,
      self_signing_keys: selfSigningKeys,
      user_signing_keys: userSigningKeys,
      failures,
    };
  }

  async claim(wanted: Record<string, Record<string, string>>, timeoutMs?: number): Promise<JsonObject> {
    const oneTimeKeys: Record<string, JsonObject> = dict();
    const failures: JsonObject = dict();
    const jobs: Array<Promise<void>> = [
      this.perServer(
        this.groupRemote(Object.entries(wanted)),
        remoteTimeout(timeoutMs),
        failures,
        (remote, server, users, t) => remote.claimKeys(server, users, t),
        (users, res) => {
          for (const [userId, devices] of Object.entries(users)) {
            const got = res.one_time_keys[userId];
            if (!isJsonObject(got)) continue;
            const forUser: JsonObject = dict();
            for (const deviceId of Object.keys(devices)) if (isJsonObject(got[deviceId])) forUser[deviceId] = got[deviceId];
            if (Object.keys(forUser).length > 0) oneTimeKeys[userId] = forUser;
          }
        },
      ),
    ];
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!this.isLocal(userId)) {
        if (serverNameOf(userId) === undefined) failures[userId] = { status: 400, message: 'Not a user ID' };
        continue;
      }
      jobs.push(
        (async () => {
          // Only devices that still exist: a deleted device's keys must never be handed out.
          const existing = new Set((await this.d.devices.listDevices(userId)).map((x) => x.deviceId));
          await Promise.all(
            Object.entries(devices).map(async ([deviceId, algorithm]) => {
              if (!existing.has(deviceId)) return;
              const k = await this.d.e2ee.claimOneTimeKey(userId, deviceId, algorithm);
              if (!k) return;
              const forUser = (oneTimeKeys[userId] ??= dict());
              forUser[deviceId] = { [`${k.algorithm}:${k.keyId}`]: k.key };
            }),
          );
        })(),
      );
    }
    await Promise.all(jobs);
    return { one_time_keys: oneTimeKeys, failures };
  }
}

function remoteTimeout(ms: number | undefined): number {
  return ms === undefined || ms <= 0 ? DEFAULT_REMOTE_TIMEOUT_MS : Math.min(ms, MAX_REMOTE_TIMEOUT_MS);
}

/** A remote server's devices for `userId`: objects that name no other user or device (and were asked for). */
function validDevices(devices: JsonObject, userId: string, only: string[]): JsonObject {
  const out: JsonObject = dict();
  const wanted = only.length > 0 ? new Set(only) : null;
  for (const [deviceId, k] of Object.entries(devices)) {
    if (wanted && !wanted.has(deviceId)) continue;
    // Keys naming another user or device are dropped; ones naming neither are kept as the
    // user's server gave them (as Synapse): clients check user_id, device_id and signatures.
    if (isJsonObject(k) && (k.user_id === undefined || k.user_id === userId) && (k.device_id === undefined || k.device_id === deviceId)) out[deviceId] = k;
  }
  return out;
}

/**
 * Signatures by `${targetUser}\0${targetKeyId}`. A user's own signatures are public; signatures a
 * user made on someone else's key (user-signing) are only shown to that user, as Synapse does.
 */
function signatureIndex(all: SignatureInput[], requester: string): Map<string, SignatureInput[]> {
  const out = new Map<string, SignatureInput[]>();
  for (const s of all) {
    if (s.signerUserId !== s.targetUserId && s.signerUserId !== requester) continue;
    const k = `${s.targetUserId}\0${s.targetKeyId}`;
    let list = out.get(k);
    if (!list) out.set(k, (list = []));
    list.push(s);
  }
  return out;
}

function withSignatures(key: JsonObject, extra: SignatureInput[] | undefined): JsonObject {
  const sigs: Record<string, JsonObject> = dict();
  if (isJsonObject(key.signatures)) {
    for (const [u, v] of Object.entries(key.signatures)) if (isJsonObject(v)) sigs[u] = { ...v };
  }
  for (const s of extra ?? []) (sigs[s.signerUserId] ??= dict())[s.signerKeyId] = s.signature;
  // A master key may carry no signatures at all (spec: optional for the master key); such a key
  // is served as uploaded, not with an empty `signatures` object that was never part of it.
  if (Object.keys(sigs).length === 0) {
    const { signatures: _s, ...unsigned } = key;
    return unsigned;
  }
  return { ...key, signatures: sigs };
}
