// A room of this server (local.test, alice its creator) that a remote server (remote.test, whose
// key is in a static key ring) has joined as @rob, with FederationInbound over a real SQLite store
// and room input, no HTTP: what a federation spec needs to push forged, really signed PDUs at
// /send and read back the store. Room input computes push actions with the real push rules, so
// notifications are stored as on a server. The gap filler's store lookups of prev events and its
// requests to the origin are recorded; the origin answers them as `origin` says (by default it
// has nothing to give).

import pino from 'pino';
import { assert } from './assert.js';
import { buildPdu, type BuiltPdu, type PduSpec } from './pdu-builder.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { authEventTypesFor } from '../../src/protocol/auth-rules.js';
import type { JsonObject, JsonValue, Pdu, RoomVersion, SigningKey } from '../../src/protocol/types.js';
import { stateTuple } from '../../src/protocol/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { RoomInput } from '../../src/room/room-input.js';
import { StaticKeyRing } from '../../src/room/key-ring.js';
import { TypingService } from '../../src/ephemeral/typing.js';
import { EphemeralStream } from '../../src/ephemeral/stream.js';
import { ReceiptService } from '../../src/receipts/receipt-service.js';
import { FederationSender } from '../../src/federation/sender.js';
import { FederationInbound } from '../../src/federation/inbound.js';
import { GapFiller } from '../../src/federation/gap-fill.js';
import { PushRulesService } from '../../src/push/push-rules-service.js';
import { PushActionComputer } from '../../src/push/push-actions.js';

export const LOCAL = 'local.test';
export const REMOTE = 'remote.test';
export const alice = `@alice:${LOCAL}`;
export const rob = `@rob:${REMOTE}`;

export interface InboundRoom {
  store: SqliteStore;
  input: RoomInput;
  inbound: FederationInbound;
  remoteKey: SigningKey;
  roomId: string;
  version: RoomVersion;
  /** The newest event rob's next message cites (moved on by `message`). */
  tip: { eventId: string; depth: number };
  /** The IDs of the state events rob's messages cite as auth events. */
  auth: string[];
  /** The room's current state as event IDs, by (type, state_key) tuple. */
  stateIds(): Promise<Map<string, string>>;
  /** The auth events the selection algorithm picks from the current state for such an event. */
  authFor(pdu: { type: string; sender: string; state_key?: string; content?: JsonObject }): Promise<string[]>;
  /** Event IDs whose state groups the gap filler looked up, per lookup. */
  stateGroupLookups: string[][];
  /** `METHOD path` (first path segments) of each request the gap filler made to the origin. */
  requests: string[];
  /** A PDU signed by remote.test; in v1/v2 its references carry the cited events' real hashes. */
  build(spec: Omit<PduSpec, 'roomId'>): Promise<BuiltPdu>;
  /** A message by rob after `prev` (default: the tip, which it then becomes). */
  message(body: string, prev?: { eventId: string; depth: number }): Promise<BuiltPdu>;
  /** PUT /send from remote.test with these PDUs; the per-PDU answers. */
  send(txnId: string, pdus: Array<BuiltPdu | JsonValue>): Promise<Record<string, { error?: string }>>;
  close(): Promise<void>;
}

/** What the origin answers the gap filler (default: nothing, so gaps stay open). */
export type OriginAnswer = (method: string, path: string, body?: JsonObject) => Promise<JsonValue>;

