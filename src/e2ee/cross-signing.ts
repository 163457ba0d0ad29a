// Cross-signing keys (/keys/device_signing/upload) and signatures (/keys/signatures/upload).
// Self-signing and user-signing keys must carry a valid master-key signature, and every signature
// uploaded through /keys/signatures/upload is verified against the key that supposedly made it.
// Other signatures embedded in an uploaded key are relayed as given (clients verify them anyway).

import { MatrixError } from '../errors.js';
import { isJsonObject, dict } from '../protocol/canonical-json.js';
import type { JsonObject } from '../protocol/types.js';
import type { DeviceStore } from '../store/types.js';
import type { CrossSigningKeys, E2eeStore, SignatureInput } from '../store/e2ee-types.js';
import type { KeyService } from './key-service.js';
import {
  checkCrossSigningKey,
  crossSigningPublicKey,
  sameJson,
  signaturesBy,
  signedPart,
  verifyBy,
  withoutUnsigned,
  type CrossSigningUsage,
} from './signed-keys.js';

export interface CrossSigningUploadRequest {
  master_key?: unknown;
  self_signing_key?: unknown;
  user_signing_key?: unknown;
}

const FIELDS: Array<[keyof CrossSigningUploadRequest, keyof CrossSigningKeys, CrossSigningUsage]> = [
  ['master_key', 'master', 'master'],
  ['self_signing_key', 'self_signing', 'self_signing'],
  ['user_signing_key', 'user_signing', 'user_signing'],
];

export class CrossSigningService {
  constructor(
    private readonly e2ee: E2eeStore,
    private readonly devices: Pick<DeviceStore, 'listDevices'>,
    private readonly keys: KeyService,
  ) {}

  /**
   * Validates and stores cross-signing keys. `authorize` (user-interactive auth) is only run when
   * the request would replace existing keys: the first upload and an identical re-upload need
   * none (MSC3967, as Synapse).
   */
  async upload(userId: string, req: CrossSigningUploadRequest, authorize: () => Promise<void>): Promise<void> {
    const existing = await this.e2ee.getCrossSigningKeys(userId);
    const given: CrossSigningKeys = {};
    const publicKeys: string[] = [];
    for (const [field, slot, usage] of FIELDS) {
      const k = req[field];
      if (k === undefined) continue;
      publicKeys.push(checkCrossSigningKey(k, userId, usage, field));
      given[slot] = withoutUnsigned(k as JsonObject);
    }
    const master = given.master ?? existing.master;
    const masterPub = crossSigningPublicKey(master);
    for (const slot of ['self_signing', 'user_signing'] as const) {
      const k = given[slot];
      if (!k) continue;
      if (!master || !masterPub) throw new MatrixError('M_MISSING_PARAM', 'No master key is available');
      if (!verifyBy(k, userId, `ed25519:${masterPub}`, masterPub)) {
        throw new MatrixError('M_INVALID_SIGNATURE', `The ${slot} key is not signed by the master key`);
      }
    }
    // A cross-signing key that looks like a device ID would make key IDs ambiguous (spec 403).
    const deviceIds = new Set((await this.devices.listDevices(userId)).map((d) => d.deviceId));
    if (publicKeys.some((p) => deviceIds.has(p))) throw new MatrixError('M_FORBIDDEN', 'Key ID in use by a device');

    const slots = Object.keys(given) as Array<keyof CrossSigningKeys>;
    if (slots.length === 0) return;
    const identical = slots.every((s) => existing[s] !== undefined && sameJson(withoutUnsigned(existing[s]!), given[s]!));
    if (identical) return;
    if (existing.master) await authorize();
    await this.e2ee.setCrossSigningKeys(userId, given);
    // A user-signing key is only ever shown to its owner, so only the owner is woken for one
    // (the store records such a change for the owner alone, too).
    const changed = slots.filter((s) => existing[s] === undefined || !sameJson(withoutUnsigned(existing[s]!), given[s]!));
    if (changed.every((s) => s === 'user_signing')) this.keys.announceToOwner(userId);
    else await this.keys.announce([userId]);
  }

