// Application-service delivery on a cluster (src/cluster/appservice-leases.ts): two workers on one
// Cassandra keyspace and Redis prefix, both configured with the same AS (a real HTTP server,
// spec/appservice/fake-as.ts) and delivery enabled. Worker 1 runs in this process, worker 2 is
// the server binary in a child process (so it can be SIGKILLed).
// Shows: exactly one worker delivers (one lease holder; the AS sees one sequence of transaction
// IDs, growing, never two transactions under one ID) while clients send through both; a clean stop of
// the deliverer hands over at once and the successor resends the transaction left in flight
// under its ID with the same events; a SIGKILLed deliverer is replaced after the lease lapses;
// every event is delivered, none twice except as a retry of the same transaction ID.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, redisClient, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import type { ChildServer } from '../helpers/child-server.js';
import { FakeAppService, writeRegistrations, type ReceivedTxn } from '../appservice/fake-as.js';
import { retryBusyCassandra, showChildWarningsOnFailure, sleep, startChildWorker, V3 } from './room-owner-helpers.js';
import { until } from '../helpers/until.js';

const AS_TOKEN = 'as-token-lease-0123456789';
const LEASE_MS = 3_000;

describe('cluster: one application-service deliverer across workers (lease per AS)', function () {
  this.timeout(240_000);
  const keyspace = freshKeyspace('aslease');
  const prefix = freshPrefix('aslease');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-aslease-'));
  const fake = new FakeAppService();
  let regFiles: string[] = [];
  let addr = '';
  let w1: TestServer | null = null;
  let child: ChildServer | null = null;
  let alice: Api;
  let roomId = '';
  const sent: string[] = [];

  const shared = () => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000 },
    signing_key_path: join(keyDir, 'signing.key'),
    app_services: regFiles,
    app_service_delivery: { min_backoff_ms: 50, max_backoff_ms: 200, lease_ms: LEASE_MS },
    outbound: { ip_range_whitelist: ['127.0.0.0/8'] },
  });

  const leaseHolder = async (): Promise<string | null> => {
    const r = redisClient();
    try {
      return await r.get(`${prefix}as:lease:bridge`);
    } finally {
      r.disconnect();
    }
  };
  const nodeOf = (s: TestServer): string => (s.hearth.services.appServices as unknown as { deps: { gate: { nodeId: string } } }).deps.gate.nodeId;
  const delivering = (s: TestServer): boolean => s.hearth.services.appServices.delivering().includes('bridge');

  /** How long `pred` took to hold. */
  async function timeUntil(what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<number> {
    const start = Date.now();
    await until(what, pred, { timeoutMs, everyMs: 50 });
    return Date.now() - start;
  }

  async function send(base: string, body: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const r = await new Api(base, alice.token).put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/${encodeURIComponent(body)}`, { msgtype: 'm.text', body });
      if (r.status === 200) {
        sent.push(r.body.event_id as string);
        return r.body.event_id as string;
      }
      assert.ok(r.status === 503 && attempt < 20, `send ${body}: ${r.status} ${JSON.stringify(r.body)}`);
      await sleep(200);
    }
  }

  /** The acknowledged transactions, one per ID (a real AS drops a repeated ID). */
  function acknowledgedOnce(): Map<string, ReceivedTxn> {
    const byId = new Map<string, ReceivedTxn>();
    for (const t of fake.txns.filter((t) => t.status === 200)) {
      const seen = byId.get(t.txnId);
      if (seen) {
        assert.deepEqual(t.events.map((e) => e.event_id), seen.events.map((e) => e.event_id), `transaction ${t.txnId} acknowledged twice with different events`);
      } else byId.set(t.txnId, t);
    }
    return byId;
  }

  function assertDeliveredOnce(): void {
    const txns = [...acknowledgedOnce().values()];
    const ids = txns.map((t) => Number(t.txnId));
    // A deliverer that starts without a transaction to resend skips one ID (src/appservice/sender.ts).
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'one sequence of transaction IDs, growing, without repeats');
    const events = txns.flatMap((t) => t.events.map((e) => e.event_id as string));
    assert.equal(new Set(events).size, events.length, 'no event in two transactions');
    for (const id of sent) assert.ok(events.includes(id), `event ${id} delivered`);
  }

  const waitDelivered = () =>
    fake.waitFor((events) => sent.every((id) => events.some((e) => e.event_id === id)), 'every sent event', 30_000).catch((err: unknown) => {
      console.log(`      transactions seen: ${JSON.stringify(fake.txns.map((t) => [t.txnId, t.status, t.events.map((e) => e.content?.body ?? e.type)]))} sent ${JSON.stringify(sent)}`);
      throw err;
    });

  before(async function () {
    this.timeout(600_000);
    await fake.start();
    regFiles = writeRegistrations({
      id: 'bridge',
      url: fake.url,
      as_token: AS_TOKEN,
      hs_token: 'hs-token-lease-0123456789',
      sender_localpart: 'bridgebot',
      namespaces: { users: [{ regex: '@bridge_.*:localhost', exclusive: true }], aliases: [], rooms: [] },
      rate_limited: false,
    });
    addr = await startCassandra();
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(shared() as never));
    // Worker 1 starts alone, so the lease is its own; worker 2 then only contends.
    await timeUntil('worker 1 to take the lease', () => delivering(w1!));
    child = await startChildWorker({ ...shared(), media: { path: join(keyDir, 'child-media') } });
    alice = await new Api(w1.url).register('alice');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id as string;
    const invited = await alice.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: '@bridgebot:localhost' });
    assert.equal(invited.status, 200, JSON.stringify(invited.body));
    const joined = await new Api(child.url, AS_TOKEN).post(`${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });

  showChildWarningsOnFailure(() => child);

  after(async () => {
    await child?.dispose();
    await w1?.stop().catch(() => undefined);
    await fake.stop();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('exactly one worker delivers while clients send through both; every event arrives once', async () => {
    const w1Node = nodeOf(w1!);
    let sampling = true;
    const samples: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        const holder = await leaseHolder();
        samples.push(holder ?? 'none');
        assert.equal(holder, w1Node, 'the lease stays with worker 1 while it lives');
        assert.ok(delivering(w1!), 'worker 1 delivers');
        await sleep(25);
      }
    })();
    for (let i = 0; i < 12; i++) await send(i % 2 === 0 ? w1!.url : child!.url, `both ${i}`);
    await waitDelivered();
    // On a fast machine the traffic can be over within two samples: keep sampling up to three.
    await until('three samples of the lease', () => samples.length >= 3);
    sampling = false;
    await sampler;
    assertDeliveredOnce();
  });

  it('a clean stop of the deliverer hands over at once; the transaction left in flight is resent under its ID', async () => {
    fake.down = true; // every attempt fails, so the next transaction stays in flight
    const before = fake.txns.length;
    const stuck = await send(child!.url, 'in flight');
    await timeUntil('an attempt of the next transaction', () => fake.txns.slice(before).some((t) => t.events.some((e) => e.event_id === stuck)));
    const inFlight = fake.txns.slice(before).find((t) => t.events.some((e) => e.event_id === stuck))!;
    await w1!.stop();
    w1 = null;
    const mark = fake.txns.length;
    // Worker 2 takes the released lease at its next try (a third of the lease) and resends.
    const resent = await timeUntil('worker 2 to resend the transaction', () => fake.txns.slice(mark).some((t) => t.txnId === inFlight.txnId), 15_000);
    assert.ok(resent < LEASE_MS + 2_000, `handed over in ${resent} ms`);
    fake.down = false;
    await fake.waitFor((events) => events.some((e) => e.event_id === stuck), 'the stuck event', 15_000);
    const acked = fake.txns.filter((t) => t.status === 200 && t.events.some((e) => e.event_id === stuck));
    assert.equal(acked.length, 1);
    assert.equal(acked[0]!.txnId, inFlight.txnId, 'the successor kept the transaction ID');
    assert.deepEqual(acked[0]!.events.map((e) => e.event_id), inFlight.events.map((e) => e.event_id), 'and its events');
    assert.notEqual(await leaseHolder(), null);
    for (let i = 0; i < 4; i++) await send(child!.url, `after stop ${i}`);
    await waitDelivered();
    assertDeliveredOnce();
  });

  it('a restarted worker only contends; a SIGKILLed deliverer is replaced once its lease lapses', async () => {
    w1 = await retryBusyCassandra('worker 1 again', () => startTestServer(shared() as never));
    const w1Node = nodeOf(w1);
    const holder = await leaseHolder();
    assert.ok(holder !== null && holder !== w1Node, 'worker 2 keeps the lease');
    await sleep(LEASE_MS);
    assert.ok(!delivering(w1), 'worker 1 does not deliver while worker 2 holds the lease');
    for (let i = 0; i < 4; i++) await send(i % 2 === 0 ? w1.url : child!.url, `before kill ${i}`);
    await waitDelivered();
    await child!.kill('SIGKILL');
    const killedAt = Date.now();
    for (let i = 0; i < 6; i++) await send(w1.url, `after kill ${i}`);
    await waitDelivered();
    const took = Date.now() - killedAt;
    assert.ok(delivering(w1), 'worker 1 delivers now');
    assert.equal(await leaseHolder(), w1Node);
    assert.ok(took < LEASE_MS + 8_000, `delivery resumed ${took} ms after the kill`);
    assertDeliveredOnce();
  });
});
