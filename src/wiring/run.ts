// Part of the composition root (src/app.ts): starting and stopping what createHearth built. Nothing
// here constructs a service; it opens the listeners and starts the background parts, and on stop
// takes them down in dependency order. Invariants: the metrics port opens before the client port,
// so a clash stops start-up before clients can connect, and a failed start closes every listener
// it opened; one SQLite file has one server (pid file beside it); stop answers parked long-polls,
// lets requests in flight (sends being committed) finish, then cuts every connection, drains the
// room writers and the push dispatcher, and closes the store last.

import type { Server } from 'node:http';
import type { Logger } from 'pino';
import type { Admission } from '../admission/admission.js';
import type { HttpApp, HttpOptions, Lifecycle } from '../api/http.js';
import type { ApiServices } from '../api/routing.js';
import type { createAppServices } from '../appservice/index.js';
import type { SsoServices } from '../auth/sso/index.js';
import type { RedisConnectionRegistry } from '../cluster/connections.js';
import type { ChangeFeed, openChangeFeed } from '../cluster/feed.js';
import type { PushWakeups, Roles } from '../cluster/roles.js';
import type { SharedState } from '../cluster/shared-state.js';
import type { HearthConfig } from '../config/load.js';
import { isOpenRegistrationWarningNeeded, OPEN_REGISTRATION_WARNING } from '../config/load.js';
import { localBaseUrl } from '../config/schema.js';
import type { PresenceService } from '../ephemeral/presence.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { Federation } from '../federation/index.js';
import type { IdentityServices } from '../identity/index.js';
import type { MediaService } from '../media/media-service.js';
import { createListener } from '../net/listener.js';
import type { OutboundHttp } from '../net/outbound-guard.js';
import type { Metrics } from '../observability/metrics.js';
import { createMetricsServer } from '../observability/metrics-server.js';
import type { DeliveredService } from '../receipts/delivered.js';
import type { RoomInput } from '../room/room-input.js';
import type { SelfDestructService } from '../room/self-destruct.js';
import { removeServerLock, runningServerPid, writeServerLock } from '../store/sqlite/server-lock.js';
import type { Store } from '../store/types.js';
import type { LocalNotifier } from '../sync/notifier.js';
import type { SocketServer } from '../sync/socket/socket-server.js';
import type { SyncWaiters } from '../sync/waiters.js';
import type { ThreepidServices } from '../threepid/index.js';
import type { createPush } from './push.js';
import { baseUrl, closeServer, listen, listenerLimitsOf } from './listeners.js';

/** What start and stop act on, all built by createHearth. */
export interface RunParts {
  config: HearthConfig;
  logger: Logger;
  keyId: string;
  roles: Roles;
  metrics: Metrics | undefined;
  renderMetrics: HttpOptions['renderMetrics'];
  httpHandler: HttpApp['handler'];
  lifecycle: Lifecycle;
  sockets: SocketServer | undefined;
  services: ApiServices;
  federation: Federation | undefined;
  presence: PresenceService;
  typing: TypingService;
  connectionRegistry: RedisConnectionRegistry | undefined;
  pushGateway: ReturnType<typeof createPush>['pushGateway'];
  pushDispatcher: ReturnType<typeof createPush>['pushDispatcher'];
  pushWakeups: PushWakeups | undefined;
  appServices: ReturnType<typeof createAppServices>;
  feed: ChangeFeed;
  replication: Awaited<ReturnType<typeof openChangeFeed>>['replication'];
  selfDestruct: SelfDestructService | undefined;
  waiters: SyncWaiters;
  stopRoomOwner: () => Promise<void>;
  roomInput: RoomInput;
  admission: Admission;
  media: MediaService;
  outboundHttp: OutboundHttp;
  identity: IdentityServices;
  sso: SsoServices;
  threepids: ThreepidServices;
  delivered: DeliveredService;
  notifier: LocalNotifier;
  shared: SharedState;
  store: Store;
}

export class HearthRun {
  /** Base URL of the client listener once started. */
  url = '';
  /** Base URL of the metrics listener once started; undefined with metrics off. */
  metricsUrl: string | undefined;
  private server: Server | undefined;
  private metricsServer: Server | undefined;
  private readonly listenerLimits: ReturnType<typeof listenerLimitsOf>;

