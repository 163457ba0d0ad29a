// The shared outbound federation queue across workers (src/federation/sender.ts over the
// store's federationQueue, src/cluster/destination-leases.ts): two workers of one server on one
// Cassandra keyspace and Redis prefix (worker 1 in this process, worker 2 a child process), and a
// receiving Hearth R. R's user joins a room of ours; R goes down; worker 2 writes messages into
// the room and queues them for R (its sends fail meanwhile, holding R's lease); worker 2 is
// SIGKILLed and R comes back: worker 1 takes R's lease once it lapses and delivers the dead
// worker's PDUs from the shared queue. R gets every message once, in order, and no PDU in two
// different transactions.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { ChildServer, freePort } from '../helpers/child-server.js';
import { closeFedRequests, startFederated, waitFor } from '../helpers/federation.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { retryBusyCassandra, showChildWarningsOnFailure, sleep, startChildWorker, V3 } from './room-owner-helpers.js';
import { workerOf } from '../../src/store/cassandra/positions.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';

describe('cluster: the outbound federation queue survives its worker', function () {
  this.timeout(300_000);
  const keyspace = freshKeyspace('fedq');
  const prefix = freshPrefix('fedq');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-fedq-key-'));
  let addr = '';
  let w1: TestServer | undefined;
  let child: ChildServer | undefined;
  let r: TestServer | undefined;
  let portR = 0;
  let dirR = '';
  let nameR = '';
  let nameC = '';

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    portR = await freePort();
    nameR = `127.0.0.1:${portR}`;
    r = await startFederated(portR);
    dirR = r.dataDir;
    const portC = await freePort();
    nameC = `127.0.0.1:${portC}`;
    const shared = (fedPort: number) => ({
      server_name: nameC,
      storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
      cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000, destination_lease_ms: 2_000, federation_scan_ms: 500 },
      signing_key_path: join(keyDir, 'signing.key'),
      listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port: fedPort } },
      federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    });
    // Worker 1 serves the server name's federation port (R reaches "us" there).
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(shared(portC) as never));
    const fed2 = await freePort();
    child = await startChildWorker({ ...shared(fed2), media: { path: join(keyDir, 'child-media') } }, (c) => {
      // Its client port is the one ChildServer picked (the shared listeners block replaced it).
      const cfg = JSON.parse(readFileSync(c.configPath, 'utf8')) as { listeners: { client: { port: number } } };
      cfg.listeners.client.port = c.port;
      writeFileSync(c.configPath, JSON.stringify(cfg));
    });
  });

  showChildWarningsOnFailure(() => child);

  after(async () => {
    await child?.dispose();
    await w1?.stop().catch(() => undefined);
    await r?.stop().catch(() => undefined);
    rmSync(dirR, { recursive: true, force: true });
    await closeFedRequests();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('PDUs queued by a worker that is then killed are delivered by the other, once each, in order', async () => {
    const alice = await new Api(child!.url).register('alice');
    const bob = await new Api(r!.url).register('bob');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id as string;
    const joined = await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameC)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    const q = w1!.hearth.store.federationQueue;
    const queued = async () => {
      const s = await q.getDestinationQueue(nameR);
      return q.outboundAfter(nameR, s.sentUpto, w1!.hearth.store.currentPosition(), 1000);
    };
    // R hears of our events (the queue drains), then goes down.
    const hello = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/hello`, { msgtype: 'm.text', body: 'hello' });
    assert.equal(hello.status, 200, JSON.stringify(hello.body));
    await waitFor(async () => (await queued()).length === 0 && (await q.getDestinationQueue(nameR)).queuedUpto > 0, 30_000, 'the queue for R to drain');
    const bob1 = new Api(r!.url, bob.token);
    await waitFor(async () => JSON.stringify((await bob1.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).body).includes('hello'), 30_000, 'R to have hello');
    await r!.hearth.stop(); // keeps its data directory (TestServer.stop would delete it)
    await sleep(3_000); // the room's lease (taken by the join on worker 1) is released when idle

    const bodies = ['m0', 'm1', 'm2', 'm3', 'm4'];
    for (const [i, body] of bodies.entries()) {
      const res = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/q${i}`, { msgtype: 'm.text', body });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    await waitFor(async () => (await queued()).filter((e) => e.item.kind === 'pdu').length === bodies.length, 30_000, 'five PDUs queued for R');
    const entries = (await queued()).filter((e) => e.item.kind === 'pdu');
    const w1Id = (w1!.hearth.store as unknown as { workerId: number }).workerId;
    assert.ok(entries.every((e) => workerOf(e.pos) !== w1Id), 'queued by worker 2 (the room writer), not worker 1');
    assert.deepEqual(entries.map((e) => ((e.item as { pdu: JsonObject }).pdu.content as { body: string }).body), bodies);

    await child!.kill('SIGKILL');
    r = await startFederated(portR, dirR);
    // Every transaction R accepts, by ID (a retried one is counted once, as R deduplicates it).
    const txns = new Map<string, string[]>();
    const results: JsonObject[] = [];
    let last: unknown;
    const inbound = r.hearth.federation!.inbound;
    const send = inbound.send.bind(inbound);
    inbound.send = (origin: string, txnId: string, body: JsonValue | undefined) => {
      const pdus = ((body as { pdus?: JsonObject[] } | undefined)?.pdus ?? []).filter((p) => p.room_id === roomId && p.type === 'm.room.message');
      if (origin === nameC && !txns.has(txnId)) txns.set(txnId, pdus.map((p) => (p.content as { body: string }).body));
      return send(origin, txnId, body).then((res) => (results.push(res), res));
    };
    const bob2 = new Api(r.url, bob.token);
    let texts: string[] = [];
    const report = async () => JSON.stringify({ last, results, texts, txns: [...txns], state: await q.getDestinationQueue(nameR), left: (await queued()).length, catchingUp: w1!.hearth.federation!.core.sender.catchingUp(nameR) });
    await waitFor(
      async () => {
        const res = await bob2.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
        last = res;
        texts = [...(res.body.chunk ?? [])].reverse().filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
        return texts.length >= bodies.length + 1;
      },
      60_000,
      'R to receive the dead worker\'s messages',
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await report()}`);
    });
    assert.deepEqual(texts, ['hello', ...bodies], 'every message once, in order');
    const sent = [...txns.values()].flat();
    assert.equal(new Set(sent).size, sent.length, `no PDU in two transactions: ${JSON.stringify([...txns])}`);
    await waitFor(async () => (await queued()).length === 0 && (await q.getDestinationQueue(nameR)).txn === null, 30_000, 'the queue for R to be marked sent');
  });
});
