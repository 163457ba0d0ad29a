// Hearth serving real clients with storage.backend: cassandra (a real single node from
// scripts/cassandra.sh): registration, rooms, ordered idempotent sends, /sync and /messages,
// matrix-js-sdk clients chatting, and a restart on the same keyspace that loses nothing.

import type { MatrixClient } from 'matrix-js-sdk';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { loadSdk, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('Hearth on Cassandra (end to end)', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  this.timeout(120_000);
  const keyspace = freshKeyspace('server');
  let addr = '';
  let srv: TestServer | null = null;
  let dataDir = '';
  let alice: Api & { userId: string; deviceId: string };
  let bob: Api & { userId: string; deviceId: string };
  let roomId = '';
  let bobSince = '';
  const sent: string[] = [];

  const start = async () => {
    srv = await startTestServer(
      { storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } } },
      dataDir || undefined,
    );
    dataDir = srv.dataDir;
    return srv;
  };

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    await start();
  });

  after(async function () {
    this.timeout(180_000);
    await srv?.stop();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace);
    await admin.shutdown();
  });

  it('registers, creates a room, invites and joins', async function () {
    const api = new Api(srv!.url);
    alice = await api.register('alice');
    bob = await api.register('bob');
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [bob.userId], name: 'cassandra' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const joined = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const members = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
    assert.deepEqual(Object.keys(members.body.joined).sort(), [alice.userId, bob.userId].sort());
    const first = await bob.get('/_matrix/client/v3/sync');
    assert.equal(first.status, 200);
    assert.ok(first.body.rooms.join[roomId], 'the joined room is in bob\'s initial sync');
    bobSince = first.body.next_batch;
  });

  it('sends in order, deduplicates a retried txnId, and serves them to /sync and /messages', async function () {
    for (let i = 0; i < 15; i++) {
      const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${i}`, { msgtype: 'm.text', body: `m${i}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      sent.push(r.body.event_id);
    }
    const retry = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t3`, { msgtype: 'm.text', body: 'm3' });
    assert.equal(retry.body.event_id, sent[3], 'same txnId, same event');
    const inc = await bob.get(`/_matrix/client/v3/sync?since=${enc(bobSince)}&timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`);
    const timeline = inc.body.rooms.join[roomId].timeline.events as Array<{ event_id: string; content: { body?: string } }>;
    assert.deepEqual(
      timeline.filter((e) => sent.includes(e.event_id)).map((e) => e.event_id),
      sent,
      'every message once, in send order',
    );
    bobSince = inc.body.next_batch;
    const back = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=5`);
    assert.equal(back.status, 200);
    assert.deepEqual(
      (back.body.chunk as Array<{ event_id: string }>).map((e) => e.event_id),
      sent.slice(-5).reverse(),
    );
    const older = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=5&from=${enc(back.body.end)}`);
    assert.deepEqual(
      (older.body.chunk as Array<{ event_id: string }>).map((e) => e.event_id),
      sent.slice(-10, -5).reverse(),
    );
  });

  it('matrix-js-sdk clients chat through it', async function () {
    const sdk: Sdk = await loadSdk();
    const rec = new RequestRecorder();
    const running: MatrixClient[] = [];
    try {
      const a = sdkClient(sdk, srv!.url, rec, 'alice', { userId: alice.userId, accessToken: alice.token!, deviceId: alice.deviceId });
      const b = sdkClient(sdk, srv!.url, rec, 'bob', { userId: bob.userId, accessToken: bob.token!, deviceId: bob.deviceId });
      for (const c of [a, b]) {
        running.push(c);
        await c.startClient({ initialSyncLimit: 5 });
        await untilPrepared(sdk, c, c.getUserId()!);
      }
      const { event_id } = await b.sendTextMessage(roomId, 'hello from the sdk');
      const got = await until(
        a as any,
        [sdk.RoomEvent.Timeline],
        () => a.getRoom(roomId)?.findEventById(event_id),
        'alice receives bob\'s message',
      );
      assert.equal(got.getContent().body, 'hello from the sdk');
      sent.push(event_id);
    } finally {
      await stopClients(running, rec);
    }
  });

  it('a restart on the same keyspace loses nothing, and old sync tokens keep working', async function () {
    const before = await bob.get(`/_matrix/client/v3/sync?since=${enc(bobSince)}&timeout=0`);
    bobSince = before.body.next_batch;
    await srv!.stop();
    srv = null;
    await start();
    alice = Object.assign(new Api(srv!.url, alice.token), { userId: alice.userId, deviceId: alice.deviceId });
    bob = Object.assign(new Api(srv!.url, bob.token), { userId: bob.userId, deviceId: bob.deviceId });
    const after = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/after-restart`, { msgtype: 'm.text', body: 'after' });
    assert.equal(after.status, 200, JSON.stringify(after.body));
    const inc = await bob.get(`/_matrix/client/v3/sync?since=${enc(bobSince)}&timeout=5000`);
    assert.equal(inc.status, 200, JSON.stringify(inc.body));
    const ids = (inc.body.rooms?.join?.[roomId]?.timeline?.events ?? []).map((e: { event_id: string }) => e.event_id);
    assert.deepEqual(ids, [after.body.event_id], 'exactly the new message, nothing replayed');
    const all = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
    const history = (all.body.chunk as Array<{ event_id: string }>).map((e) => e.event_id).reverse();
    const mine = history.filter((id) => sent.includes(id) || id === after.body.event_id);
    assert.deepEqual(mine, [...sent, after.body.event_id], 'history intact and ordered after the restart');
  });
});
