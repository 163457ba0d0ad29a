// Part of the composition root (src/app.ts): what several processes must share (Redis when
// cluster.redis.url is set, else this process) and the readers fed by the change feed (the sync
// read model and the access-token cache). Invariants: a failed Redis connection closes the
// already-open store backend before the error propagates; the read model is fed only by the
// change feed, so it is exactly as current as currentPosition(); a device-list record (any
// worker's device deletion writes one) or a feed reset drops cached tokens.

import type { Logger } from 'pino';
import { memoryBackend, type RateLimitBackendFactory } from '../admission/rate-limit.js';
import type { ChangeFeed } from '../cluster/feed.js';
import { openRedisSharedState, type RedisSharedState } from '../cluster/redis.js';
import { localSharedState, type SharedState } from '../cluster/shared-state.js';
import type { HearthConfig } from '../config/load.js';
import type { StoreBackend } from '../store/types.js';
import { ReadModel } from '../sync/read-model/read-model.js';
import { AccessTokenCache } from '../users/token-cache.js';

export async function openSharedState(
  config: HearthConfig,
  backend: StoreBackend,
  logger: Logger,
  now: () => number,
): Promise<{ shared: SharedState; redis: RedisSharedState | undefined; rateLimitBackend: RateLimitBackendFactory }> {
  const redisConf = config.cluster.redis;
  if (!redisConf.url) return { shared: localSharedState(now), redis: undefined, rateLimitBackend: memoryBackend };
  try {
    const r = await openRedisSharedState({ url: redisConf.url, keyPrefix: redisConf.key_prefix, logger });
    return { shared: r, redis: r, rateLimitBackend: r.rateLimits() };
  } catch (err) {
    await backend.close();
    throw err;
  }
}

/** The read model (sync.read_model.enabled) and, with it, the checked access-token cache. */
export function createReadModel(
  config: HearthConfig,
  backend: StoreBackend,
  feed: ChangeFeed,
): { readModel: ReadModel | undefined; tokenCache: AccessTokenCache | undefined } {
  const rm = config.sync.read_model;
  if (!rm.enabled) return { readModel: undefined, tokenCache: undefined };
  const readModel = new ReadModel(backend.rooms, feed.currentPosition(), {
    changeCacheEntries: rm.change_cache_entries,
    membershipUsers: rm.membership_users,
    timelineRooms: rm.timeline_rooms,
    timelineEvents: rm.timeline_events,
  });
  feed.onChanges((changes, current) => readModel.apply(changes, current));
  const tokenCache = new AccessTokenCache();
  feed.onChanges((changes) => {
    for (const c of changes) {
      if (c.kind === 'device_list') tokenCache.dropUsers(c.userIds);
      else if (c.kind === 'reset') tokenCache.clear();
    }
  });
  return { readModel, tokenCache };
}
