// Remote users' device-list caches across two workers (src/cluster/device-list-invalidation.ts):
// server B is two workers on one keyspace and Redis prefix (W1 holds B's federation listener,
// W2 serves clients only), C is a single-node server. bob@B shares a room with carol@C, and both
// workers cache carol's list because bob asked each of them. Then:
// - carol adds a device: C's m.device_list_update reaches W1 only, which applies it in place;
//   W2 must drop its copy (the announcement), so bob's /keys/query through W2 names the device;
// - carol leaves the only shared room: the event is stored by W1, whose hook drops its copy; W2
//   must drop its copy too (the replication feed), so once C stops sending updates, W2 does not
//   keep serving a list that can no longer be trusted.
// Both fail on the code before (W2 kept its copy for the cache's hour).
// And the other way: bob's new device, uploaded through W2, reaches C as one update with its keys,
// published by one worker (the holder of the device-list outbox's lease,
// src/federation/device-list-outbox.ts), not once per worker.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, startFederated, syncUntil, waitFor } from '../helpers/federation.js';
import { login, PASSWORD, TestDevice, uploadDevice, type User } from '../api/keys-helpers.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';
import { DEVICE_LIST_CURSOR } from '../../src/federation/device-list-outbox.js';
import { retryBusyCassandra, V3 } from './room-owner-helpers.js';

describe('cluster: remote device-list caches drop on every worker', function () {
  this.timeout(180_000);
  const keyspace = freshKeyspace('devlists');
  const prefix = freshPrefix('devlists');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-devlists-'));
  let addr = '';
  let fedPort = 0;
  let w1: TestServer | null = null;
  let w2: TestServer | null = null;
  let c: TestServer | null = null;
  let carol: User;
  let bob1: User; // bob through W1
  let bob2: User; // bob through W2
  let roomId = '';

  const config = (roles: string[]): HearthConfigInput => ({
    server_name: `127.0.0.1:${fedPort}`,
    listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port: fedPort } },
    federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000, roles: roles as never },
    signing_key_path: join(keyDir, 'signing.key'),
  });
  const lists = (w: TestServer) => w.hearth.federation!.e2ee!.remote;
  const devicesVia = async (u: User): Promise<string[]> => {
    const q = await u.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    assert.deepEqual(q.body.failures, {});
    return Object.keys(q.body.device_keys[carol.userId] ?? {}).sort();
  };

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    fedPort = await freePort();
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(config(['all'])));
    w2 = await retryBusyCassandra('worker 2', () => startTestServer(config(['client_api', 'sync', 'room_writer'])));
    c = await startFederated(await freePort());
    carol = await new Api(c.url).register('carol', PASSWORD);
    await uploadDevice(carol, new TestDevice(carol.userId, carol.deviceId), 1);
    bob1 = await new Api(w1.url).register('bob', PASSWORD);
    bob2 = await login(w2.url, 'bob');
    const created = await carol.post(`${V3}/createRoom`, { preset: 'private_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob1.userId })).status, 200);
    await syncUntil(bob1, (body) => body.rooms?.invite?.[roomId], 30_000);
    const joined = await bob1.post(`${V3}/join/${enc(roomId)}?server_name=${enc(c.hearth.config.server_name)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await waitFor(async () => (await w2!.hearth.store.rooms.getRoomsForUser(bob1.userId, ['join'])).length > 0, 15_000, 'W2 sees the join');
  });

  after(async () => {
    await w2?.stop().catch(() => undefined);
    await w1?.stop().catch(() => undefined);
    await c?.stop().catch(() => undefined);
    await closeFedRequests();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it("bob's new device uploaded through W2 reaches C as one m.device_list_update, published by one worker", async () => {
    const fromB: JsonObject[] = [];
    const inbound = c!.hearth.federation!.inbound;
    const send = inbound.send.bind(inbound);
    const txns = new Set<string>();
    inbound.send = (origin: string, txnId: string, body: JsonValue | undefined) => {
      if (origin === w1!.hearth.config.server_name && !txns.has(txnId)) {
        txns.add(txnId);
        for (const e of (body as { edus?: JsonObject[] } | undefined)?.edus ?? []) fromB.push(e);
      }
      return send(origin, txnId, body);
    };
    try {
      const phone = await login(w2!.url, 'bob');
      const dev = new TestDevice(bob1.userId, phone.deviceId);
      await uploadDevice(phone, dev, 1);
      const ofPhone = () => fromB.filter((e) => e.edu_type === 'm.device_list_update' && (e.content as any).device_id === phone.deviceId && (e.content as any).keys);
      await waitFor(async () => ofPhone().length > 0, 30_000, "C to receive the phone's keys");
      assert.deepEqual((ofPhone()[0]!.content as any).keys.keys, (dev.deviceKeys() as any).keys);
      const cursor = await w1!.hearth.store.federationQueue.getCursor(DEVICE_LIST_CURSOR);
      assert.ok(cursor !== null && cursor > 0, 'the outbox cursor moved');
      await new Promise((r) => setTimeout(r, 2_000)); // a second worker's copy would be queued and sent by now
      assert.equal(ofPhone().length, 1, `one update, not one per worker: ${JSON.stringify(ofPhone())}`);
    } finally {
      inbound.send = send;
    }
  });

  it("an update that reached W1 drops W2's copy: bob asking W2 sees carol's new device", async () => {
    assert.deepEqual(await devicesVia(bob1), [carol.deviceId]);
    assert.deepEqual(await devicesVia(bob2), [carol.deviceId]);
    assert.ok(lists(w1!).cached(carol.userId), 'W1 holds the list');
    assert.ok(lists(w2!).cached(carol.userId), 'W2 holds the list');
    const w2Resyncs = lists(w2!).resyncs;

    const laptop = await login(c!.url, 'carol');
    await uploadDevice(laptop, new TestDevice(carol.userId, laptop.deviceId), 1);
    // W1 applies C's update in place (W1 is where C's transactions arrive).
    await waitFor(async () => lists(w1!).cached(carol.userId)?.devices.has(laptop.deviceId) === true, 30_000, 'W1 applied the update');
    await waitFor(async () => lists(w2!).cached(carol.userId) === undefined, 10_000, "W2 dropped its copy");
    assert.deepEqual(await devicesVia(bob2), [carol.deviceId, laptop.deviceId].sort());
    assert.equal(lists(w2!).resyncs, w2Resyncs + 1, 'W2 fetched the list again');
    // The announcing worker kept its current copy.
    assert.ok(lists(w1!).cached(carol.userId)?.devices.has(laptop.deviceId));
  });

  it("carol leaving the only shared room drops both workers' copies; W2 then asks C afresh", async () => {
    assert.ok(lists(w2!).cached(carol.userId) ?? (await devicesVia(bob2), lists(w2!).cached(carol.userId)), 'W2 holds the list');
    assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    await waitFor(async () => lists(w1!).cached(carol.userId) === undefined, 30_000, 'W1 dropped the list');
    await waitFor(async () => lists(w2!).cached(carol.userId) === undefined, 10_000, 'W2 dropped the list');
    // C sends no updates any more: a device added now is only seen by asking C.
    const phone = await login(c!.url, 'carol');
    await uploadDevice(phone, new TestDevice(carol.userId, phone.deviceId), 1);
    assert.ok((await devicesVia(bob2)).includes(phone.deviceId), 'W2 asked C instead of serving the dropped list');
    assert.equal(lists(w2!).cached(carol.userId), undefined, 'and keeps no copy of a list nobody keeps current');
  });
});
