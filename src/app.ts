// The composition root: the only place that constructs services and wires them together.
// Everything else receives its dependencies through constructors.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createHttpApp } from './api/http.js';
import { createRateLimiters } from './api/rate-limit.js';
import type { ApiServices } from './api/routing.js';
import type { HearthConfig } from './config/load.js';
import { isOpenRegistrationWarningNeeded, OPEN_REGISTRATION_WARNING } from './config/load.js';
import { localBaseUrl } from './config/schema.js';
import { Metrics } from './observability/metrics.js';
import { loadOrCreateSigningKey } from './protocol/keyfile.js';
import { EventFormatter } from './room/client-event.js';
import { RoomInput } from './room/room-input.js';
import { RoomService } from './room/room-service.js';
import { VisibilityChecker } from './room/visibility.js';
import { openSqliteStore } from './store/sqlite/index.js';
import type { Store } from './store/types.js';
import { LocalNotifier } from './sync/notifier.js';
import { SyncService } from './sync/sync-service.js';
import { SyncWaiters } from './sync/waiters.js';
import { ConnectionTracker } from './sync/connections.js';
import { SocketServer } from './sync/socket/socket-server.js';
import { loadSyncFilter } from './sync/filter.js';
import { AccountService } from './users/account-service.js';
import { EphemeralStream } from './ephemeral/stream.js';
import { TypingService } from './ephemeral/typing.js';
import { TypingSource } from './ephemeral/typing-source.js';
import { PresenceService } from './ephemeral/presence.js';
import { PresenceSyncSource } from './ephemeral/presence-source.js';
import { INTERNAL_ACCOUNT_DATA_PREFIX, PushRulesService } from './push/push-rules-service.js';
import type { JsonObject } from './protocol/types.js';
import { PushActionComputer } from './push/push-actions.js';
import { ReceiptService } from './receipts/receipt-service.js';
import { ReceiptSource } from './receipts/receipt-source.js';
import { StoredUnreadSource } from './receipts/unread-source.js';

export interface Hearth {
  readonly config: HearthConfig;
  readonly store: Store;
  readonly services: ApiServices;
  /** Base URL of the client listener once started. */
  readonly url: string;
  start(): Promise<void>;
  /** Stops accepting requests, finishes in-flight writes, closes the store. */
  stop(): Promise<void>;
}

export interface HearthOptions {
  logger: Logger;
  /** Collect process-level metrics (off in tests that start many servers). */
  processMetrics?: boolean;
}