  constructor(private readonly p: RunParts) {
    this.listenerLimits = listenerLimitsOf(p.config);
  }

  async start(): Promise<void> {
    const { config, logger, metrics, renderMetrics, services, federation, roles } = this.p;
    const { host, port } = config.listeners.client;
    if (renderMetrics) {
      // First, so a port clash stops start-up before the client port is open.
      this.metricsServer = await listen(createMetricsServer(renderMetrics, this.listenerLimits, logger), config.metrics.listen.port, config.metrics.listen.host);
      this.metricsUrl = baseUrl(this.metricsServer);
    }
    const listener = createListener(
      this.p.httpHandler,
      this.listenerLimits,
      {
        onRefused: (reason) => metrics?.connectionsRefused.inc({ reason }),
        onClientError: (status, code) => {
          metrics?.httpClientErrors.inc({ status: String(status) });
          logger.debug({ status, code }, 'answered a malformed or slow request');
        },
      },
    );
    this.p.sockets?.attach(listener);
    try {
      this.server = await listen(listener, port, host, config.listeners.client.backlog);
    } catch (err) {
      await closeServer(this.metricsServer);
      throw err;
    }
    const url = (this.url = baseUrl(this.server));
    // A derived base URL for an OS-assigned port (0) can only be known now.
    if (config.listeners.client.port === 0 && services.publicBaseUrl === localBaseUrl(config.listeners.client)) {
      services.publicBaseUrl = `${url}/`;
    }
    // One SQLite file has one server; a Cassandra keyspace is shared by design.
    if (config.storage.backend === 'sqlite') {
      const other = runningServerPid(config.storage.sqlite.path);
      if (other !== null && other !== process.pid) {
        logger.warn({ pid: other, database: config.storage.sqlite.path }, 'another process holds this database\'s pid file; two servers must not share one database');
      }
      writeServerLock(config.storage.sqlite.path);
    }
    if (federation) {
      try {
        await federation.start({ listen: roles.has('federation_in') });
      } catch (err) {
        await closeServer(this.server);
        await closeServer(this.metricsServer);
        throw err;
      }
    }
    this.p.presence.start();
    this.p.connectionRegistry?.start();
    if (config.push.enabled && roles.has('pusher')) this.p.pushGateway.start();
    await this.p.appServices.start((listener) => this.p.feed.onChanges(listener));
    await this.p.selfDestruct?.start();
    if (isOpenRegistrationWarningNeeded(config)) logger.warn(OPEN_REGISTRATION_WARNING);
    logger.info({ url, metrics_url: this.metricsUrl, server_name: config.server_name, storage: config.storage.backend, key_id: this.p.keyId, roles: roles.list() }, 'Hearth is listening');
  }

  async stop(): Promise<void> {
    const p = this.p;
    p.lifecycle.stopping = true;
    if (this.server) {
      const s = this.server;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      await p.sockets?.close();
      p.waiters.close(); // wake parked long-polls so they answer now
      s.closeIdleConnections();
      // Requests in flight (sends being committed) finish; then every connection is cut,
      // including kept-alive ones that would otherwise hold close() open.
      await p.lifecycle.drained(10_000);
      s.closeAllConnections();
      await closed;
    }
    await closeServer(this.metricsServer);
    await p.stopRoomOwner();
    await p.roomInput.drain();
    await p.federation?.stop();
    p.admission.close();
    await p.pushDispatcher.drain(); // its last enqueues must land before the store closes
    await p.pushGateway.stop();
    await p.appServices.stop();
    p.pushWakeups?.close();
    await p.media.stop(); // after its running eviction pass: the store closes below
    await p.outboundHttp.close();
    await p.identity.http.close();
    await p.sso.close();
    p.threepids.close();
    await p.delivered.flush();
    p.presence.stop();
    p.typing.close();
    p.selfDestruct?.close();
    await p.notifier.close();
    await p.connectionRegistry?.stop();
    await p.replication?.stop();
    await p.shared.close();
    await p.store.close();
    if (p.config.storage.backend === 'sqlite') removeServerLock(p.config.storage.sqlite.path);
    p.logger.info('Hearth stopped');
  }
}
