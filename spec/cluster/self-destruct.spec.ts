// MSC2228 self-destructing messages in a cluster (src/room/self-destruct.ts): one Cassandra
// keyspace and Redis prefix, worker A = client_api + sync (no room_writer: it runs no timer and
// never prunes), worker B = room_writer. A message sent through A is served whole by A (its read
// model and formatted-event cache hold it), pruned by B at its time, and then A serves the pruned
// copy from /messages, /event and a fresh /sync: B's prune announcement reached A.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { retryBusyCassandra, sharedWorkerConfig, tearDownSharedCluster, V3 } from './room-owner-helpers.js';

const KEY = 'org.matrix.self_destruct_after';

describe('cluster: self-destructing messages are pruned by the room writer, seen by every worker', function () {
  this.timeout(180_000);
  const keyspace = freshKeyspace('selfdestruct');
  const prefix = freshPrefix('selfdestruct');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-selfdestruct-'));
  let addr = '';
  let a: TestServer | null = null;
  let b: TestServer | null = null;

  const config = (roles: Array<'client_api' | 'sync' | 'room_writer'>): HearthConfigInput =>
    sharedWorkerConfig({ addr, keyspace, redisUrl: startRedis(), prefix, keyDir }, { roles, serverName: 'cluster.test', extra: { experimental: { msc2228_self_destruct: true } } });

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    b = await retryBusyCassandra('worker B', () => startTestServer(config(['room_writer'])));
    a = await retryBusyCassandra('worker A', () => startTestServer(config(['client_api', 'sync'])));
  });

  after(() => tearDownSharedCluster(addr, keyspace, keyDir, [a, b]));

  it('A serves the message whole until B prunes it, then pruned everywhere', async () => {
    const alice = await new Api(a!.url).register('alice');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'private_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId: string = created.body.room_id;
    const first = await alice.get(`${V3}/sync`);
    assert.equal(first.status, 200);
    const since: string = first.body.next_batch;
    const at = Date.now() + 2500;
    const sent = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'cluster secret', [KEY]: at });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const eventId: string = sent.body.event_id;

    const inMessages = async () => {
      const r = await alice.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.chunk as Array<{ event_id: string; content: Record<string, unknown> }>).find((e) => e.event_id === eventId)?.content;
    };
    // Incremental: the timeline since before the send, served from A's read model.
    const inSync = async () => {
      const r = await alice.get(`${V3}/sync?since=${enc(since)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.rooms?.join?.[roomId]?.timeline?.events as Array<{ event_id: string; content: Record<string, unknown> }> | undefined)?.find((e) => e.event_id === eventId)?.content;
    };
    // Read through A before the due time: A's read model and formatter now hold the whole copy.
    const early = await until('A serves the message in /sync', inSync);
    const earlyMessages = await inMessages();
    if (Date.now() < at) {
      assert.equal(early.body, 'cluster secret');
      assert.equal(earlyMessages?.body, 'cluster secret');
    }

    await until('A serves the pruned copy in /messages', async () => Object.keys((await inMessages()) ?? { x: 1 }).length === 0, 20_000);
    assert.ok(Date.now() >= at, 'not before its time');
    assert.deepEqual(await inSync(), {}, 'A\'s read model dropped the whole copy');
    const ev = await alice.get(`${V3}/rooms/${enc(roomId)}/event/${enc(eventId)}`);
    assert.deepEqual(ev.body.content, {});
    const owner = (s: TestServer) => (s.hearth.roomInput as unknown as { ownerStats: { acquired: number } }).ownerStats;
    assert.equal(owner(a!).acquired, 0, 'A never took a room lease');
    assert.deepEqual(await b!.hearth.store.eventExpiry.nextDue(10), [], 'the row is gone');
  });
});
