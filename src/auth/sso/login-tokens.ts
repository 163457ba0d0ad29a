// Login tokens (spec m.login.token): what single sign-on hands the browser to give to the client,
// which exchanges it at POST /login for an access token.
//
// Invariants:
// - A token is spent at most once, across every process: they live in the shared ExpiringMap
//   (Redis in a cluster) and are redeemed with its atomic take().
// - A token is good for LOGIN_TOKEN_TTL_MS (two minutes, as Synapse) after it was issued; the map
//   drops it then, and a stale one is refused even if a map were to keep it longer.
// - Only a digest of the token is used as the key, so the map's contents (a Redis dump) are no
//   use for logging in.

import { createHash, randomBytes } from 'node:crypto';
import type { ExpiringMap } from '../../cluster/shared-state.js';

export const LOGIN_TOKEN_TTL_MS = 2 * 60_000;

interface Entry {
  userId: string;
  expires: number;
}

function keyOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class LoginTokens {
  constructor(
    private readonly map: ExpiringMap,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = LOGIN_TOKEN_TTL_MS,
  ) {}

  /** A fresh token for this user. URL-safe: it goes into a query string as it is. */
  async issue(userId: string): Promise<string> {
    const token = `hlt_${randomBytes(24).toString('base64url')}`;
    const entry: Entry = { userId, expires: this.now() + this.ttlMs };
    await this.map.set(keyOf(token), JSON.stringify(entry), this.ttlMs);
    return token;
  }

  /** The user the token was issued to, spending it; null if unknown, spent or expired. */
  async redeem(token: string): Promise<string | null> {
    if (token.length === 0 || token.length > 256) return null;
    const raw = await this.map.take(keyOf(token));
    if (raw === undefined) return null;
    const entry = JSON.parse(raw) as Entry;
    return entry.expires > this.now() ? entry.userId : null;
  }
}