export async function createHearth(config: HearthConfig, opts: HearthOptions): Promise<Hearth> {
  const { logger } = opts;
  const now = Date.now;
  mkdirSync(dirname(config.signing_key_path), { recursive: true });
  const signingKey = await loadOrCreateSigningKey(config.signing_key_path);
  const metrics = config.metrics.enabled ? new Metrics({ defaultMetrics: opts.processMetrics ?? true }) : undefined;
  const store = await openSqliteStore({
    path: config.storage.sqlite.path,
    synchronous: config.storage.sqlite.synchronous,
    logger,
  });
  const notifier = new LocalNotifier();
  const waiters = new SyncWaiters(notifier, (n) => metrics?.syncWaiters.set(n));
  const pushRules = new PushRulesService(store, notifier);
  const pushActions = new PushActionComputer(pushRules, config.server_name);
  const roomInput = new RoomInput({
    store,
    notifier,
    serverName: config.server_name,
    signingKey,
    now,
    onPersisted: () => metrics?.eventsPersisted.inc(),
    pushActions: (eventId, pdu, state) => pushActions.compute(eventId, pdu, state),
  });
  const connections = new ConnectionTracker(30_000, now);
  const ephemeralStream = new EphemeralStream();
  const typing = new TypingService(ephemeralStream, notifier);
  const presence = new PresenceService(
    {
      enabled: config.presence.enabled,
      idleTimeoutMs: config.presence.idle_timeout_ms,
      offlineTimeoutMs: config.presence.offline_timeout_ms,
    },
    {
      stream: ephemeralStream,
      notifier,
      roomsOf: async (userId) => (await store.rooms.getRoomsForUser(userId, ['join'])).map((m) => m.roomId),
      now,
    },
  );
  const receipts = new ReceiptService(store, store.receipts, notifier, now);
  const formatter = new EventFormatter(store, now);
  const visibility = new VisibilityChecker(store);
  const services: ApiServices = {
    serverName: config.server_name,
    publicBaseUrl: config.public_baseurl,
    store,
    accounts: new AccountService(store, config.server_name, config.registration, now),
    rooms: new RoomService(store, roomInput, config.server_name),
    roomInput,
    sync: new SyncService(store, waiters, formatter, visibility, {
      ephemeral: [new TypingSource(typing), new ReceiptSource(store.receipts)],
      unread: new StoredUnreadSource(store.notifications),
      presence: new PresenceSyncSource(presence, store, now),
      ephemeralPosition: () => ephemeralStream.current(),
      defaultAccountData: (userId) => [{ type: 'm.push_rules', content: pushRules.defaults(userId) as unknown as JsonObject }],
      hiddenAccountDataPrefix: INTERNAL_ACCOUNT_DATA_PREFIX,
    }),
    pushRules,
    receipts,
    connections,
    typing,
    presence,
    formatter,
    visibility,
    notifier,
    logger,
    limits: createRateLimiters(config.limits.rate_limits),
    registration: {
      enabled: config.registration.enabled,
      token: config.registration.token,
      sharedSecret: config.registration.shared_secret,
    },
    maxSyncTimeoutMs: config.sync.max_timeout_ms,
    features: { websocket: config.websocket.enabled },
    now,
  };
  const app = createHttpApp(services, {
    maxBodyBytes: config.limits.max_request_body_bytes,
    maxEventBytes: config.limits.max_event_bytes,
    trustProxy: config.listeners.client.x_forwarded,
    observe: (m, r, s, sec) => metrics?.observeHttp(m, r, s, sec),
    renderMetrics: metrics ? async () => ({ contentType: metrics.contentType, body: await metrics.render() }) : undefined,
  });

  const sockets = config.websocket.enabled
    ? new SocketServer(
        {
          accounts: services.accounts,
          sync: services.sync,
          presence,
          connections,
          resolveFilter: (userId, value) => loadSyncFilter((u, id) => store.userData.getFilter(u, id), userId, value),
          handler: app.callback(),
          logger,
        },
        {
          maxConnections: config.websocket.max_connections,
          maxCatchups: config.websocket.max_catchups,
          maxBufferedBytes: config.websocket.max_buffered_bytes,
          heartbeatMs: config.websocket.heartbeat_ms,
          authTimeoutMs: config.websocket.auth_timeout_ms,
          pollMs: config.websocket.poll_ms,
          shedRetryMs: config.websocket.shed_retry_ms,
        },
      )
    : undefined;

  let server: Server | undefined;
  let url = '';
  return {
    config,
    store,
    services,
    get url() {
      return url;
    },
    async start() {
      const { host, port } = config.listeners.client;
      server = await new Promise<Server>((resolve, reject) => {
        const s = app.listen(port, host, () => resolve(s));
        s.once('error', reject);
      });
      // Long-polls last up to the max sync timeout; keep sockets alive longer than that.
      sockets?.attach(server);
      server.keepAliveTimeout = 75_000;
      server.headersTimeout = 80_000;
      server.requestTimeout = config.sync.max_timeout_ms + 30_000;
      const addr = server.address() as AddressInfo;
      const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `http://${h}:${addr.port}`;
      // A derived base URL for an OS-assigned port (0) can only be known now.
      if (config.listeners.client.port === 0 && services.publicBaseUrl === localBaseUrl(config.listeners.client)) {
        services.publicBaseUrl = `${url}/`;
      }
      presence.start();
      if (isOpenRegistrationWarningNeeded(config)) logger.warn(OPEN_REGISTRATION_WARNING);
      logger.info({ url, server_name: config.server_name, storage: config.storage.backend, key_id: signingKey.keyId }, 'Hearth is listening');
    },
    async stop() {
      if (server) {
        const s = server;
        await sockets?.close();
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        waiters.close(); // wake parked long-polls so their connections can finish
        s.closeIdleConnections();
        await closed;
      }
      await roomInput.drain();
      presence.stop();
      typing.close();
      await notifier.close();
      await store.close();
      logger.info('Hearth stopped');
    },
  };
}
