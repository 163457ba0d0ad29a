// Ed25519 JSON signing (spec appendices, "Signing JSON") on node:crypto only.
import {
  createPrivateKey,
  hash,
  createPublicKey,
  randomBytes,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
} from 'node:crypto';
import { decodeBase64, encodeBase64, tryDecodeBase64 } from './base64.js';
import { canonicalJson, isJsonObject } from './canonical-json.js';
import type { JsonObject, LooseJsonObject, SigningKey } from './types.js';

// node:crypto only takes DER for raw Ed25519 keys; these are the fixed ASN.1 headers (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

// The KeyObject is cached on the SigningKey itself, non-enumerable so it never leaks into JSON
// or structural comparisons.
const PRIVATE_KEY_OBJECT = Symbol('hearth.ed25519.privateKeyObject');
type WithCache = SigningKey & { [PRIVATE_KEY_OBJECT]?: KeyObject };

export const KEY_VERSION_PATTERN = /^[a-zA-Z0-9_]+$/;

export class SigningError extends Error {
  override name = 'SigningError';
}

function privateKeyObjectFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new SigningError('ed25519 seed must be 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function privateKeyObject(key: SigningKey): KeyObject {
  const k = key as WithCache;
  const cached = k[PRIVATE_KEY_OBJECT];
  if (cached) return cached;
  const obj = privateKeyObjectFromSeed(key.seed);
  if (Object.isExtensible(key)) {
    Object.defineProperty(key, PRIVATE_KEY_OBJECT, { value: obj, enumerable: false });
  }
  return obj;
}

/** Builds a verification KeyObject; callers verifying many signatures should keep it. */
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new SigningError('ed25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

export function signingKeyFromSeed(seed: Uint8Array, keyId: string): SigningKey {
  if (!keyId.startsWith('ed25519:') || !KEY_VERSION_PATTERN.test(keyId.slice(8))) {
    throw new SigningError(`invalid key id ${JSON.stringify(keyId)}`);
  }
  const priv = privateKeyObjectFromSeed(seed);
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const key: SigningKey = {
    keyId,
    seed: new Uint8Array(seed),
    publicKey: new Uint8Array(spki.subarray(SPKI_ED25519_PREFIX.length)),
  };
  Object.defineProperty(key, PRIVATE_KEY_OBJECT, { value: priv, enumerable: false });
  return key;
}

/** A fresh random key with id `ed25519:<version>`. */
export function generateSigningKey(version: string): SigningKey {
  return signingKeyFromSeed(randomBytes(32), `ed25519:${version}`);
}

/** Unpadded base64 of the public key, as published under `verify_keys`. */
export function publicKeyBase64(key: SigningKey): string {
  return encodeBase64(key.publicKey);
}

export function signBytes(key: SigningKey, data: Uint8Array | string): Uint8Array {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return new Uint8Array(edSign(null, buf, privateKeyObject(key)));
}

export type VerifyKey = Uint8Array | string | KeyObject;

function toKeyObject(publicKey: VerifyKey): KeyObject | undefined {
  if (typeof publicKey === 'string') {
    const bytes = tryDecodeBase64(publicKey);
    return bytes && bytes.length === 32 ? publicKeyObject(bytes) : undefined;
  }
  if (publicKey instanceof Uint8Array) return publicKey.length === 32 ? publicKeyObject(publicKey) : undefined;
  return publicKey;
}

/** Never throws: malformed keys or signatures simply fail verification. */
export function verifyBytes(publicKey: VerifyKey, data: Uint8Array | string, signature: Uint8Array | string): boolean {
  try {
    const keyObj = toKeyObject(publicKey);
    const sig = typeof signature === 'string' ? decodeBase64(signature) : signature;
    if (!keyObj || sig.length !== 64) return false;
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return edVerify(null, buf, keyObj, sig);
  } catch {
    return false;
  }
}

/** The exact bytes covered by a JSON signature: canonical JSON minus `signatures` and `unsigned`. */
export function jsonSigningInput(obj: LooseJsonObject): string {
  const { signatures: _s, unsigned: _u, ...rest } = obj;
  return canonicalJson(rest);
}

/**
 * Returns a copy of `obj` with this server's signature added; signatures by other servers or
 * other keys are preserved. `unsigned` is left in place but is not covered by the signature.
 */
export function signJson<T extends LooseJsonObject>(obj: T, serverName: string, key: SigningKey): T {
  const sig = encodeBase64(signBytes(key, jsonSigningInput(obj)));
  const existing = isJsonObject(obj.signatures) ? obj.signatures : {};
  const mine = isJsonObject(existing[serverName]) ? (existing[serverName] as JsonObject) : {};
  return {
    ...obj,
    signatures: { ...existing, [serverName]: { ...mine, [key.keyId]: sig } },
  } as T;
}

/** True iff `obj.signatures[serverName][keyId]` is a valid signature by `publicKey`. */
export function verifyJsonSignature(obj: LooseJsonObject, serverName: string, keyId: string, publicKey: VerifyKey): boolean {
  const sigs = obj.signatures;
  if (!isJsonObject(sigs)) return false;
  const byServer = sigs[serverName];
  if (!isJsonObject(byServer)) return false;
  const sig = byServer[keyId];
  if (typeof sig !== 'string') return false;
  let input: string;
  try {
    input = jsonSigningInput(obj);
  } catch {
    return false;
  }
  return verifyBytes(publicKey, input, sig);
}

/** The ed25519 key ids `serverName` signed `obj` with. */
export function signatureKeyIds(obj: LooseJsonObject, serverName: string): string[] {
  const sigs = obj.signatures;
  if (!isJsonObject(sigs) || !isJsonObject(sigs[serverName])) return [];
  return Object.keys(sigs[serverName] as JsonObject).filter((k) => k.startsWith('ed25519:'));
}

// crypto.hash is the one-shot digest (no Hash object per call): two to three per send.
export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(hash('sha256', data, 'buffer'));
}

/** Unpadded standard base64 of SHA-256(data); strings are hashed as UTF-8. */
export function sha256Base64(data: Uint8Array | string): string {
  // 32 bytes are 44 base64 characters, the last one padding.
  return hash('sha256', data, 'base64').slice(0, 43);
}
