// Shape checks and signature checks for the signed key objects clients upload (device keys,
// signed one-time/fallback keys, cross-signing keys). Device keys get shape checks only (see
// checkDeviceKeys). Pure: no I/O. Every failure is a
// MatrixError a route can return as is, or turn into a per-key `failures` entry.

import { MatrixError } from '../errors.js';
import { canonicalJson, isJsonObject } from '../protocol/canonical-json.js';
import { tryDecodeBase64 } from '../protocol/base64.js';
import { verifyJsonSignature } from '../protocol/crypto.js';
import type { JsonObject, JsonValue } from '../protocol/types.js';

export type CrossSigningUsage = 'master' | 'self_signing' | 'user_signing';

const KEY_ID = /^[A-Za-z0-9_.+/=-]+:[A-Za-z0-9_.+/=-]+$/;
const MAX_ID = 255;

function bad(msg: string): MatrixError {
  return new MatrixError('M_INVALID_PARAM', msg);
}

export function isEd25519PublicKey(v: unknown): v is string {
  return typeof v === 'string' && tryDecodeBase64(v)?.length === 32;
}

/** Drops `unsigned`: it is never covered by signatures and the server adds its own on the way out. */
export function withoutUnsigned(o: JsonObject): JsonObject {
  const { unsigned: _u, ...rest } = o;
  return rest;
}

/** The part of a key object its owner signed (no `signatures`, no `unsigned`), as canonical JSON. */
export function signedPart(o: JsonObject): string {
  const { signatures: _s, unsigned: _u, ...rest } = o;
  return canonicalJson(rest);
}

export function sameJson(a: JsonValue, b: JsonValue): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** `signatures[userId]` as a map of key ID to signature (only string entries). */
export function signaturesBy(o: JsonObject, userId: string): Map<string, string> {
  const out = new Map<string, string>();
  const sigs = o.signatures;
  if (!isJsonObject(sigs) || !isJsonObject(sigs[userId])) return out;
  for (const [k, v] of Object.entries(sigs[userId] as JsonObject)) if (typeof v === 'string') out.set(k, v);
  return out;
}

export function verifyBy(o: JsonObject, userId: string, keyId: string, publicKey: string): boolean {
  return verifyJsonSignature(o, userId, keyId, publicKey);
}

/** A required field missing or of the wrong shape: M_BAD_JSON, the spec's code for "missing required keys, invalid values for keys". */
function malformed(msg: string): MatrixError {
  return new MatrixError('M_BAD_JSON', msg);
}

/**
 * Checks an uploaded `device_keys` object: it belongs to the authenticated device (400
 * M_INVALID_PARAM otherwise) and has every field the DeviceKeys schema requires, with the types
 * it gives (M_BAD_JSON): `algorithms` a list of strings, `keys` a map of `<algorithm>:<id>` to
 * strings, `signatures` a map of user ID to a map of key ID to strings.
 *
 * Deliberately not checked (docs/api.md, "Device keys"): which algorithms and keys are present,
 * whether a key decodes, and the self-signature. The spec asks the device to sign its keys and
 * every client that downloads them to verify the signature and the user and device IDs; a
 * homeserver is the party those checks protect against, so checking here adds no assurance, and
 * it would refuse key algorithms the server does not know. Synapse and Dendrite store as given.
 * Returns the ed25519 key when there is one (signed one-time keys are checked against it).
 */