export async function openInboundRoom(opts: { version?: RoomVersion; origin?: OriginAnswer } = {}): Promise<InboundRoom> {
  const version = opts.version ?? '12';
  const silent = pino({ level: 'silent' });
  const store = await openSqliteStore({ path: ':memory:', logger: silent });
  const localKey = generateSigningKey('l');
  const remoteKey = generateSigningKey('r');
  const keyRing = new StaticKeyRing();
  keyRing.add(LOCAL, localKey.keyId, localKey.publicKey);
  keyRing.add(REMOTE, remoteKey.keyId, remoteKey.publicKey);
  const notifier = new LocalNotifier();
  const pushActions = new PushActionComputer(new PushRulesService(store, notifier), LOCAL);
  const input = new RoomInput({
    store,
    notifier,
    serverName: LOCAL,
    signingKey: localKey,
    keyRing,
    pushActions: (eventId, pdu, state) => pushActions.compute(eventId, pdu, state),
  });
  const createContent: JsonObject = { room_version: version };
  // v11 dropped `creator`; v12 creators hold unlimited power and may not be listed in `users`.
  const before11 = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'].includes(version);
  if (before11) createContent.creator = alice;
  const users: JsonObject = version === '12' ? {} : { [alice]: 100 };
  const { roomId } = await input.createRoom(version === '12' ? null : `!inbound${Math.random().toString(36).slice(2)}:${LOCAL}`, version, alice, [
    { type: 'm.room.create', stateKey: '', sender: alice, content: createContent },
    { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
    { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users, users_default: 0, state_default: 50 } },
    { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
  ]);
  const stateIds = async () => new Map((await store.rooms.getCurrentState(roomId)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
  const build = async (spec: Omit<PduSpec, 'roomId'>): Promise<BuiltPdu> => {
    const cited = await store.rooms.getEvents([...spec.prevEvents, ...spec.authEvents]);
    return buildPdu({ ...spec, roomId }, REMOTE, remoteKey, version, (id) => cited.get(id)?.pdu);
  };

  // rob joins through room input, as a send_join would have it.
  const state = await stateIds();
  const extremities = await store.rooms.getForwardExtremities(roomId);
  const last = await store.rooms.getEvent(extremities[0]);
  const joinAuth = authEventTypesFor({ type: 'm.room.member', state_key: rob, sender: rob, content: { membership: 'join' } }, version)
    .map(([t, k]) => state.get(stateTuple(t, k)))
    .filter((id): id is string => id !== undefined);
  const join = await build({ sender: rob, type: 'm.room.member', stateKey: rob, content: { membership: 'join' }, prevEvents: extremities, authEvents: joinAuth, depth: last!.pdu.depth + 1 });
  const out = await input.receive(roomId, join.pdu, REMOTE);
  assert.equal(out.outcome, 'accepted', JSON.stringify(out));
  state.set(stateTuple('m.room.member', rob), join.eventId);
  const auth = authEventTypesFor({ type: 'm.room.message', sender: rob, content: {} }, version)
    .map(([t, k]) => state.get(stateTuple(t, k)))
    .filter((id): id is string => id !== undefined);

  // Counts the gap filler's store lookups of prev events, and its requests to the origin.
  const stateGroupLookups: string[][] = [];
  const rooms = store.rooms;
  const counted = new Proxy(rooms, {
    get(target, prop, receiver) {
      if (prop === 'getEventStateGroups') {
        return (ids: string[]) => {
          stateGroupLookups.push([...ids]);
          return target.getEventStateGroups(ids);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const requests: string[] = [];
  const countedStore = Object.assign(Object.create(store) as SqliteStore, { rooms: counted });
  const gaps = new GapFiller({
    store: countedStore,
    roomInput: input,
    keyRing,
    logger: silent,
    request: async (_origin, method, path, body) => {
      requests.push(`${method} ${path.split('?')[0].split('/').slice(0, 5).join('/')}`);
      return opts.origin ? opts.origin(method, path, body) : {};
    },
  });
  const inbound = new FederationInbound({
    serverName: LOCAL,
    signingKey: localKey,
    store: countedStore,
    roomInput: input,
    keyRing,
    typing: new TypingService(new EphemeralStream(), notifier),
    receipts: new ReceiptService(store, store.receipts, notifier),
    sender: new FederationSender({ serverName: LOCAL, client: { request: () => Promise.reject(new Error('no network in this test')) }, logger: silent, queue: store.federationQueue, watermark: () => store.currentPosition(), sends: false }),
    logger: silent,
    maxPdus: 50,
    maxEdus: 100,
    gaps,
  });

  const room: InboundRoom = {
    store,
    input,
    inbound,
    remoteKey,
    roomId,
    version,
    tip: { eventId: join.eventId, depth: join.pdu.depth },
    auth,
    stateIds,
    async authFor(pdu) {
      const now = await stateIds();
      return authEventTypesFor({ content: {}, ...pdu }, version)
        .map(([t, k]) => now.get(stateTuple(t, k)))
        .filter((id): id is string => id !== undefined);
    },
    stateGroupLookups,
    requests,
    build,
    async message(body, prev = room.tip) {
      const m = await build({ sender: rob, type: 'm.room.message', content: { msgtype: 'm.text', body }, prevEvents: [prev.eventId], authEvents: room.auth, depth: prev.depth + 1 });
      if (prev === room.tip) room.tip = { eventId: m.eventId, depth: m.pdu.depth };
      return m;
    },
    async send(txnId, pdus) {
      const raw = pdus.map((p) => (isBuilt(p) ? (p.pdu as unknown as JsonValue) : p));
      const res = await inbound.send(REMOTE, txnId, { origin: REMOTE, origin_server_ts: Date.now(), pdus: raw, edus: [] });
      return res.pdus as Record<string, { error?: string }>;
    },
    async close() {
      await input.drain();
      await store.close();
    },
  };
  return room;
}

function isBuilt(p: BuiltPdu | JsonValue): p is BuiltPdu {
  return typeof p === 'object' && p !== null && !Array.isArray(p) && 'eventId' in p && 'pdu' in p;
}

export type { Pdu };
