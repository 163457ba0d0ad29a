// The composition root: the only place that constructs services and wires them together.
// Everything else receives its dependencies through constructors. The per-subsystem wiring
// functions in src/wiring/ are part of this root (called only from here): shared state and
// the feed's readers, push, typing and presence, media, admission, the listeners, and
// start/stop (src/wiring/run.ts). Invariants: createHearth opens the store and shared state but
// no listener (start() does); readers see only the change feed, so one node and a cluster run
// the same code; exactly one writer per room (createRoomInput).
import { randomBytes } from 'node:crypto';
import type { Admission } from './admission/admission.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { createHttpApp, Lifecycle } from './api/http.js';
import { createRateLimiters } from './admission/rate-limit.js';
import { RedisConnectionRegistry } from './cluster/connections.js';
import { DeviceRevocations } from './cluster/revocation.js';
import { DeviceListInvalidation } from './cluster/device-list-invalidation.js';
import { PushWakeups, Roles } from './cluster/roles.js';
import { destinationLeases } from './cluster/destination-leases.js';
import { AppServiceLeases } from './cluster/appservice-leases.js';
import type { ApiServices } from './api/routing.js';
import type { HandlerTable } from './api/handlers.js';
import type { HearthConfig } from './config/load.js';
import { Metrics } from './observability/metrics.js';
import { timedStore } from './observability/timed-store.js';
import { loadOrCreateSigningKey } from './protocol/keyfile.js';
import { EventFormatter } from './room/client-event.js';
import { createRoomInput } from './cluster/owned-room-input.js';
import type { RoomInput } from './room/room-input.js';
import { StaticKeyRing } from './room/key-ring.js';
import { resolveState } from './protocol/state-res/index.js';
import { RoomService } from './room/room-service.js';
import { RoomUpgradeService } from './room/room-upgrade.js';
import { SearchService } from './room/search-service.js';
import { HierarchyService } from './room/hierarchy.js';
import { AdminService } from './admin/admin-service.js';
import { RoomDirectory } from './room/directory.js';
import { RoomHistory } from './room/history.js';
import { RelationsService } from './room/relations.js';
import { LegacyEventStream } from './sync/legacy-events.js';
import { UserDataService } from './users/user-data.js';
import { ProfileService } from './users/profile.js';
import { PusherService } from './push/pushers.js';
import { EphemeralAccess } from './ephemeral/access.js';
import { RoomStateReader } from './room/state-reader.js';
import { VisibilityChecker } from './room/visibility.js';
import { ErasureService } from './room/erasure.js';
import { listenForPrunes, SelfDestructService } from './room/self-destruct.js';
import { PeekService } from './sync/peeks.js';
import { openStoreBackend } from './store/open.js';
import { openChangeFeed, withFeedPosition } from './cluster/feed.js';
import type { Store } from './store/types.js';
import { LocalNotifier } from './sync/notifier.js';
import { SyncService } from './sync/sync-service.js';
import { SyncWaiters } from './sync/waiters.js';
import { ConnectionTracker } from './sync/connections.js';
import { SyncFilterResolver } from './sync/filter.js';
import { AccountService } from './users/account-service.js';
import { Registration } from './users/registration.js';
import { EphemeralStream } from './ephemeral/stream.js';
import { TypingSource } from './ephemeral/typing-source.js';
import { PresenceSyncSource } from './ephemeral/presence-source.js';
import { INTERNAL_ACCOUNT_DATA_PREFIX, PushRulesService } from './push/push-rules-service.js';
import type { JsonObject } from './protocol/types.js';
import { serverNameOf } from './protocol/ids.js';
import { PushActionComputer } from './push/push-actions.js';
import { roomInfoFromState } from './push/dispatcher.js';
import { createOutboundHttp, OutboundGuard } from './net/outbound-guard.js';
import { createIdentity, lateThirdPartyHooks } from './identity/index.js';
import { createThreepids, registrationEmailStage } from './threepid/index.js';
import type { ThirdPartyInvites } from './identity/third-party-invites.js';
import { createSsoServices } from './auth/sso/index.js';
import { ReceiptService } from './receipts/receipt-service.js';
import { ReceiptSource } from './receipts/receipt-source.js';
import { StoredUnreadSource } from './receipts/unread-source.js';
import { DeliveredService, DeliveredSource } from './receipts/delivered.js';
import { DeviceSyncSource } from './sync/device-source.js';
import { createE2eeServices } from './e2ee/index.js';
import { MediaService } from './media/media-service.js';
import { attachFederation, createFederationCore, type Federation } from './federation/index.js';
import { createAppServices, loadAppServiceRegistrations } from './appservice/index.js';
import { openSharedState, createReadModel } from './wiring/shared.js';
import { createPush } from './wiring/push.js';
import { createEphemeral } from './wiring/ephemeral.js';
import { createMedia } from './wiring/media.js';
import { createSockets } from './wiring/listeners.js';
import { HearthRun } from './wiring/run.js';
import { createAdmission } from './wiring/admission.js';

