// Builds the federation parts from config for the composition root (src/app.ts), in two steps:
// `createFederationCore` before room input (the key ring room input checks signatures with, the
// client, the outbound queues), `attachFederation` once room input and the ephemeral services
// exist (inbound handlers, remote joins, the listener, and the hooks that send local events).
//
// Invariants: with `listeners.federation.enabled: false` nothing here is built (room input keeps
// a key ring of our own keys, and remote joins/invites are refused). Local events reach every
// other server with a joined member (plus the target server of a membership event other than an invite) in the order
// they were persisted: the room writer queues a local event's PDU in the event's own commit
// (pduDestinations, PersistEventInput.outbound), at its stream position, so a crash after the
// commit loses nothing; a remote join, leave or knock handed to us through send_join/leave/knock
// is relayed to the room's other servers the same way (RoomInput.receive's `relay`). EDUs (and
// PDUs of a writer that did not ask) go through one promise chain. EDU durability by kind:
// to-device is queued before its request is answered (src/e2ee/to-device.ts: a failed write
// fails the request, a retry keeps the message_id); a local user's public receipt is queued in
// the receipt's own write (ReceiptService.outbound); device-list and cross-signing updates are
// published from the store's device-list change stream, which the change is written with, and
// a durable cursor marks what was queued (src/federation/device-list-outbox.ts), so neither is
// lost to a crash after its write; typing and presence are ephemeral by spec and stay
// best-effort (queued after the fact through `fanOut`: a crash loses what was not queued yet).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolveSrv } from 'node:dns/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HearthConfig } from '../config/load.js';
import { createOutboundHttp, OutboundGuard, type OutboundHttp } from '../net/outbound-guard.js';
import { parseStrictJson } from '../protocol/canonical-json.js';
import { tryDecodeBase64 } from '../protocol/base64.js';
import { serverNameOf } from '../protocol/ids.js';
import type { JsonObject, Pdu, SigningKey } from '../protocol/types.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { PresenceService } from '../ephemeral/presence.js';
import type { E2eeServices } from '../e2ee/index.js';
import type { ReceiptService } from '../receipts/receipt-service.js';
import type { RoomInput } from '../room/room-input.js';
import type { Store } from '../store/types.js';
import type { ChangeFeed } from '../cluster/feed.js';
import { FederationClient } from './client.js';
import { FederationPolicy } from './policy.js';
import { hashAccessToken } from '../users/credentials.js';
import { ServerDiscovery, splitServerName } from './discovery.js';
import { FederationE2ee } from './e2ee-edus.js';
import { FederationDirectory } from './directory.js';
import { RemoteQueries } from './remote-queries.js';
import { GapFiller } from './gap-fill.js';
import { FederationKnocks } from './knock.js';
import { FederationInbound } from './inbound.js';
import { RemoteKeyRing, type OldKey } from './keys.js';
import { createFederationApp, createFederationServer, type FederationAppDeps } from './listener.js';
import { RemoteRooms } from './remote-rooms.js';
import { generateSelfSignedCertificate } from './self-signed.js';
import { FederationSender } from './sender.js';
import { importLegacyQueue } from './legacy-queue.js';
import { pduDestinations, roomDestinations } from './pdu-destinations.js';
import type { RoomState } from '../room/room-state.js';
import type { DestinationGate } from '../cluster/destination-leases.js';

export interface FederationCore {
  /** The change feed and, in a cluster, the leases the queues' senders take (device-list-outbox.ts uses both). */
  feed: Pick<ChangeFeed, 'onChanges'>;
  gate?: DestinationGate;
  /** Rotated-out signing keys (config old_signing_keys), served as old_verify_keys. */
  oldKeys: OldKey[];
  http: OutboundHttp;
  client: FederationClient;
  keyRing: RemoteKeyRing;
  policy: FederationPolicy;
  sender: FederationSender;
}

/**
 * `store`: the outbound queue lives in it (federationQueue, read up to its currentPosition).
 * `cluster`: per-destination leases across workers; `nodeId` goes into transaction IDs.
 */
