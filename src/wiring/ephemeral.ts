// Part of the composition root (src/app.ts): typing and presence on the ephemeral stream.
// Invariants: both are replicated through Redis in a cluster and purely local (no publishing at
// all) otherwise; both listen for other workers' updates before this function returns.

import type { Logger } from 'pino';
import type { SharedState } from '../cluster/shared-state.js';
import type { HearthConfig } from '../config/load.js';
import { PresenceService } from '../ephemeral/presence.js';
import type { EphemeralStream } from '../ephemeral/stream.js';
import { TypingService } from '../ephemeral/typing.js';
import type { Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';

export async function createEphemeral(
  config: HearthConfig,
  deps: { stream: EphemeralStream; notifier: Notifier; shared: SharedState; store: Store; logger: Logger; now: () => number },
): Promise<{ typing: TypingService; presence: PresenceService }> {
  const { stream, notifier, shared, store, logger, now } = deps;
  const cluster = shared.kind === 'redis' ? { broadcast: shared.broadcast, logger } : undefined;
  const typing = new TypingService(stream, notifier, cluster);
  await typing.listen();
  const presence = new PresenceService(
    {
      enabled: config.presence.enabled,
      idleTimeoutMs: config.presence.idle_timeout_ms,
      offlineTimeoutMs: config.presence.offline_timeout_ms,
    },
    {
      stream,
      notifier,
      roomsOf: async (userId) => (await store.rooms.getRoomsForUser(userId, ['join'])).map((m) => m.roomId),
      now,
      cluster,
    },
  );
  await presence.listen();
  return { typing, presence };
}
