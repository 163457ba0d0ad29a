// Room owner epochs without a clock (src/cluster/room-leases.ts, src/store/cassandra/room-fence.ts):
// two workers on one Cassandra keyspace and a Redis of the spec's own, which it stops and starts
// again (its data lost, as a crashed Redis without persistence loses it).
// A worker whose clock ran an hour fast took the room under the old clock-seeded epochs (its
// epoch was its Date.now(): an hour ahead of everyone's), then Redis lost its epoch counters. The
// other workers (clocks right) are not locked out: their first write is refused, and, still
// holding the room's lease, the owner takes an epoch above the recorded one; sends through either
// worker are acknowledged, in one chain. The overtaken owner cannot write any more: not at its
// epoch, nor with a fresh acquisition at the same number (a store records a new epoch only
// strictly above the last).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freePort } from '../helpers/child-server.js';
import { buildPdu } from '../helpers/pdu-builder.js';
import { freshPrefix, OwnRedis } from '../helpers/redis.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { loadOrCreateSigningKey } from '../../src/protocol/keyfile.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { StaleWriterError } from '../../src/store/types.js';
import { Client, retryBusyCassandra, sharedWorkerConfig, V3 } from './room-owner-helpers.js';

const SERVER = 'epochs.test';

describe('cluster: room epochs after Redis lost its data, whatever the worker clocks', function () {
  this.timeout(240_000);
  const keyspace = freshKeyspace('epochs');
  const prefix = freshPrefix('epochs');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-epochs-'));
  let addr = '';
  let redis: OwnRedis;
  let w1: TestServer | null = null;
  let w2: TestServer | null = null;
  let fast: CassandraStore | null = null;

  const config = (): HearthConfigInput => sharedWorkerConfig({ addr, keyspace, redisUrl: redis.url, prefix, keyDir }, { serverName: SERVER });

  before(async function () {
    this.timeout(600_000);
    redis = new OwnRedis(await freePort(), join(keyDir, 'redis'));
    redis.start();
    addr = await startCassandra();
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(config()));
    w2 = await retryBusyCassandra('worker 2', () => startTestServer(config()));
    // The fast worker's store: only its room writes matter here.
    fast = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: true });
  });

  after(async () => {
    await w1?.stop().catch(() => undefined);
    await w2?.stop().catch(() => undefined);
    await fast?.close().catch(() => undefined);
    redis?.stop();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('the other workers keep writing after the fast one and a Redis restart; the overtaken owner cannot write', async () => {
    const alice = await new Api(w1!.url).register('alice');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'private_chat', room_version: '11' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId: string = created.body.room_id;
    const servers = () => [w1, w2];
    await new Client(alice, servers, 0).send(roomId, 'before', 'before');

    const ks = await cassandraClient(addr, keyspace);
    const recorded = async () =>
      Number((await ks.execute('SELECT epoch FROM room_owner_epochs WHERE room_id = ?', [roomId], { prepare: true })).first()?.['epoch']);
    try {
      const fastEpoch = Date.now() + 3_600_000;
      assert.ok((await recorded()) < fastEpoch);
      await fast!.rooms.fenceRoom!(roomId, fastEpoch);
      assert.equal(await recorded(), fastEpoch, 'the fast worker owns the room in the store');
      redis.stop();
      redis.start();

      // Through worker 2, then worker 1: each takes the room (its epoch counted from 1 again).
      const sent: string[] = [];
      const t0 = Date.now();
      sent.push(await new Client(alice, servers, 1).send(roomId, 'after-1', 'after 1'));
      sent.push(await new Client(alice, servers, 0).send(roomId, 'after-2', 'after 2'));
      const tookMs = Date.now() - t0;
      assert.ok(tookMs < 45_000, `acknowledged within the retry budget (${tookMs} ms)`);
      assert.ok((await recorded()) > fastEpoch, 'the room is owned above the fast epoch now');
      const rooms = w1!.hearth.store.rooms;
      assert.deepEqual(await rooms.getForwardExtremities(roomId), [sent[1]], 'one chain: one forward extremity');
      assert.deepEqual((await rooms.getEvent(sent[1]!))!.pdu.prev_events, [sent[0]], 'the second send cites the first');

      // The overtaken owner: its commit is refused at its epoch, and it writes nothing.
      const stale = (err: unknown) => err instanceof StaleWriterError;
      const key = await loadOrCreateSigningKey(join(keyDir, 'signing.key'));
      const head = (await rooms.getEvent(sent[1]!))!;
      const auth = (await rooms.getCurrentState(roomId)).filter((e) => ['m.room.create', 'm.room.power_levels'].includes(e.type) || e.stateKey === alice.userId).map((e) => e.eventId);
      const late = buildPdu({ roomId, sender: alice.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: 'late' }, prevEvents: [sent[1]!], authEvents: auth, depth: head.pdu.depth + 1 }, SERVER, key, '11');
      await assert.rejects(
        fast!.rooms.persistEvent({ eventId: late.eventId, pdu: late.pdu, stateDelta: [], forwardExtremities: [late.eventId], fence: { epoch: fastEpoch } }),
        stale,
      );
      assert.equal(await rooms.getEvent(late.eventId), null);
      // Nor under a fresh acquisition that happens to get the recorded number (a Redis that
      // lost its data counting up to it again): the store records only strictly higher epochs.
      const now = await recorded();
      const other = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: true });
      try {
        await assert.rejects(other.rooms.fenceRoom!(roomId, now), stale);
        await assert.rejects(
          other.rooms.persistEvent({ eventId: late.eventId, pdu: late.pdu, stateDelta: [], forwardExtremities: [late.eventId], fence: { epoch: now } }),
          stale,
        );
      } finally {
        await other.close();
      }
      assert.equal(await rooms.getEvent(late.eventId), null);
      assert.equal(await recorded(), now);
    } finally {
      await ks.shutdown();
    }
  });
});