export function createFederationCore(
  config: HearthConfig,
  signingKey: SigningKey,
  logger: Logger,
  store: Pick<Store, 'federationQueue' | 'currentPosition'>,
  /** The change feed (src/cluster/feed.ts): it signals each advance of currentPosition(). */
  feed: Pick<ChangeFeed, 'onChanges'>,
  cluster?: { gate: DestinationGate; nodeId: string; scanMs: number; sends: boolean },
): FederationCore {
  const guard = new OutboundGuard({
    ip_range_blacklist: config.outbound.ip_range_blacklist,
    ip_range_whitelist: [...config.outbound.ip_range_whitelist, ...config.federation.ip_range_whitelist],
  });
  const http = createOutboundHttp(guard, { rejectUnauthorized: config.federation.verify_tls });
  const discovery = new ServerDiscovery({
    resolveSrv,
    async fetchWellKnown(name) {
      const res = await http.request(`https://${name}/.well-known/matrix/server`, { maxResponseBytes: 64 * 1024, signal: AbortSignal.timeout(10_000) });
      return res.status === 200 && !res.truncated ? parseStrictJson(res.body.toString('utf8')) : undefined;
    },
  });
  const policy = new FederationPolicy(config.federation);
  const client = new FederationClient(config.server_name, signingKey, discovery, http, policy);
  const dataDir = dirname(config.storage.sqlite.path);
  const oldKeys: OldKey[] = Object.entries(config.old_signing_keys).map(([keyId, v]) => ({
    key: { keyId, publicKey: tryDecodeBase64(v.key) as Uint8Array }, // the schema checked it is 32 bytes
    expiredTs: v.expired_ts,
  }));
  const keyRing = new RemoteKeyRing({
    serverName: config.server_name,
    ownKeys: [signingKey, ...oldKeys.map((o) => o.key).filter((k) => k.keyId !== signingKey.keyId)],
    fetcher: client,
    notaries: config.federation.trusted_key_servers,
    cachePath: join(dataDir, 'federation-keys.json'),
    logger,
  });
  const sender = new FederationSender({
    serverName: config.server_name,
    client,
    logger,
    queue: store.federationQueue,
    watermark: () => store.currentPosition(),
    onWatermarkAdvance: (listener) => feed.onChanges(() => listener()),
    minBackoffMs: config.federation.min_backoff_ms,
    maxBackoffMs: config.federation.max_backoff_ms,
    allows: (server) => policy.allows(server),
    gate: cluster?.gate,
    nodeId: cluster?.nodeId,
    scanMs: cluster?.scanMs,
    sends: cluster?.sends,
  });
  return { oldKeys, http, client, keyRing, sender, policy, feed, ...(cluster ? { gate: cluster.gate } : {}) };
}

export interface AttachDeps {
  config: HearthConfig;
  signingKey: SigningKey;
  store: Store;
  roomInput: RoomInput;
  typing: TypingService;
  receipts: ReceiptService;
  /** Device lists, keys and to-device across servers (absent: not federated). */
  e2ee?: E2eeServices;
  presence?: PresenceService;
  /** Third-party invite endpoints (src/identity, built after federation: called late). */
  thirdParty?: FederationAppDeps['thirdParty'];
  /** Our media for other servers (the media service, built after federation: called late). */
  media?: FederationAppDeps['media'];
  logger: Logger;
  now: () => number;
}

