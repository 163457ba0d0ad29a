// Worker roles on a real cluster (one Cassandra keyspace, one Redis prefix): worker A runs
// client_api + sync, worker B room_writer + pusher (cluster.roles, src/cluster/roles.ts).
// Shows: a client of A creates rooms and sends; every event is written by B (A never takes a
// room lease, B serves every forwarded call, B's events_persisted counter moves and A's does
// not), and /sync on A delivers them; B serves no client route (404 M_UNRECOGNIZED) and no
// WebSocket stream, A no federation; with no writer alive a send answers a retryable 503 at
// once, and the same send (same txnId) succeeds once a writer is back; only a federation_in
// worker opens the federation listener.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, redisClient, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { SOCKET_PATH } from '../../src/sync/socket/protocol.js';
import { Client, sinceNow, V3, type User } from './room-owner-helpers.js';

type Role = 'client_api' | 'sync' | 'room_writer' | 'pusher';

describe('cluster: worker roles (A = client_api + sync, B = room_writer + pusher)', function () {
  this.timeout(180_000);
  const keyspace = freshKeyspace('roles');
  const prefix = freshPrefix('roles');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-roles-key-'));
  let addr = '';
  let a: TestServer | null = null;
  let b: TestServer | null = null;
  let c: TestServer | null = null;
  let alice: User;
  let bob: User;

  const config = (roles: Role[]): HearthConfigInput => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000, roles },
    signing_key_path: join(keyDir, 'signing.key'),
  });

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    b = await startTestServer(config(['room_writer', 'pusher']));
    a = await startTestServer(config(['client_api', 'sync']));
    alice = await new Api(a.url).register('alice');
    bob = await new Api(a.url).register('bob');
  });

  after(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await c?.stop().catch(() => undefined);
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  const owner = (s: TestServer) => s.hearth.roomInput as unknown as { ownerNodeId: string; ownerStats: { forwarded: number; served: number; acquired: number } };

  async function persisted(s: TestServer): Promise<number> {
    const text = await (await fetch(`${s.metricsUrl}/metrics`)).text();
    const m = /^hearth_events_persisted_total (\d+)/m.exec(text);
    assert.ok(m, 'the metric is exported');
    return Number(m[1]);
  }

  it('a client of A creates rooms and sends; B writes every event, and /sync on A delivers them', async () => {
    const servers = () => [a];
    const ca = new Client(alice, servers, 0);
    const cb = new Client(bob, servers, 0);
    const persistedA = await persisted(a!);
    const persistedB = await persisted(b!);
    const servedB = owner(b!).ownerStats.served;
    // v12 (the default: the room ID comes from the create event B builds) and v11 (an ID chosen
    // first), the first with an alias claimed as part of the creation.
    const rooms: string[] = [];
    for (const extra of [{ room_alias_name: 'split' }, { room_version: '11' }]) {
      const created = await ca.api().post(`${V3}/createRoom`, { preset: 'private_chat', invite: [bob.userId], ...extra });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      rooms.push(created.body.room_id as string);
      const joined = await cb.api().post(`${V3}/rooms/${enc(created.body.room_id)}/join`, {});
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
    }
    const alias = await ca.api().get(`${V3}/directory/room/${enc('#split:localhost')}`);
    assert.equal(alias.status, 200, JSON.stringify(alias.body));
    assert.equal(alias.body.room_id, rooms[0]);

    for (const roomId of rooms) {
      const since = await sinceNow(cb);
      const acked = new Set<string>();
      for (let i = 0; i < 5; i++) acked.add(await ca.send(roomId, `m${i}`, `message ${i}`));
      const seen = await cb.syncUntil(roomId, acked, since);
      assert.deepEqual(seen.map((s) => s.body), [0, 1, 2, 3, 4].map((i) => `message ${i}`), 'bob\'s /sync on A has every message once, in order');
      // While the room is busy its lease is B's.
      const check = redisClient();
      const lease = await check.get(`${prefix}ro:lease:${roomId}`);
      check.disconnect();
      if (lease !== null) assert.ok(lease.startsWith(`${owner(b!).ownerNodeId}:`), `the lease is B's (${lease})`);
    }
    assert.equal(owner(a!).ownerStats.acquired, 0, 'A (no room_writer) never took a room lease');
    assert.ok(owner(a!).ownerStats.forwarded > 0);
    assert.ok(owner(b!).ownerStats.served - servedB >= 2 + 2 + 10, 'B served the creations, the joins and the sends');
    assert.equal(await persisted(a!), persistedA, 'nothing was persisted on A');
    // Each room: at least its initial events, bob's join and five messages.
    assert.ok((await persisted(b!)) - persistedB >= 2 * (6 + 1 + 5), 'B persisted the events');
  });

  it('B serves no client route (404 M_UNRECOGNIZED) and no WebSocket stream; health and versions stay', async () => {
    const onB = new Api(b!.url, alice.token);
    for (const [method, path] of [
      ['POST', `${V3}/createRoom`],
      ['GET', `${V3}/sync`],
      ['POST', `${V3}/login`],
      ['PUT', `${V3}/rooms/${enc('!x:localhost')}/send/m.room.message/t1`],
      ['GET', `${V3}/profile/${enc(alice.userId)}`],
    ] as const) {
      const r = await onB.req(method, path, method === 'GET' ? undefined : {});
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.errcode, 'M_UNRECOGNIZED');
    }
    assert.equal((await onB.get('/health')).status, 200);
    const versions = await onB.get('/_matrix/client/versions');
    assert.equal(versions.status, 200);
    assert.ok(Array.isArray(versions.body.versions));
    const opened = await new Promise<boolean>((resolve) => {
      const ws = new WebSocket(`${b!.url.replace('http', 'ws')}${SOCKET_PATH}`);
      ws.on('open', () => {
        ws.close();
        resolve(true);
      });
      ws.on('error', () => resolve(false));
      ws.on('unexpected-response', (_req, res) => {
        res.resume();
        resolve(false);
      });
    });
    assert.equal(opened, false, 'B runs no socket server');
    // A serves the client API and /sync, and has no federation listener (no federation roles).
    assert.equal((await new Api(a!.url, alice.token).get(`${V3}/profile/${enc(alice.userId)}`)).status, 200);
    assert.equal(a!.hearth.federation, undefined);
  });

  it('with no writer alive a send answers a retryable 503 at once; the same send succeeds when a writer is back', async () => {
    const ca = new Client(alice, () => [a], 0);
    const cb = new Client(bob, () => [a], 0);
    const t0 = Date.now();
    const created = await ca.api().post(`${V3}/createRoom`, { preset: 'private_chat', invite: [bob.userId] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id as string;
    assert.equal((await cb.api().post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    const since = await sinceNow(cb);
    // The only writer leaves (a clean stop takes it out of the writer set and releases its leases).
    await b!.stop();
    b = null;
    const send = () => ca.api().put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/while-down`, { msgtype: 'm.text', body: 'while down' });
    const refused = await send();
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    // At once, not after a wait: the refusal of an empty writer set, not the forward deadline's
    // "did not answer" (6 s later). Told apart by what it says, not by a clock.
    assert.match(String(refused.body.error), /^No room writer is running/);
    assert.equal(typeof refused.body.errcode, 'string');
    assert.equal(typeof refused.body.error, 'string');
    assert.ok(Number(refused.body.retry_after_ms) > 0, 'with retry_after_ms');
    const create = await ca.api().post(`${V3}/createRoom`, {});
    assert.equal(create.status, 503, JSON.stringify(create.body));
    // A writer comes back; the client's retry (same txnId) goes through, once.
    // A worker that starts under the Cassandra worker ID B just released continues that ID's
    // persisted position mark, up to a minute ahead of the clock, and what it writes waits that
    // long for the cluster watermark (src/store/cassandra/positions.ts; a known stall, not a
    // roles matter). A sync-only worker takes the freed ID here, so the new writer gets a fresh one.
    c = await startTestServer(config(['sync']));
    b = await startTestServer(config(['room_writer', 'pusher']));
    const id = await ca.send(roomId, 'while-down', 'while down');
    assert.equal(await ca.send(roomId, 'while-down', 'while down'), id, 'the retry is idempotent');
    const seen = await cb.syncUntil(roomId, new Set([id]), since);
    assert.deepEqual(seen.map((s) => s.body), ['while down']);
    assert.equal(owner(a!).ownerStats.acquired, 0);
    assert.ok(Date.now() - t0 < 30_000, `recovered in ${Date.now() - t0} ms`);
  });

  it('federation_in opens the federation listener; a worker with federation configured but without it opens none', async () => {
    const federated = (roles: string[]): HearthConfigInput => ({
      ...config(roles as Role[]),
      listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, tls: false, port: 0 } },
    });
    const w = await startTestServer(federated(['room_writer', 'federation_in', 'federation_out']));
    const v = await startTestServer(federated(['client_api', 'sync']));
    try {
      assert.match(w.hearth.federation!.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const version = await fetch(`${w.hearth.federation!.url}/_matrix/federation/v1/version`);
      assert.equal(version.status, 200);
      assert.ok(v.hearth.federation, 'the client worker still has federation (remote joins, EDUs)');
      assert.equal(v.hearth.federation!.url, '', 'but no listener');
    } finally {
      await v.stop();
      await w.stop();
    }
  });
});
