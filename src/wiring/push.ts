// Part of the composition root (src/app.ts): the push gateway (sends to pushers) and the push
// dispatcher (turns persisted events and count changes into push jobs). Invariants: the
// dispatcher's every enqueue wakes this worker's gateway and, in a cluster, the pushers on other
// workers (pushWakeups); with push.enabled off every dispatcher hook is a no-op.

import type { Logger } from 'pino';
import type { PushWakeups } from '../cluster/roles.js';
import type { HearthConfig } from '../config/load.js';
import type { OutboundHttp } from '../net/outbound-guard.js';
import { PushDispatcher, type PushDispatcherOptions } from '../push/dispatcher.js';
import { PushGateway } from '../push/gateway.js';
import type { Store } from '../store/types.js';

export function createPush(
  config: HearthConfig,
  deps: {
    store: Store;
    http: OutboundHttp;
    logger: Logger;
    now: () => number;
    pushWakeups: PushWakeups | undefined;
  } & Pick<PushDispatcherOptions, 'isConnected' | 'isConnectedElsewhere' | 'roomInfo'>,
): { pushGateway: PushGateway; pushDispatcher: PushDispatcher } {
  const { store, http, logger, now, pushWakeups } = deps;
  const push = config.push;
  const pushGateway = new PushGateway({
    pushers: store.pushers,
    http,
    logger,
    requestTimeoutMs: push.request_timeout_ms,
    maxConcurrent: push.max_concurrent_requests,
    minBackoffMs: push.min_backoff_ms,
    maxBackoffMs: push.max_backoff_ms,
    maxAttempts: push.max_attempts,
    now,
  });
  const pushDispatcher = new PushDispatcher({
    store,
    isConnected: deps.isConnected,
    isConnectedElsewhere: deps.isConnectedElsewhere,
    roomInfo: deps.roomInfo,
    onEnqueued: () => (pushGateway.wake(), pushWakeups?.enqueued()),
    logger,
    enabled: push.enabled,
    alwaysPush: push.always_push,
    now,
  });
  return { pushGateway, pushDispatcher };
}
