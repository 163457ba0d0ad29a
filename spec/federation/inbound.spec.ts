// FederationInbound.send on a real SQLite store and room input, without HTTP: a remote server
// (its key in a static key ring) pushes transactions into a room of this server. Checks the
// per-PDU answers (accepted, rejected, refused by ACL, unknown room) and that a chain of PDUs
// inside one transaction skips the gap filler (its format check and store lookup) for PDUs whose
// prev events the transaction itself just stored, while a real gap still goes to it.

import pino from 'pino';
import { assert } from '../helpers/assert.js';
import { buildPdu } from '../helpers/pdu-builder.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { authEventTypesFor } from '../../src/protocol/auth-rules.js';
import type { JsonObject, JsonValue, Pdu, SigningKey } from '../../src/protocol/types.js';
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

const LOCAL = 'local.test';
const REMOTE = 'remote.test';
const alice = `@alice:${LOCAL}`;
const rob = `@rob:${REMOTE}`;
const silent = pino({ level: 'silent' });

describe('federation/inbound: /send on a real store', () => {
  let store: SqliteStore;
  let input: RoomInput;
  let remoteKey: SigningKey;
  let roomId: string;
  let tip: { eventId: string; depth: number };
  let auth: string[];
  let stateGroupLookups: string[][];
  let requests: string[];
  let inbound: FederationInbound;

  beforeEach(async () => {
    store = await openSqliteStore({ path: ':memory:', logger: silent });
    const localKey = generateSigningKey('l');
    remoteKey = generateSigningKey('r');
    const keyRing = new StaticKeyRing();
    keyRing.add(LOCAL, localKey.keyId, localKey.publicKey);
    keyRing.add(REMOTE, remoteKey.keyId, remoteKey.publicKey);
    const notifier = new LocalNotifier();
    input = new RoomInput({ store, notifier, serverName: LOCAL, signingKey: localKey, keyRing });
    ({ roomId } = await input.createRoom(null, '12', alice, [
      { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '12' } },
      { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users_default: 0, state_default: 50 } },
      { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
    ]));
    const state = new Map((await store.rooms.getCurrentState(roomId)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
    const extremities = await store.rooms.getForwardExtremities(roomId);
    const last = await store.rooms.getEvent(extremities[0]);
    // rob joins through room input, as a send_join would have it.
    const joinAuth = [state.get(stateTuple('m.room.power_levels', ''))!, state.get(stateTuple('m.room.join_rules', ''))!];
    const join = buildPdu({ roomId, sender: rob, type: 'm.room.member', stateKey: rob, content: { membership: 'join' }, prevEvents: extremities, authEvents: joinAuth, depth: last!.pdu.depth + 1 }, REMOTE, remoteKey, '12');
    const out = await input.receive(roomId, join.pdu, REMOTE);
    assert.equal(out.outcome, 'accepted');
    state.set(stateTuple('m.room.member', rob), join.eventId);
    auth = authEventTypesFor({ type: 'm.room.message', sender: rob, content: {} }, '12')
      .map(([t, k]) => state.get(stateTuple(t, k)))
      .filter((id): id is string => id !== undefined);
    tip = { eventId: join.eventId, depth: join.pdu.depth };

    // Counts the gap filler's store lookups of prev events, and its requests to the origin.
    stateGroupLookups = [];
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
    requests = [];
    const countedStore = Object.assign(Object.create(store) as SqliteStore, { rooms: counted });
    const gaps = new GapFiller({
      store: countedStore,
      roomInput: input,
      keyRing,
      logger: silent,
      // The origin has nothing to give: gaps stay open.
      request: async (_origin, method, path) => {
        requests.push(`${method} ${path.split('?')[0].split('/').slice(0, 5).join('/')}`);
        return {};
      },
    });
    inbound = new FederationInbound({
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
  });

  afterEach(async () => {
    await input.drain();
    await store.close();
  });

  function message(body: string, prev = tip): { eventId: string; pdu: Pdu } {
    const m = buildPdu({ roomId, sender: rob, type: 'm.room.message', content: { msgtype: 'm.text', body }, prevEvents: [prev.eventId], authEvents: auth, depth: prev.depth + 1 }, REMOTE, remoteKey, '12');
    if (prev === tip) tip = { eventId: m.eventId, depth: m.pdu.depth };
    return m;
  }

  it('a chain of 50 PDUs: every one accepted under its event ID; only the first goes through the gap filler', async () => {
    const chain = Array.from({ length: 50 }, (_, i) => message(`m${i}`));
    const res = await inbound.send(REMOTE, 't1', { origin: REMOTE, origin_server_ts: Date.now(), pdus: chain.map((m) => m.pdu as unknown as JsonObject), edus: [] });
    assert.deepEqual(Object.keys(res.pdus as JsonObject).sort(), chain.map((m) => m.eventId).sort());
    for (const m of chain) assert.deepEqual((res.pdus as JsonObject)[m.eventId], {});
    // Only the first PDU cites an event from outside the transaction (rob's join, stored earlier).
    assert.deepEqual(stateGroupLookups, [[chain[0].eventId, chain[0].pdu.prev_events[0] as string]]);
    assert.deepEqual(requests, []);
    const stored = await store.rooms.getEvents(chain.map((m) => m.eventId));
    assert.equal(stored.size, 50);
    assert.ok([...stored.values()].every((e) => !e.outlier && e.rejected === null));
  });

  it('a PDU citing an unknown event still goes to the gap filler, which asks the origin', async () => {
    const first = message('before the gap');
    const gap = message('after the gap', { eventId: '$unknownunknownunknownunknownunknownunknown0', depth: first.pdu.depth });
    const res = await inbound.send(REMOTE, 't2', { origin: REMOTE, pdus: [first.pdu as unknown as JsonObject, gap.pdu as unknown as JsonObject] });
    assert.deepEqual((res.pdus as JsonObject)[first.eventId], {});
    assert.match(((res.pdus as JsonObject)[gap.eventId] as { error?: string }).error ?? '', /could not be fetched/);
    assert.equal(requests[0], 'POST /_matrix/federation/v1/get_missing_events');
    assert.ok(!(await store.rooms.getEvent(gap.eventId)));
  });

  it('answers under the right event IDs when room input cannot name the event: forged signature, bad format, ACL', async () => {
    const good = message('fine');
    const forged = message('forged');
    const sig = (forged.pdu.signatures[REMOTE] as Record<string, string>);
    const keyId = Object.keys(sig)[0];
    sig[keyId] = sig[keyId].replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const noSender = { ...(message('no sender', { eventId: good.eventId, depth: good.pdu.depth }).pdu as unknown as JsonObject) };
    delete noSender.sender;
    const res = await inbound.send(REMOTE, 't3', { origin: REMOTE, pdus: [good.pdu as unknown as JsonObject, forged.pdu as unknown as JsonObject, noSender as JsonValue] });
    const pdus = res.pdus as Record<string, { error?: string }>;
    assert.deepEqual(pdus[good.eventId], {});
    assert.match(pdus[forged.eventId].error ?? '', /signature/);
    // A PDU room input refuses before naming it (format) is reported under the ID we compute.
    const { computeEventId } = await import('../../src/protocol/events.js');
    assert.match(pdus[computeEventId(noSender, '12')].error ?? '', /sender/);
    assert.equal(Object.keys(pdus).length, 3);

    // A server ACL banning the origin: refused under the event's ID, never stored.
    await input.submit(roomId, { type: 'm.room.server_acl', stateKey: '', sender: alice, content: { allow: ['*'], deny: [REMOTE] } });
    const banned = await inbound.send(REMOTE, 't4', { origin: REMOTE, pdus: [message('banned', { eventId: good.eventId, depth: good.pdu.depth }).pdu as unknown as JsonObject] });
    const [[id, answer]] = Object.entries(banned.pdus as Record<string, { error?: string }>);
    assert.match(answer.error ?? '', /ACL/);
    assert.ok(!(await store.rooms.getEvent(id)));
  });

  it('PDUs for a room this server is not in are dropped without an answer', async () => {
    const other = buildPdu({ roomId: '!nowhere:remote.test', sender: rob, type: 'm.room.message', content: { body: 'x' }, prevEvents: [tip.eventId], authEvents: auth, depth: 9 }, REMOTE, remoteKey, '12');
    const res = await inbound.send(REMOTE, 't5', { origin: REMOTE, pdus: [other.pdu as unknown as JsonObject] });
    assert.deepEqual(res.pdus, {});
  });
});
