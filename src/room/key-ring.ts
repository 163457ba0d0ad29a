// Where room input gets the public keys to check PDU signatures with. With federation on,
// RemoteKeyRing (src/federation/keys.ts) fetches and caches other servers' keys (notaries,
// validity periods); StaticKeyRing answers from a fixed table, which for a server without
// federation holds only its own key, so events signed by any other server fail the check.
//
// Invariant: a KeyRing never throws for an unknown server or key; it answers null, and the
// caller treats that as a failed signature.

import type { VerifyKey } from '../protocol/crypto.js';
import { publicKeyObject } from '../protocol/crypto.js';
import type { SigningKey } from '../protocol/types.js';

export interface KeyRing {
  /** The key `serverName` published as `keyId`, if it was valid at `atTs` (origin_server_ts). */
  verifyKey(serverName: string, keyId: string, atTs: number): Promise<VerifyKey | null>;
}

/** A fixed table of server -> key ID -> public key. */
export class StaticKeyRing implements KeyRing {
  private readonly keys = new Map<string, Map<string, VerifyKey>>();

  constructor(entries: Iterable<{ serverName: string; keyId: string; publicKey: Uint8Array }> = []) {
    for (const e of entries) this.add(e.serverName, e.keyId, e.publicKey);
  }

  /** This server's own signing keys (current and old). */
  static forServer(serverName: string, keys: SigningKey[]): StaticKeyRing {
    return new StaticKeyRing(keys.map((k) => ({ serverName, keyId: k.keyId, publicKey: k.publicKey })));
  }

  add(serverName: string, keyId: string, publicKey: Uint8Array): void {
    let byId = this.keys.get(serverName);
    if (!byId) this.keys.set(serverName, (byId = new Map()));
    byId.set(keyId, publicKeyObject(publicKey));
  }

  async verifyKey(serverName: string, keyId: string): Promise<VerifyKey | null> {
    return this.keys.get(serverName)?.get(keyId) ?? null;
  }
}
