// Access tokens already checked, so an authenticated request (every /sync long-poll, every
// socket request frame) costs no store read once its token was seen. Keyed by the token's hash,
// never the token itself.
//
// Invariants:
// - Bound: `maxEntries` tokens, least recently used dropped first, and each entry lives at most
//   `ttlMs` after it was read from the store: that is the longest a revocation missed by every
//   path below can go unseen.
// - A user's entries are dropped (a) by this process when it deletes the user's devices or tokens,
//   before that call returns, (b) by every device-list change record of the user through the
//   change feed (the completion hook on one node, the replication stream in a cluster: a device
//   deletion always records one; a reset record drops everything).
// - A store answer is kept only when no drop happened while it was being read, so a lookup that
//   overlapped a logout cannot put the revoked token back.
// - Guest tokens are not kept: upgrading a guest changes what the token means.
// - A deletion that writes no device-list record (none in this codebase: `deleteAccessToken` has
//   no caller, every revocation deletes the device) or a record that never arrives (a cluster's
//   Redis down) is seen within `ttlMs`: a socket revoked that way answers M_UNKNOWN_TOKEN and
//   closes within ttlMs, not on its very next request frame (src/cluster/revocation.ts).

import { LRUCache } from 'lru-cache';
import type { AccessTokenInfo } from '../store/types.js';

export interface TokenCacheStats {
  name: string;
  size: number;
  bound: number;
  hits: number;
  misses: number;
}

export class AccessTokenCache {
  private readonly entries: LRUCache<string, AccessTokenInfo>;
  /** userId -> hashes of that user's cached tokens (to drop them without a scan). */
  private readonly byUser = new Map<string, Set<string>>();
  /** Bumped by every drop: a store read that overlapped one is not kept. */
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(
    readonly maxEntries = 100_000,
    readonly ttlMs = 60_000,
  ) {
    this.entries = new LRUCache({
      max: maxEntries,
      ttl: ttlMs,
      // Keeps byUser in step whatever removes an entry (eviction, expiry, drop).
      dispose: (v, k) => {
        const set = this.byUser.get(v.userId);
        if (!set) return;
        set.delete(k);
        if (set.size === 0) this.byUser.delete(v.userId);
      },
    });
  }

  /** The token's owner, from memory when known, else from `load` (kept if nothing was dropped meanwhile). */
  async lookup(tokenHash: string, load: (tokenHash: string) => Promise<AccessTokenInfo | null>): Promise<AccessTokenInfo | null> {
    const hit = this.entries.get(tokenHash);
    if (hit) {
      this.hits++;
      return hit;
    }
    this.misses++;
    const epoch = this.epoch;
    const owner = await load(tokenHash);
    if (owner && !owner.isGuest && epoch === this.epoch) {
      const kept: AccessTokenInfo = { userId: owner.userId, deviceId: owner.deviceId, isGuest: false };
      this.entries.set(tokenHash, kept);
      let set = this.byUser.get(owner.userId);
      if (!set) this.byUser.set(owner.userId, (set = new Set()));
      set.add(tokenHash);
    }
    return owner;
  }

  /** Forgets every cached token of these users (their devices or tokens changed). */
  dropUsers(userIds: Iterable<string>): void {
    this.epoch++;
    for (const u of userIds) {
      const set = this.byUser.get(u);
      if (!set) continue;
      for (const h of [...set]) this.entries.delete(h);
      this.byUser.delete(u);
    }
  }

  /** Forgets everything (the change stream was reset). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.byUser.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): TokenCacheStats {
    return { name: 'access_tokens', size: this.entries.size, bound: this.maxEntries, hits: this.hits, misses: this.misses };
  }
}
