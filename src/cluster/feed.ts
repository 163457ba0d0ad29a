// The change feed readers follow: the store's completion hook on one node, or the replication
// stream in a cluster (a shared backend plus Redis). Composition picks one; the read model, sync
// waiters and every `store.currentPosition()` reader see only the feed.

import type { Logger } from 'pino';
import type { ChangeListener } from '../store/stream-id.js';
import { isSharedBackend, type Store, type StoreBackend } from '../store/types.js';
import type { RedisSharedState } from './redis.js';
import { ReplicationStream } from './replication.js';

export interface ChangeFeed {
  onChanges(listener: ChangeListener): () => void;
  currentPosition(): number;
}

export async function openChangeFeed(
  backend: StoreBackend,
  redis: RedisSharedState | undefined,
  logger: Logger,
): Promise<{ feed: ChangeFeed; replication?: ReplicationStream }> {
  if (!isSharedBackend(backend)) return { feed: backend };
  if (!redis) {
    logger.warn(
      { workerId: backend.workerId },
      'shared storage backend without cluster.redis.url: this process sees only its own writes; run one worker only',
    );
    return { feed: backend };
  }
  const replication = new ReplicationStream({
    redis: redis.client,
    reader: redis.duplicate('replication reader'),
    key: `${redis.prefix}replication`,
    local: backend,
    logger,
  });
  await replication.start();
  backend.setPositionGate((pos) => replication.waitForLocal(pos));
  logger.info({ workerId: backend.workerId, workers: replication.liveWorkers() }, 'replication stream joined');
  return { feed: replication, replication };
}

/** The store as readers see it: `currentPosition()` is the feed's (the cluster watermark). */
export function withFeedPosition(store: Store, feed: ChangeFeed): Store {
  if ((feed as unknown) === store) return store;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'currentPosition') return () => feed.currentPosition();
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