export interface Federation {
  core: FederationCore;
  inbound: FederationInbound;
  remote: RemoteRooms;
  /** Remote profiles and public room lists, for local clients. */
  queries: RemoteQueries;
  e2ee?: FederationE2ee;
  /** Base URL of the federation listener once started. */
  readonly url: string;
  /**
   * Hand every persisted event here (RoomInput onPersisted); local ones are sent out. `queued`:
   * the destinations its PDU was queued for in the event's own commit (pduDestinations), which
   * are only woken; absent, the PDU is queued here, after the commit (the older path).
   */
  eventPersisted(pdu: Pdu, eventId?: string, queued?: readonly string[], stream?: number): void;
  /**
   * The room writer asks, before persisting `pdu`, where its PDU goes (see pdu-destinations.ts),
   * to queue it in the same commit; undefined: not a local event to send (or one handed over
   * through send_join), nothing to queue. `relayFrom`: a remote server's join, leave or knock
   * that server handed us to pass on (send_join and co.): every other server of the room.
   */
  pduDestinations(eventId: string, pdu: Pdu, before: RoomState, relayFrom?: string): string[] | undefined;
  /**
   * Resumes the outbound queues this worker left on disk, and with `listen` (the default; role
   * federation_in) serves the federation listener.
   */
  start(opts?: { listen: boolean }): Promise<void>;
  stop(): Promise<void>;
}