  /** Returns per-key failures; every signature that verified is stored. */
  async uploadSignatures(signer: string, body: Record<string, unknown>): Promise<{ failures: Record<string, JsonObject> }> {
    const failures: Record<string, JsonObject> = dict();
    const accepted: SignatureInput[] = [];
    const mine = await this.e2ee.getCrossSigningKeys(signer);
    const targets = Object.keys(body).filter((u) => this.keys.isLocal(u));
    const [deviceKeys, cross, known] = await Promise.all([
      this.e2ee.getDeviceKeys([...new Set([signer, ...targets])]),
      Promise.all(targets.map(async (u) => [u, await this.e2ee.getCrossSigningKeys(u)] as const)),
      this.e2ee.getSignatures(targets),
    ]);
    // Signatures already held count as present: clients re-send what /keys/query showed them.
    const knownSig = new Set(known.map((k) => `${k.targetUserId}\0${k.targetKeyId}\0${k.signerUserId}\0${k.signerKeyId}\0${k.signature}`));
    const crossOf = new Map(cross);
    const myDeviceKey = (deviceId: string): string | undefined => {
      const k = deviceKeys.get(signer)?.get(deviceId)?.keys;
      const v = isJsonObject(k) ? k[`ed25519:${deviceId}`] : undefined;
      return typeof v === 'string' ? v : undefined;
    };
    const sskPub = crossSigningPublicKey(mine.self_signing);
    const uskPub = crossSigningPublicKey(mine.user_signing);

    for (const [targetUser, keys] of Object.entries(body)) {
      if (!isJsonObject(keys)) {
        failures[targetUser] = { '*': { errcode: 'M_INVALID_PARAM', error: 'Expected an object of key ID to signed key' } };
        continue;
      }
      for (const [keyId, signed] of Object.entries(keys)) {
        try {
          if (!isJsonObject(signed)) throw new MatrixError('M_INVALID_PARAM', 'Expected a signed key object');
          if (!this.keys.isLocal(targetUser)) throw new MatrixError('M_NOT_FOUND', 'Unknown key (no federation)');
          const targetCross = crossOf.get(targetUser) ?? {};
          const masterPub = crossSigningPublicKey(targetCross.master);
          let stored: JsonObject | undefined;
          let signerKey: (signerKeyId: string) => string | undefined;
          if (targetUser === signer && keyId === masterPub) {
            // The user's own master key, signed by one of their devices.
            stored = targetCross.master;
            signerKey = (id) => (id.startsWith('ed25519:') ? myDeviceKey(id.slice(8)) : undefined);
          } else if (targetUser === signer) {
            // One of the user's devices, signed by their self-signing key.
            stored = deviceKeys.get(signer)?.get(keyId);
            if (stored && !sskPub) throw new MatrixError('M_INVALID_SIGNATURE', 'No self-signing key has been uploaded');
            signerKey = (id) => (sskPub && id === `ed25519:${sskPub}` ? sskPub : undefined);
          } else {
            // Someone else's master key, signed by the user's user-signing key.
            stored = keyId === masterPub ? targetCross.master : undefined;
            if (stored && !uskPub) throw new MatrixError('M_INVALID_SIGNATURE', 'No user-signing key has been uploaded');
            signerKey = (id) => (uskPub && id === `ed25519:${uskPub}` ? uskPub : undefined);
          }
          if (!stored) throw new MatrixError('M_NOT_FOUND', 'Unknown key');
          if (signedPart(signed) !== signedPart(stored)) throw new MatrixError('M_INVALID_SIGNATURE', 'The signed object does not match the stored key');
          const already = signaturesBy(stored, signer);
          const fresh = [...signaturesBy(signed, signer)].filter(
            ([id, sig]) => already.get(id) !== sig && !knownSig.has(`${targetUser}\0${keyId}\0${signer}\0${id}\0${sig}`),
          );
          if (fresh.length === 0) throw new MatrixError('M_INVALID_SIGNATURE', `No new signature by ${signer}`);
          const ok: SignatureInput[] = [];
          for (const [signerKeyId, signature] of fresh) {
            const pub = signerKey(signerKeyId);
            if (!pub) throw new MatrixError('M_INVALID_SIGNATURE', `${signerKeyId} may not sign this key`);
            if (!verifyBy(signed, signer, signerKeyId, pub)) throw new MatrixError('M_INVALID_SIGNATURE', `Invalid signature by ${signerKeyId}`);
            ok.push({ targetUserId: targetUser, targetKeyId: keyId, signerUserId: signer, signerKeyId, signature });
          }
          accepted.push(...ok);
        } catch (err) {
          if (!(err instanceof MatrixError)) throw err;
          (failures[targetUser] ??= dict())[keyId] = { errcode: err.errcode, error: err.message };
        }
      }
    }
    if (accepted.length > 0) {
      await this.e2ee.addSignatures(accepted);
      await this.keys.announce([...new Set(accepted.map((s) => s.targetUserId))]);
    }
    return { failures };
  }
}
