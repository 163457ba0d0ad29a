// A received federation event's gap states (the states its sender reported after the prev events
// we do not have) reach the room's owner in a cluster (src/cluster/owned-room-input.ts,
// src/cluster/forwarded-gap-states.ts): the wire form round-trips any state key and refuses a bad
// shape; and end to end, on one Cassandra keyspace and Redis prefix, an event whose only prev is
// unknown is judged with the reported state, whether it arrives at the owner (worker W, room_writer)
// or at a worker that forwards it (worker F, client_api + sync): accepted with exactly that state
// before it, as one node would, not stored as an outlier.

import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { buildPdu } from '../helpers/pdu-builder.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { decodeGapStates, encodeGapStates } from '../../src/cluster/forwarded-gap-states.js';
import { parseTrustedJson } from '../../src/protocol/canonical-json.js';
import { loadOrCreateSigningKey } from '../../src/protocol/keyfile.js';
import { stateTuple, type SigningKey } from '../../src/protocol/types.js';
import { retryBusyCassandra, sharedWorkerConfig, tearDownSharedCluster, V3 } from './room-owner-helpers.js';

describe('cluster: forwarded gap states', function () {
  describe('the wire form', () => {
    it('round-trips every entry in order, keys like __proto__ included, through JSON with null prototypes', () => {
      const a = new Map([
        [stateTuple('m.room.member', '__proto__'), '$a'],
        [stateTuple('m.room.create', ''), '$b'],
        [stateTuple('constructor', 'x'), '$c'],
      ]);
      const b = new Map([[stateTuple('m.room.topic', ''), '$d']]);
      const back = decodeGapStates(parseTrustedJson(JSON.stringify(encodeGapStates([a, b]))));
      assert.ok(back);
      assert.equal(back.length, 2);
      assert.deepEqual([...back[0]!.entries()], [...a.entries()]);
      assert.deepEqual([...back[1]!.entries()], [...b.entries()]);
      assert.equal(decodeGapStates(undefined), undefined);
      assert.equal(decodeGapStates(null), undefined);
    });

    it('refuses anything but arrays of [key, eventId] string pairs', () => {
      for (const bad of [{}, 'x', [{}], [[['k']]], [[['k', 1]]], [[['k', '$a', '$b']]], [[{ 0: 'k', 1: '$a' }]]]) {
        assert.throws(() => decodeGapStates(bad), /forwarded gap states/, JSON.stringify(bad));
      }
    });
  });

  describe('end to end on two workers (Cassandra + Redis)', function () {
    this.timeout(180_000);
    const keyspace = freshKeyspace('gapfwd');
    const prefix = freshPrefix('gapfwd');
    const keyDir = mkdtempSync(join(tmpdir(), 'hearth-gapfwd-'));
    const SERVER = 'cluster.test';
    let addr = '';
    let writer: TestServer | null = null;
    let forwarder: TestServer | null = null;
    let key: SigningKey;

    const config = (roles: Array<'client_api' | 'sync' | 'room_writer'>): HearthConfigInput =>
      sharedWorkerConfig({ addr, keyspace, redisUrl: startRedis(), prefix, keyDir }, { roles, serverName: SERVER });

    before(async function () {
      this.timeout(600_000);
      addr = await startCassandra();
      writer = await retryBusyCassandra('worker W', () => startTestServer(config(['client_api', 'sync', 'room_writer'])));
      forwarder = await retryBusyCassandra('worker F', () => startTestServer(config(['client_api', 'sync'])));
      key = await loadOrCreateSigningKey(join(keyDir, 'signing.key'));
    });

    after(() => tearDownSharedCluster(addr, keyspace, keyDir, [forwarder, writer]));

    it('an event after a gap is accepted with the reported state, received at the owner or forwarded to it', async () => {
      const alice = await new Api(writer!.url).register('alice');
      const created = await alice.post(`${V3}/createRoom`, { preset: 'private_chat', room_version: '11' });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const roomId: string = created.body.room_id;
      const store = writer!.hearth.store;
      const current = await store.rooms.getCurrentState(roomId);
      const id = (type: string, stateKey: string) => current.find((e) => e.type === type && e.stateKey === stateKey)!.eventId;
      const auth = [id('m.room.create', ''), id('m.room.power_levels', ''), id('m.room.member', alice.userId)];
      // What the sender reports after the missing prev: the room's state without its join rules,
      // so the state the owner stores before the event shows whose state it used.
      const reported = new Map(current.filter((e) => e.type !== 'm.room.join_rules').map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
      assert.equal(reported.size, current.length - 1);
      const depth = Math.max(...[...(await store.rooms.getEvents(current.map((e) => e.eventId))).values()].map((e) => e.pdu.depth)) + 10;

      for (const [where, server] of [['forwarded from F', forwarder!], ['at the owner W', writer!]] as const) {
        // Shaped like a room v11 event ID; no server has it.
        const gapPrev = `$${randomBytes(32).toString('base64url')}`;
        const ev = buildPdu({ roomId, sender: alice.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: where }, prevEvents: [gapPrev], authEvents: auth, depth }, SERVER, key, '11');
        const out = await server.hearth.roomInput.receive(roomId, structuredClone(ev.pdu), 'peer.test', [reported]);
        assert.equal(out.outcome, 'accepted', `${where}: ${JSON.stringify(out)}`);
        const before = await store.rooms.getStateAtEvent(ev.eventId, 'before');
        assert.ok(before, `${where}: stored with a state`);
        assert.deepEqual(
          new Map(before.map((e) => [stateTuple(e.type, e.stateKey), e.eventId])),
          reported,
          `${where}: the state before it is the one its sender reported`,
        );
      }
      const stats = (s: TestServer) => (s.hearth.roomInput as unknown as { ownerStats: { forwarded: number; acquired: number } }).ownerStats;
      assert.ok(stats(forwarder!).forwarded >= 1, 'F forwarded the event');
      assert.equal(stats(forwarder!).acquired, 0, 'F never took the room');
    });
  });
});