export function checkDeviceKeys(keys: JsonObject, userId: string, deviceId: string): string | undefined {
  if (keys.user_id !== userId) throw bad('device_keys.user_id does not match the authenticated user');
  if (keys.device_id !== deviceId) throw bad('device_keys.device_id does not match the authenticated device');
  if (!Array.isArray(keys.algorithms) || !keys.algorithms.every((a) => typeof a === 'string' && a.length <= MAX_ID)) {
    throw malformed('device_keys.algorithms must be a list of strings');
  }
  if (!isJsonObject(keys.keys)) throw malformed('device_keys.keys must be an object');
  for (const [id, v] of Object.entries(keys.keys)) {
    if (!KEY_ID.test(id) || id.length > MAX_ID || typeof v !== 'string' || v.length > 1024) throw malformed(`device_keys.keys.${id} is malformed`);
  }
  if (!isJsonObject(keys.signatures)) throw malformed('device_keys.signatures must be an object');
  for (const [signer, byKey] of Object.entries(keys.signatures)) {
    if (!isJsonObject(byKey) || !Object.values(byKey).every((sig) => typeof sig === 'string')) {
      throw malformed(`device_keys.signatures.${signer} must map key IDs to signatures`);
    }
  }
  const ed = keys.keys[`ed25519:${deviceId}`];
  return typeof ed === 'string' ? ed : undefined;
}

export interface ParsedOneTimeKey {
  algorithm: string;
  keyId: string;
  key: JsonValue;
}

/**
 * Parses `"<algorithm>:<key id>": key` entries. Keys of `signed_*` algorithms must be objects
 * signed by the device; unsigned algorithms (curve25519) are plain strings.
 */
export function parseOneTimeKeys(
  field: string,
  entries: Record<string, unknown>,
  userId: string,
  deviceId: string,
  deviceEd25519: string | undefined,
): ParsedOneTimeKey[] {
  const out: ParsedOneTimeKey[] = [];
  for (const [id, key] of Object.entries(entries)) {
    const colon = id.indexOf(':');
    if (colon <= 0 || colon === id.length - 1 || id.length > MAX_ID) throw bad(`${field}: key ID ${JSON.stringify(id)} is not <algorithm>:<id>`);
    const algorithm = id.slice(0, colon);
    const keyId = id.slice(colon + 1);
    if (algorithm.startsWith('signed_')) {
      if (!isJsonObject(key) || typeof key.key !== 'string') throw bad(`${field}.${id} must be an object with a key`);
      if (!deviceEd25519) throw bad(`${field}: upload device_keys before signed keys`);
      // Device keys are stored unverified; a signed key is only taken when the device has a real ed25519 key that signed it.
      if (!isEd25519PublicKey(deviceEd25519)) throw new MatrixError('M_INVALID_SIGNATURE', `${field}: the device keys hold no valid ed25519 key to check ${id} against`);
      if (!verifyBy(key, userId, `ed25519:${deviceId}`, deviceEd25519)) {
        throw new MatrixError('M_INVALID_SIGNATURE', `${field}.${id} is not signed by the device`);
      }
    } else if (typeof key !== 'string' && !isJsonObject(key)) {
      throw bad(`${field}.${id} must be a string or an object`);
    }
    out.push({ algorithm, keyId, key: key as JsonValue });
  }
  return out;
}

/**
 * Checks a cross-signing key's shape for `userId`: the usage, and exactly one ed25519 key whose
 * ID is its own public key. Returns the public key.
 */
export function checkCrossSigningKey(key: unknown, userId: string, usage: CrossSigningUsage, field: string): string {
  if (!isJsonObject(key)) throw bad(`${field} must be an object`);
  if (key.user_id !== userId) throw bad(`${field}.user_id must be ${userId}`);
  if (!Array.isArray(key.usage) || !key.usage.includes(usage)) throw bad(`${field}.usage must include ${usage}`);
  if (!isJsonObject(key.keys)) throw bad(`${field}.keys must be an object`);
  const entries = Object.entries(key.keys);
  if (entries.length !== 1) throw bad(`${field}.keys must hold exactly one key`);
  const [id, pub] = entries[0];
  if (!isEd25519PublicKey(pub) || id !== `ed25519:${pub}`) throw bad(`${field}.keys must be {"ed25519:<public key>": "<public key>"}`);
  return pub;
}

/** The public key of a stored (already validated) cross-signing key. */
export function crossSigningPublicKey(key: JsonObject | undefined): string | undefined {
  if (!key || !isJsonObject(key.keys)) return undefined;
  const v = Object.values(key.keys)[0];
  return typeof v === 'string' ? v : undefined;
}
