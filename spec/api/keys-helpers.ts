// Test fixtures for the E2EE suites: real ed25519 keys (node:crypto) and properly signed device
// keys, one-time keys, fallback keys and cross-signing keys, as a client would upload them.

import { randomBytes } from 'node:crypto';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { jsonSigningInput, signBytes, signingKeyFromSeed } from '../../src/protocol/crypto.js';
import type { JsonObject, SigningKey } from '../../src/protocol/types.js';
import { PASSWORD, type User } from '../helpers/fixtures.js';
import { Api } from '../helpers/server.js';

export { PASSWORD, type User };

export function newKey(): SigningKey {
  // The key ID is only a label for signingKeyFromSeed; signatures are filed under the ID we choose.
  return signingKeyFromSeed(randomBytes(32), 'ed25519:test');
}

export const pub = (k: SigningKey): string => encodeBase64(k.publicKey);

/** Adds `signatures[userId][keyId]` over the object's signed part (canonical JSON). */
export function sign(obj: JsonObject, userId: string, keyId: string, key: SigningKey): JsonObject {
  const sig = encodeBase64(signBytes(key, jsonSigningInput(obj)));
  const sigs = { ...((obj.signatures as Record<string, JsonObject>) ?? {}) };
  sigs[userId] = { ...(sigs[userId] ?? {}), [keyId]: sig };
  return { ...obj, signatures: sigs };
}

/** A client device: its ed25519 identity, signed device keys and signed one-time keys. */
export class TestDevice {
  readonly ed = newKey();
  readonly curve = encodeBase64(randomBytes(32));
  private next = 0;

  constructor(readonly userId: string, readonly deviceId: string) {}

  get keyId(): string {
    return `ed25519:${this.deviceId}`;
  }

  deviceKeys(extra: JsonObject = {}): JsonObject {
    return sign(
      {
        user_id: this.userId,
        device_id: this.deviceId,
        algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
        keys: { [`curve25519:${this.deviceId}`]: this.curve, [`ed25519:${this.deviceId}`]: pub(this.ed) },
        ...extra,
      },
      this.userId,
      this.keyId,
      this.ed,
    );
  }

  signedKey(extra: JsonObject = {}): JsonObject {
    return sign({ key: encodeBase64(randomBytes(32)), ...extra }, this.userId, this.keyId, this.ed);
  }

  /** `n` fresh signed_curve25519 one-time keys with sequential IDs. */
  otks(n: number): Record<string, JsonObject> {
    const out: Record<string, JsonObject> = {};
    for (let i = 0; i < n; i++) out[`signed_curve25519:K${String(this.next++).padStart(4, '0')}`] = this.signedKey();
    return out;
  }

  fallback(id: string): Record<string, JsonObject> {
    return { [`signed_curve25519:${id}`]: this.signedKey({ fallback: true }) };
  }
}

/** Master, self-signing and user-signing keys of a user, signed as the spec requires. */
export class CrossSigning {
  readonly master = newKey();
  readonly selfSigning = newKey();
  readonly userSigning = newKey();

  constructor(readonly userId: string) {}

  id(k: SigningKey): string {
    return `ed25519:${pub(k)}`;
  }

  private key(k: SigningKey, usage: string): JsonObject {
    return { user_id: this.userId, usage: [usage], keys: { [this.id(k)]: pub(k) } };
  }

  masterKey(): JsonObject {
    return this.key(this.master, 'master');
  }

  selfSigningKey(signer: SigningKey = this.master): JsonObject {
    return sign(this.key(this.selfSigning, 'self_signing'), this.userId, this.id(this.master), signer);
  }

  userSigningKey(signer: SigningKey = this.master): JsonObject {
    return sign(this.key(this.userSigning, 'user_signing'), this.userId, this.id(this.master), signer);
  }

  all(): JsonObject {
    return { master_key: this.masterKey(), self_signing_key: this.selfSigningKey(), user_signing_key: this.userSigningKey() };
  }
}

export async function uploadDevice(u: User, dev: TestDevice, otks = 0, body: JsonObject = {}): Promise<any> {
  const res = await u.post('/_matrix/client/v3/keys/upload', { device_keys: dev.deviceKeys(), one_time_keys: dev.otks(otks), ...body });
  if (res.status !== 200) throw new Error(`keys/upload: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/** A fresh /sync token for the user (initial sync, timeout 0). */
export async function syncToken(u: Api): Promise<string> {
  const res = await u.get('/_matrix/client/v3/sync?timeout=0');
  if (res.status !== 200) throw new Error(`sync: ${res.status}`);
  return res.body.next_batch;
}

export const passwordAuth = (u: User, session?: string): JsonObject => ({
  type: 'm.login.password',
  identifier: { type: 'm.id.user', user: u.userId },
  password: PASSWORD,
  ...(session ? { session } : {}),
});

/** Logs in as an existing user with a new (or given) device. */
export async function login(base: string, user: string, extra: JsonObject = {}): Promise<User> {
  const r = await new Api(base).post('/_matrix/client/v3/login', {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user },
    password: PASSWORD,
    ...extra,
  });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
  return Object.assign(new Api(base, r.body.access_token), { userId: r.body.user_id as string, deviceId: r.body.device_id as string });
}

export const expectError = (r: { status: number; body: any }, status: number, errcode: string): void => {
  if (r.status !== status || r.body?.errcode !== errcode || typeof r.body?.error !== 'string') {
    throw new Error(`expected ${status} ${errcode}, got ${r.status} ${JSON.stringify(r.body)}`);
  }
};
