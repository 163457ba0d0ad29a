// Builds the application-service services from the config (used by the composition root only).

import type { Logger } from 'pino';
import type { HearthConfig } from '../config/load.js';
import type { OutboundHttp } from '../net/outbound-guard.js';
import type { Store } from '../store/types.js';
import { AppServiceClient } from './client.js';
import type { DeliveryGate } from './gate.js';
import { loadRegistrations, type AppServiceRegistration } from './registration.js';
import { AppServices } from './service.js';

export { AppServiceConfigError } from './registration.js';

/** Reads and checks every registration file of the config; throws AppServiceConfigError. */
export function loadAppServiceRegistrations(config: HearthConfig): AppServiceRegistration[] {
  return loadRegistrations(config.app_services, config.server_name);
}

export function createAppServices(
  config: HearthConfig,
  registrations: AppServiceRegistration[],
  deps: { store: Store; http: OutboundHttp; logger: Logger; now: () => number; gate?: (leaseMs: number) => DeliveryGate },
): AppServices {
  const d = config.app_service_delivery;
  return new AppServices({
    registrations,
    store: deps.store,
    client: new AppServiceClient(deps.http, deps.logger, d.request_timeout_ms),
    serverName: config.server_name,
    logger: deps.logger,
    delivery: {
      minBackoffMs: d.min_backoff_ms,
      maxBackoffMs: d.max_backoff_ms,
      maxEventsPerTransaction: d.max_events_per_transaction,
      maxPending: d.max_pending_events,
    },
    deliver: d.enabled,
    // A cluster: one worker at a time delivers to each AS (only worth a lease when there is one).
    ...(d.enabled && registrations.length > 0 && deps.gate ? { gate: deps.gate(d.lease_ms) } : {}),
    now: deps.now,
  });
}
