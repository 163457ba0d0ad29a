// Device keys, one-time/fallback keys and their claims, and the key query (spec "End-to-end
// encryption", /keys/upload, /keys/query, /keys/claim). Hearth only checks that what it relays
// is well-formed and signed by the key it claims; it never holds a private key.

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
import { checkDeviceKeys, parseOneTimeKeys, sameJson, withoutUnsigned, type ParsedOneTimeKey } from './signed-keys.js';

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

/** What federation would answer for an unreachable server (there is no federation yet). */
const UNREACHABLE = { status: 503, message: 'Federation is not enabled on this server' };

export class KeyService {
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
      ed25519 = checkDeviceKeys(deviceKeys, userId, deviceId);
      if (stored && !sameJson(withoutUnsigned(stored), deviceKeys)) {
        throw new MatrixError('M_INVALID_PARAM', 'Device keys cannot be changed once uploaded; log in as a new device');
      }
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
      const r = await e2ee.setDeviceKeys(userId, deviceId, deviceKeys);
      if (r === 'conflict') throw new MatrixError('M_INVALID_PARAM', 'Device keys cannot be changed once uploaded; log in as a new device');
      listChanged = r === 'stored';
    }
    for (const f of fallbackByAlg.values()) await e2ee.setFallbackKey(userId, deviceId, f.algorithm, f.keyId, f.key);
    if (listChanged) await this.announce([userId]);
    return { one_time_key_counts: { signed_curve25519: 0, ...(await e2ee.countOneTimeKeys(userId, deviceId)) } };
  }

  /** Wakes everyone who must re-fetch these users' keys (the change is already stored). */
  async announce(userIds: string[]): Promise<void> {
    const stream = this.d.currentPosition();
    const lists = await Promise.all(userIds.map((u) => this.d.deviceLists.interestedIn(u)));
    this.d.notifier.publish({ stream, userIds: [...new Set(lists.flat())] });
  }

  async query(requester: string, wanted: Record<string, string[]>): Promise<JsonObject> {
    const deviceKeys: JsonObject = dict();
    const masterKeys: JsonObject = dict();
    const selfSigningKeys: JsonObject = dict();
    const userSigningKeys: JsonObject = dict();
    const failures: JsonObject = dict();
    const local: string[] = [];
    for (const userId of Object.keys(wanted)) {
      if (this.isLocal(userId)) local.push(userId);
      else failures[serverNameOf(userId) ?? userId] = { ...UNREACHABLE };
    }
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
        if (dev.displayName !== null) o.unsigned = { device_display_name: dev.displayName };
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
    return {
      device_keys: deviceKeys,
      master_keys: masterKeys,
      self_signing_keys: selfSigningKeys,
      user_signing_keys: userSigningKeys,
      failures,
    };
  }

  async claim(wanted: Record<string, Record<string, string>>): Promise<JsonObject> {
    const oneTimeKeys: Record<string, JsonObject> = dict();
    const failures: JsonObject = dict();
    const jobs: Array<Promise<void>> = [];
    for (const [userId, devices] of Object.entries(wanted)) {
      if (!this.isLocal(userId)) {
        failures[serverNameOf(userId) ?? userId] = { ...UNREACHABLE };
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
  return { ...key, signatures: sigs };
}