export function attachFederation(core: FederationCore, d: AttachDeps): Federation {
  const { config, logger } = d;
  const me = config.server_name;
  // Servers sharing a room with a user: where their device-list and presence changes go.
  const serversSharing = async (userId: string): Promise<Set<string>> => {
    const out = new Set<string>();
    for (const m of await d.store.rooms.getRoomsForUser(userId, ['join'])) {
      for (const s of await inbound.serversInRoom(m.roomId)) if (s !== me && !out.has(s) && (await inbound.aclAllows(m.roomId, s))) out.add(s);
    }
    return out;
  };
  const e2ee = d.e2ee
    ? new FederationE2ee({
        serverName: me,
        e2ee: d.e2ee,
        e2eeStore: d.store.e2ee,
        presence: d.presence,
        rooms: d.store.rooms,
        client: core.client,
        sender: core.sender,
        serversSharing,
        serversInRoom: async (roomId) => {
          const out = new Set<string>();
          for (const s of await inbound.serversInRoom(roomId)) if (s !== me && (await inbound.aclAllows(roomId, s))) out.add(s);
          return out;
        },
        position: () => d.store.currentPosition(),
        cursors: d.store.federationQueue,
        onChanges: (l) => core.feed.onChanges(l),
        ...(core.gate ? { gate: core.gate } : {}),
        ...(process.env.HEARTH_TEST_KILL_AFTER_COMMIT ? { killAfterCommitOf: process.env.HEARTH_TEST_KILL_AFTER_COMMIT } : {}),
        logger,
        now: d.now,
      })
    : undefined;
  const inbound: FederationInbound = new FederationInbound({
    serverName: me,
    signingKey: d.signingKey,
    store: d.store,
    roomInput: d.roomInput,
    keyRing: core.keyRing,
    typing: d.typing,
    receipts: d.receipts,
    sender: core.sender,
    logger,
    maxPdus: config.federation.max_pdus_per_txn,
    maxEdus: config.federation.max_edus_per_txn,
    gaps: new GapFiller({
      store: d.store,
      roomInput: d.roomInput,
      keyRing: core.keyRing,
      logger,
      request: (origin, method, path, body) => core.client.request(origin, { method, path, body, maxResponseBytes: 16 * 1024 * 1024, timeoutMs: 30_000 }),
    }),
    moreEdus: e2ee ? (origin, type, content) => e2ee.edu(origin, type, content) : undefined,
    now: d.now,
  });
  // Our joins made through send_join: the resident server has passed them on to the room already.
  const handedOver = new Set<string>();
  const remote = new RemoteRooms({
    serverName: me,
    signingKey: d.signingKey,
    client: core.client,
    keyRing: core.keyRing,
    roomInput: d.roomInput,
    logger,
    now: d.now,
    handedOver: (eventId) => handedOver.add(eventId),
    events: (ids) => d.store.rooms.getEvents(ids),
  });
  const killAfterCommit = process.env.HEARTH_TEST_KILL_AFTER_COMMIT || undefined;
  let chain: Promise<void> = Promise.resolve();
  const fanOut = (roomId: string, extra: string[], send: (servers: Set<string>) => Promise<void>) => {
    chain = chain
      .then(async () => {
        const servers = await inbound.serversInRoom(roomId);
        for (const s of extra) servers.add(s);
        servers.delete(me);
        // ACLs hold both ways: nothing goes to a server the room bans.
        for (const s of [...servers]) if (!(await inbound.aclAllows(roomId, s))) servers.delete(s);
        // Awaited: the queue's positions keep the order events were persisted in.
        if (servers.size > 0) await send(servers);
      })
      .catch((err: unknown) => logger.warn({ err, roomId }, 'federation fan-out failed'));
  };
  // Receivers expire remote typing after 30 s (we do too): a user still typing is announced again
  // every 20 s until they stop.
  const typingRenewals = new Map<string, NodeJS.Timeout>();
  const announceTyping = (roomId: string, userId: string, typing: boolean) =>
    fanOut(roomId, [], (servers) => core.sender.sendEdu(servers, { edu_type: 'm.typing', content: { room_id: roomId, user_id: userId, typing } }));
  d.typing.listeners.push((roomId, userId, typing) => {
    if (serverNameOf(userId) !== me) return;
    const key = `${roomId}\u0000${userId}`;
    clearTimeout(typingRenewals.get(key));
    typingRenewals.delete(key);
    announceTyping(roomId, userId, typing);
    if (!typing) return;
    const renew = () => {
      if (!d.typing.typingUsers(roomId).includes(userId)) return void typingRenewals.delete(key);
      announceTyping(roomId, userId, true);
      typingRenewals.set(key, setTimeout(renew, 20_000).unref());
    };
    typingRenewals.set(key, setTimeout(renew, 20_000).unref());
  });
  // A local user's public receipt is queued in the receipt's own write (ReceiptStore.putReceipt);
  // here only its destinations are asked for before, and woken after. Private ones stay home.
  d.receipts.outbound = async (r) => {
    if (serverNameOf(r.userId) !== me || r.type !== 'm.read') return undefined;
    // The joined servers and ACL as the room's writer holds them (one read of cached state, not
    // of the member list): ACLs hold both ways, nothing goes to a server the room bans.
    const state = await d.roomInput.currentState(r.roomId);
    if (!state) return undefined;
    const servers = roomDestinations(me, state, (s) => core.policy.allows(s));
    if (servers.length === 0) return undefined;
    const data: JsonObject = { ts: r.ts };
    if (r.threadId !== null) data.thread_id = r.threadId;
    const content: JsonObject = { [r.roomId]: { 'm.read': { [r.userId]: { event_ids: [r.eventId], data } } } };
    return { destinations: servers, edu: { edu_type: 'm.receipt', content } };
  };
  d.receipts.listeners.push((r) => {
    if (r.queued === undefined) return;
    // Test hook (spec/crash/edu-outbox.spec.ts): die right after the receipt's commit, where
    // its EDU used to be queued, to show it was queued with the receipt.
    if (killAfterCommit !== undefined && r.userId === killAfterCommit) process.kill(process.pid, 'SIGKILL');
    core.sender.wake(r.queued, r.stream);
  });

  const app = createFederationApp({
    serverName: me,
    signingKey: d.signingKey,
    oldKeys: core.oldKeys.filter((o) => o.key.keyId !== d.signingKey.keyId),
    keyRing: core.keyRing,
    inbound,
    e2ee: e2ee?.local,
    directory: new FederationDirectory({ store: d.store, currentState: (roomId) => d.roomInput.currentState(roomId) }),
    knocks: new FederationKnocks({ inbound, roomInput: d.roomInput }),
    sender: core.sender,
    policy: core.policy,
    ...(d.thirdParty ? { thirdParty: d.thirdParty } : {}),
    ...(d.media ? { media: d.media } : {}),
    openIdUser: (token) => d.store.accounts.lookupOpenIdToken(hashAccessToken(token), d.now()),
    logger,
    maxBodyBytes: Math.max(config.limits.max_request_body_bytes, 4 * 1024 * 1024),
    now: d.now,
  });
  let server: Server | undefined;
  let url = '';
  return {
    core,
    inbound,
    remote,
    queries: new RemoteQueries({ client: core.client, logger }),
    e2ee,
    get url() {
      return url;
    },
    pduDestinations(eventId, pdu, before, relayFrom) {
      if (relayFrom !== undefined && pdu.room_id !== undefined) {
        return pduDestinations(me, before, pdu, (s) => s !== relayFrom && core.policy.allows(s));
      }
      if (serverNameOf(pdu.sender) !== me || pdu.room_id === undefined || handedOver.has(eventId)) return undefined;
      return pduDestinations(me, before, pdu, (s) => core.policy.allows(s));
    },
    eventPersisted(pdu, eventId, queued, stream) {
      if (e2ee && pdu.type === 'm.room.member' && typeof pdu.state_key === 'string' && pdu.room_id !== undefined && typeof pdu.content.membership === 'string') {
        // Remote users' device lists we stop (or start again) hearing about.
        e2ee.remote.membershipChanged(pdu.room_id, pdu.state_key, pdu.content.membership).catch((err: unknown) => logger.warn({ err }, 'device list membership check failed'));
        if (pdu.content.membership === 'join') e2ee.memberJoined(pdu.room_id, pdu.state_key, stream);
      }
      // Test hook (spec/crash/federation-outbox.spec.ts): die right after the commit, where the
      // PDU used to be queued, to show that a durable event's PDU is durable too (a relayed
      // join's: marked by its displayname).
      if (killAfterCommit !== undefined && (pdu.content.body === killAfterCommit || pdu.content.displayname === killAfterCommit)) process.kill(process.pid, 'SIGKILL');
      // Queued in the commit: a local event's PDU, or a remote one we relay (send_join and co.).
      if (queued !== undefined) return void core.sender.wake(queued, stream);
      if (serverNameOf(pdu.sender) !== me || pdu.room_id === undefined) return;
      if (eventId !== undefined && handedOver.delete(eventId)) return;
      const { unsigned: _u, ...out } = pdu;
      // A kicked or banned user's server hears of it; an invite went to the invitee's server
      // through /invite already (Synapse drops an invite arriving again through /send).
      const member = pdu.type === 'm.room.member' && pdu.state_key !== undefined && pdu.content.membership !== 'invite';
      const extra = member ? [serverNameOf(pdu.state_key as string) ?? me] : [];
      fanOut(pdu.room_id, extra, (servers) => core.sender.sendPdu(servers, out as Pdu));
    },
    async start({ listen } = { listen: true }) {
      // What an older version left in its queue directory joins the store's queue first; then
      // the sender resumes what is left there (and, in a cluster, keeps looking for it).
      await importLegacyQueue(join(dirname(config.storage.sqlite.path), 'federation-queue'), core.sender, logger).catch((err: unknown) =>
        logger.warn({ err }, 'federation: could not import the legacy queue directory'),
      );
      core.sender.start();
      e2ee?.outbox.start();
      if (!listen) return;
      const l = config.listeners.federation;
      let tls: { cert: string; key: string } | null = null;
      if (l.tls) {
        tls =
          l.tls_certificate_path && l.tls_private_key_path
            ? { cert: readFileSync(l.tls_certificate_path, 'utf8'), key: readFileSync(l.tls_private_key_path, 'utf8') }
            : await generateSelfSignedCertificate(splitServerName(me).host.replace(/^\[|\]$/g, ''));
        if (!l.tls_certificate_path) logger.warn('federation listener: no certificate configured, serving a self-signed one (peers need verify_tls: false)');
      }
      const s = createFederationServer(app, tls) as Server;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(l.port, l.host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      const a = s.address() as AddressInfo;
      url = `${tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      logger.info({ url, server_name: me }, 'federation listener up');
    },
    async stop() {
      for (const t of typingRenewals.values()) clearTimeout(t);
      if (server?.listening) {
        const s = server;
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        s.closeAllConnections();
        await closed;
      }
      await e2ee?.stop();
      await core.sender.stop();
      await chain;
      await core.keyRing.flush();
      await core.http.close();
    },
  };
}