export interface Hearth {
  readonly config: HearthConfig;
  readonly store: Store;
  readonly services: ApiServices;
  /** Every client-listener route; HTTP and socket request frames are both served by it. */
  readonly routes: HandlerTable;
  /** The rooms' single writer; `receive` is the entry for events from outside (federation). */
  readonly roomInput: RoomInput;
  /** Load shedding (tests and operators can force it with `force(true)`). */
  readonly admission: Admission;
  /** Base URL of the client listener once started. */
  readonly url: string;
  /** Base URL of the metrics listener once started (GET /metrics); undefined with metrics off. */
  readonly metricsUrl: string | undefined;
  /** Federation (listener, key ring, queues); undefined when listeners.federation is off. */
  readonly federation: Federation | undefined;
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
  const appServiceRegistrations = loadAppServiceRegistrations(config); // before anything is opened: a bad file stops start-up
  const metrics = config.metrics.enabled ? new Metrics({ defaultMetrics: opts.processMetrics ?? true }) : undefined;
  const backend = await openStoreBackend(config.storage, logger);
  // What several processes must share: in this process unless a Redis is configured.
  const { shared, redis, rateLimitBackend } = await openSharedState(config, backend, logger, now);
  const revocations = new DeviceRevocations(shared.broadcast, logger);
  // What this worker runs (cluster.roles; every role on a single node), and in a cluster how
  // pushers on other workers hear of the push jobs this one enqueues.
  const roles = new Roles(config.cluster.roles);
  const pushWakeups = redis ? new PushWakeups(shared.broadcast, logger) : undefined;
  // The change feed: the store's completion hook on one node; with a shared backend and Redis, the
  // replication stream, which merges every worker's records behind the cluster watermark. Readers
  // (read model, waiters, currentPosition) see only the feed, so both cases run the same code.
  const { feed, replication } = await openChangeFeed(backend, redis, logger);
  const store = withFeedPosition(metrics ? timedStore(backend, metrics) : backend, feed);
  // Fed by the completion hook (through the feed) only, so it is as current as currentPosition();
  // with it, checked access tokens, dropped by device-list records.
  const { readModel, tokenCache } = createReadModel(config, backend, feed);
  if (readModel && tokenCache) {
    metrics?.registerCaches(() => [...readModel.stats(), formatter.cacheStats(), syncFilters.stats(), syncFilters.inlineStats(), tokenCache.stats()]);
  }
  const notifier = new LocalNotifier();
  const waiters = new SyncWaiters(notifier, (n) => metrics?.syncWaiters.set(n));
  // Wakes from the completion hook too: a reader wakes when a position completes, whichever
  // writer produced it (registered after the read model, so the model is current when it runs).
  feed.onChanges((changes) => waiters.onChanges(changes));
  const pushRules = new PushRulesService(store, notifier);
  const pushActions = new PushActionComputer(pushRules, config.server_name);
  // One guard and one client for every outbound request a user can steer (push gateways now,
  // federation later): refused IP ranges are checked on the address actually connected to.
  const outboundGuard = new OutboundGuard(config.outbound);
  const outboundHttp = createOutboundHttp(outboundGuard);
  const { pushGateway, pushDispatcher } = createPush(config, {
    store,
    http: outboundHttp,
    logger,
    now,
    pushWakeups,
    isConnected: (userId) => connections.isConnected(userId),
    isConnectedElsewhere: redis ? (userId) => connectionRegistry!.isConnected(userId) : undefined,
    roomInfo: async (roomId, senderId) => roomInfoFromState(await roomInput.currentState(roomId), senderId),
  });
  // In a cluster, every worker queues into the store's shared outbound queue and federation_out
  // workers send it, one at a time per destination (src/cluster/destination-leases.ts).
  const fedCluster = () => redis && {
    ...destinationLeases(redis, logger, config.cluster.destination_lease_ms),
    // Only workers sharing a store can queue for each other; a single node (SQLite, even with a
    // Redis) finds its own queue at start and is woken by its own enqueues.
    scanMs: replication ? config.cluster.federation_scan_ms : 0,
    sends: roles.has('federation_out'),
  };
  const fedCore = config.listeners.federation.enabled ? createFederationCore(config, signingKey, logger, store, feed, fedCluster()) : undefined;
  let federation: Federation | undefined;
  // One writer per room: this process's RoomInput on one node; in a cluster, the room's owner
  // (src/cluster/owned-room-input.ts), reached by forwarding.
  const { roomInput, writerOps, stop: stopRoomOwner } = createRoomInput({
    store,
    notifier,
    serverName: config.server_name,
    signingKey,
    // Without federation only our own key can verify anything.
    keyRing: fedCore?.keyRing ?? StaticKeyRing.forServer(config.server_name, [signingKey]),
    resolveState,
    now,
    // A local event's PDU is queued in the event's commit (src/federation/pdu-destinations.ts).
    pduDestinations: (eventId, pdu, before, relayFrom) => federation?.pduDestinations(eventId, pdu, before, relayFrom),
    selfDestruct: config.experimental.msc2228_self_destruct,
    onPersisted: (info) => {
      metrics?.eventsPersisted.inc();
      pushDispatcher.eventPersisted(info);
      federation?.eventPersisted(info.pdu, info.eventId, info.queuedFor, info.stream);
      // Guest access revoked by another server's user: our guests leave (the local path does it in RoomService.send).
      const p = info.pdu;
      if (p.type === 'm.room.guest_access' && p.state_key === '' && p.content.guest_access !== 'can_join' && serverNameOf(p.sender) !== config.server_name && p.room_id !== undefined) {
        const roomId = p.room_id;
        setImmediate(() => void rooms.guestAccessChangedRemotely(roomId).catch((err: unknown) => logger.warn({ err, roomId }, 'could not remove guests after a remote guest access change')));
      }
    },
    pushActions: (eventId, pdu, state) => pushActions.compute(eventId, pdu, state),
  }, { backend, redis, feed, leaseMs: config.cluster.room_lease_ms, logger, roomWriter: roles.has('room_writer') });
  const connections = new ConnectionTracker(config.push.connected_window_ms, now);
  // In a cluster, users connected to other processes count as connected too (no push).
  const connectionRegistry = redis
    ? new RedisConnectionRegistry({
        client: redis.client,
        prefix: redis.prefix,
        nodeId: randomBytes(8).toString('hex'),
        tracker: connections,
        recentMs: config.push.connected_window_ms,
        logger,
        now,
      })
    : undefined;
  const ephemeralStream = new EphemeralStream();
  // Replicated through Redis in a cluster; purely local (no publishing at all) otherwise.
  const { typing, presence } = await createEphemeral(config, { stream: ephemeralStream, notifier, shared, store, logger, now });
  const receipts = new ReceiptService(store, store.receipts, notifier, now, (userId) => pushDispatcher.countsChanged(userId));
  const visibility = new VisibilityChecker(store, readModel);
  const erasure = new ErasureService(store, visibility);
  const formatter = new EventFormatter(store, now, erasure);
  // A redacted event's shared formatted part is dropped at once (the formatter never serves it
  // for the redacted copy anyway; this frees it).
  feed.onChanges((changes) => {
    for (const c of changes) if (c.kind === 'event' && c.redaction) formatter.invalidate(c.redaction.targetEventId);
  });
  // The store's one listener for writes outside the stream; a pruned event's formatted part goes too.
  backend.onUnpositionedChanges((changes) => {
    readModel?.applyUnpositioned(changes);
    for (const c of changes) if (c.kind === 'event_pruned') formatter.invalidate(c.eventId);
  });
  const selfDestruct = config.experimental.msc2228_self_destruct && roles.has('room_writer') ? new SelfDestructService(store, writerOps, shared.broadcast, logger, now) : undefined;
  if (selfDestruct) feed.onChanges((changes) => selfDestruct.onChanges(changes));
  if (config.experimental.msc2228_self_destruct) {
    await listenForPrunes(shared.broadcast, logger, (roomId, eventId) => {
      readModel?.applyUnpositioned([{ kind: 'event_pruned', roomId, eventId }]);
      formatter.invalidate(eventId);
    });
  }
  const delivered = new DeliveredService(store, store.delivery, notifier, logger, now);
  const e2ee = createE2eeServices({ store, e2ee: store.e2ee, notifier, serverName: config.server_name, logger });
  const admission = createAdmission(config, metrics);
  // Third-party invites reach the federation listener before the room service exists (src/identity).
  const thirdPartyLate: { invites?: ThirdPartyInvites } = {};
  // Made here, not with the other API services: the federation listener's 3pid/onbind spends them.
  const limits = createRateLimiters(config.limits.rate_limits, rateLimitBackend);
  // onbind shares the client listener's `write` budget per address (src/api/routes/identity.ts).
  const thirdParty = { ...lateThirdPartyHooks(thirdPartyLate), limit: (ip: string) => limits.write.consume(`onbind:${ip}`) };
  // Our media for other servers: the media service is built below, so the listener asks late.
  const mediaLate: { service?: MediaService } = {};
  federation = fedCore
    ? attachFederation(fedCore, { config, signingKey, store, roomInput, typing, receipts, e2ee, presence, thirdParty, media: () => mediaLate.service, logger, now })
    : undefined;
  const fedE2ee = federation?.e2ee;
  if (fedE2ee) metrics?.registerCount('hearth_presence_join_work_dropped', 'Presence work for joins dropped because its queue was full (monotonic).', () => fedE2ee.droppedJoinWork);
  // A cluster: remote device lists drop on every worker, not only where the update or leave landed.
  if (replication && federation?.e2ee) await new DeviceListInvalidation(shared.broadcast, federation.e2ee.remote, logger).start((l) => feed.onChanges(l));
  const rooms = new RoomService(store, roomInput, config.server_name, logger, federation?.remote, admission, config.default_room_version, writerOps);
  // Media bytes on local disk or (media.store: cassandra) shared by every worker.
  const { media, urlPreviews } = createMedia(config, { backend, store, clustered: replication !== undefined, fedCore, http: outboundHttp, metrics, logger, now });
  mediaLate.service = media;
  await media.start();
  // Application services; their delivery is fed by the change feed (started in start()).
  // In a cluster, one worker at a time delivers to each AS (src/cluster/appservice-leases.ts).
  const identity = createIdentity({
    config,
    signingKey,
    guard: outboundGuard,
    store,
    rooms,
    currentState: (roomId) => roomInput.currentState(roomId),
    ...(federation ? { federationClient: federation.core.client } : {}),
    logger,
  });
  thirdPartyLate.invites = identity.invites;
  const threepids = createThreepids({ config, store, logger });
  const appServiceGate = redis && ((leaseMs: number) => new AppServiceLeases(redis, { leaseMs, logger }));
  const appServices = createAppServices(config, appServiceRegistrations, { store, http: outboundHttp, logger, now, ...(appServiceGate ? { gate: appServiceGate } : {}) });
  const accounts = new AccountService(
    store,
    config.server_name,
    config.registration,
    now,
    async (userId, deviceId) => {
      await revocations.revoked(userId, deviceId); // every process closes the device's sockets
      await store.e2ee.deleteDeviceE2ee(userId, deviceId); // records the device-list change
      await store.pushers.deletePushersForDevice(userId, deviceId);
      await e2ee.keys.announce([userId]);
    },
    async (userId) => {
      await store.e2ee.markDeviceListChanged(userId);
      await e2ee.keys.announce([userId]);
    },
    shared.map('uia'),
    (userId) => appServices.exclusiveUserOwner(userId),
    tokenCache,
    config.cas.enabled,
  );
  // Single sign-on (CAS), login tokens and the captcha stage; the base URL is read late (tests
  // learn their port after listening).
  const sso = createSsoServices(config, { accounts, shared, logger, baseUrl: () => services.publicBaseUrl, now });
  // MSC2753 peeking (off by default): the endpoints' service and /sync's rooms.peek source.
  const peeks = config.experimental.msc2753_peeking ? new PeekService(store, config.server_name, (r) => rooms.resolveRoom(r), readModel) : null;
  const syncFilters = new SyncFilterResolver((u, id) => store.userData.getFilter(u, id), undefined, (u, text) => store.userData.createFilter(u, text));
  const sync = new SyncService(store, waiters, formatter, visibility, {
    ephemeral: [new TypingSource(typing), new ReceiptSource(store.receipts), new DeliveredSource(store.delivery)],
    device: new DeviceSyncSource(store.e2ee, e2ee.deviceLists, readModel),
    onAcknowledged: (userId, stream) => delivered.acknowledged(userId, stream),
    acknowledgementsWanted: () => delivered.wanted,
    onDeliveredOptIn: (userId) => delivered.optedIn(userId),
    unread: new StoredUnreadSource(store.notifications, readModel),
    presence: new PresenceSyncSource(presence, store, now),
    ephemeralPosition: () => ephemeralStream.current(),
    defaultAccountData: (userId) => [{ type: 'm.push_rules', content: pushRules.defaults(userId) as unknown as JsonObject }],
    hiddenAccountDataPrefix: INTERNAL_ACCOUNT_DATA_PREFIX,
    ...(peeks ? { peeks } : {}),
  }, readModel);
  const currentToken = () => ({ stream: store.currentPosition(), ephemeral: ephemeralStream.current() });
  const services: ApiServices = {
    history: new RoomHistory(store, rooms, visibility),
    roomState: new RoomStateReader(store, visibility),
    directory: new RoomDirectory(store, roomInput, rooms, config.server_name, federation?.queries),
    serverName: config.server_name,
    publicBaseUrl: config.public_baseurl,
    accounts,
    admin: new AdminService({ store, accounts, rooms, roomInput, erasure, serverName: config.server_name, now, writerOps }),
    erasure,
    registrar: new Registration(
      accounts,
      config.server_name,
      sso.recaptcha ? { publicKey: sso.recaptcha.settings.public_key, required: config.recaptcha.required_for_registration } : null,
      registrationEmailStage(threepids, config.registration.require_email),
      logger,
    ),
    rooms,
    search: new SearchService(store, visibility, formatter),
    hierarchy: new HierarchyService(store, (roomId) => roomInput.currentState(roomId)),
    upgrades: new RoomUpgradeService(store, roomInput, rooms, config.server_name, pushRules, notifier, logger, writerOps),
    roomInput,
    syncFilters,
    sync,
    relations: new RelationsService(store, visibility),
    userData: new UserDataService(store, notifier, pushRules, visibility, now),
    profiles: new ProfileService(store, rooms, config.server_name, federation?.queries),
    pushers: new PusherService(store),
    ephemeral: new EphemeralAccess(store, typing, presence, config.server_name),
    legacy: new LegacyEventStream({ store, sync, formatter, visibility, presence, typing, notifier, currentToken, now }),
    pushRules,
    receipts,
    e2ee,
    outboundGuard,
    media,
    urlPreviews,
    turn: config.turn,
    connections,
    typing,
    presence,
    formatter,
    visibility,
    notifier,
    logger,
    limits,
    registration: {
      enabled: config.registration.enabled,
      token: config.registration.token,
      sharedSecret: config.registration.shared_secret,
      allowGuests: config.registration.allow_guests,
    },
    registrationNonces: shared.map('registration-nonce'),
    loginTokens: sso.loginTokens,
    cas: sso.cas,
    recaptcha: sso.recaptcha,
    maxSyncTimeoutMs: config.sync.max_timeout_ms,
    currentToken,
    admission,
    features: { websocket: config.websocket.enabled, peeking: peeks !== null },
    peeks,
    appServices,
    identity,
    threepids,
    now,
  };
  const lifecycle = new Lifecycle();
  const renderMetrics = metrics ? async () => ({ contentType: metrics.contentType, body: await metrics.render() }) : undefined;
  const { handler: httpHandler, table } = createHttpApp(services, {
    lifecycle,
    maxBodyBytes: config.limits.max_request_body_bytes,
    maxEventBytes: config.limits.max_event_bytes,
    trustProxy: config.listeners.client.x_forwarded,
    observe: (m, r, s, sec) => metrics?.observeHttp(m, r, s, sec),
    renderMetrics,
    metricsSecret: config.metrics.client_port_secret ?? undefined,
  });

  if (!roles.all) table.retain((route) => roles.serves(route));
  const sockets = createSockets(config, roles.has('sync'), { services, presence, connections, syncFilters, table, lifecycle, logger, admission });

  if (sockets) await revocations.listen((userId, deviceId) => sockets.deviceDeleted(userId, deviceId));
  if (pushWakeups && roles.has('pusher')) await pushWakeups.listen(() => pushGateway.wake());

  const run = new HearthRun({
    config, logger, keyId: signingKey.keyId, roles, metrics, renderMetrics, httpHandler, lifecycle, sockets, services, federation,
    presence, typing, connectionRegistry, pushGateway, pushDispatcher, pushWakeups, appServices, feed, replication, selfDestruct,
    waiters, stopRoomOwner, roomInput, admission, media, outboundHttp, identity, sso, threepids, delivered, notifier, shared, store,
  });
  return {
    config,
    store,
    services,
    routes: table,
    roomInput,
    federation,
    admission,
    get url() {
      return run.url;
    },
    get metricsUrl() {
      return run.metricsUrl;
    },
    start: () => run.start(),
    stop: () => run.stop(),
  };
}

