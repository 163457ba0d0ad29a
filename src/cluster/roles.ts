// A worker's roles (cluster.roles): which parts of the one binary this process runs. The config
// schema (src/config/schema.ts) refuses combinations that cannot work; this module turns the
// list into the decisions the composition root (src/app.ts) makes.
//
// Invariants:
// - `all` (the default) is every role: a single node composes exactly as before roles existed.
// - Routes: a worker always serves what every role needs (health, versions, discovery, metrics
//   behind its secret). `sync` adds /sync, the legacy /events and /initialSync (and the
//   WebSocket stream, decided in app.ts); `client_api` adds every other client route. A route a
//   worker does not serve answers 404 M_UNRECOGNIZED, as any unknown path.
// - federation_in only decides whether the federation listener is opened; the config ties it to
//   room_writer (gap filling writes rooms directly). federation_out decides whether this worker
//   sends from the shared outbound queue (every worker queues into it: src/federation/sender.ts);
//   src/cluster/destination-leases.ts keeps one sender per destination across workers.
// - Push jobs are enqueued by whichever worker persisted the event and claimed with a lease in
//   the store by any number of pushers (src/push/gateway.ts; spec/push/gateway-workers.spec.ts
//   and spec/store/cassandra-users.spec.ts show each claimed once). A pusher on another worker
//   hears of new jobs through the broadcast here (coalesced), or at worst when a due time passes.

import type { Logger } from 'pino';
import type { RouteSpec } from '../api/handlers.js';
import { WORKER_ROLES } from '../config/schema.js';
import type { Broadcast } from './shared-state.js';

export type WorkerRole = (typeof WORKER_ROLES)[number];

export class Roles {
  private readonly set: ReadonlySet<WorkerRole>;

  constructor(configured: readonly string[]) {
    this.set = new Set(configured.includes('all') ? WORKER_ROLES : (configured as WorkerRole[]));
  }

  has(role: WorkerRole): boolean {
    return this.set.has(role);
  }

  /** Every role: a single node (or a worker that does everything). */
  get all(): boolean {
    return WORKER_ROLES.every((r) => this.set.has(r));
  }

  list(): WorkerRole[] {
    return WORKER_ROLES.filter((r) => this.set.has(r));
  }

  /** Whether this worker serves a client-listener route. */
  serves(route: Pick<RouteSpec, 'path'>): boolean {
    if (ALWAYS.has(route.path)) return true;
    if (SYNC_ROUTE.test(route.path)) return this.has('sync');
    return this.has('client_api');
  }
}

const ALWAYS = new Set(['/health', '/_matrix/client/versions', '/.well-known/matrix/client', '/metrics']);
const SYNC_ROUTE = /^\/_matrix\/client\/[^/]+\/(?:sync|events|initialSync)$/;

const PUSH_CHANNEL = 'push-enqueued';
const PUSH_COALESCE_MS = 50;

/**
 * Wakes the pushers of every worker when one enqueues push jobs: at most one message per
 * PUSH_COALESCE_MS from each worker, whatever the rate of events.
 */
export class PushWakeups {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly broadcast: Broadcast,
    private readonly logger: Logger,
  ) {}

  enqueued(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.broadcast.publish(PUSH_CHANNEL, '1').catch((err: unknown) => this.logger.warn({ err }, 'could not announce push jobs to the pushers'));
    }, PUSH_COALESCE_MS);
    this.timer.unref();
  }

  listen(wake: () => void): Promise<void> {
    return this.broadcast.subscribe(PUSH_CHANNEL, () => wake());
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
