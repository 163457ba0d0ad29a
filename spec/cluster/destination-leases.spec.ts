// Outbound federation from several workers (src/cluster/destination-leases.ts with
// src/federation/sender.ts) on a real Redis: three senders ("workers") queueing into one shared
// queue (a real SQLite store's federationQueue) and one destination lease each per destination.
// The scripted destination records how many of our transactions it has in flight at once: never
// more than one, every PDU arrives exactly once, and transaction IDs never collide across workers.

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { DestinationLeases } from '../../src/cluster/destination-leases.js';
import { FederationSender } from '../../src/federation/sender.js';
import type { FederationRequest } from '../../src/federation/client.js';
import type { JsonValue, Pdu } from '../../src/protocol/types.js';
import { freshPrefix, redisClient } from '../helpers/redis.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const logger = pino({ level: 'silent' });
const pdu = (room: string, n: number) => ({ room_id: room, type: 'm.room.message', content: { body: `${room} ${n}` } }) as unknown as Pdu;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster: one sender per federation destination across workers', function () {
  this.timeout(30_000);
  const conns: ReturnType<typeof redisClient>[] = [];
  let dir: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-fed-dest-'));
    store = await openSqliteStore({ path: join(dir, 'hearth.sqlite'), logger: { warn: () => undefined } });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  after(() => {
    for (const c of conns) c.disconnect();
  });
  const shared = () => ({ queue: store.federationQueue, watermark: () => store.currentPosition() });

  it('three workers sending to two destinations: one transaction in flight per destination, every PDU delivered, distinct txnIds', async () => {
    const prefix = freshPrefix('fed-dest');
    const inFlight = new Map<string, number>();
    const maxInFlight = new Map<string, number>();
    const delivered = new Map<string, string[]>();
    const txnIds = new Set<string>();
    let duplicateTxn = false;
    const client = {
      async request(dest: string, req: FederationRequest): Promise<JsonValue> {
        const n = (inFlight.get(dest) ?? 0) + 1;
        inFlight.set(dest, n);
        maxInFlight.set(dest, Math.max(maxInFlight.get(dest) ?? 0, n));
        const txnId = req.path.split('/').pop() as string;
        if (txnIds.has(`${dest} ${txnId}`)) duplicateTxn = true;
        txnIds.add(`${dest} ${txnId}`);
        await sleep(15); // a transaction takes a while: overlaps would show
        const pdus = (req.body as unknown as { pdus: Pdu[] }).pdus;
        delivered.set(dest, [...(delivered.get(dest) ?? []), ...pdus.map((p) => (p.content as { body: string }).body)]);
        inFlight.set(dest, n - 1);
        return { pdus: {} };
      },
    };
    const workers = ['w1', 'w2', 'w3'].map((nodeId) => {
      const redis = redisClient();
      conns.push(redis);
      const gate = new DestinationLeases({ redis, prefix, nodeId, leaseMs: 3_000, logger });
      return new FederationSender({ serverName: 'me', client, logger, gate, nodeId, gateRetryMs: 20, ...shared() });
    });
    const want: string[] = [];
    for (let i = 0; i < 30; i++) {
      for (const [w, s] of workers.entries()) {
        const p = pdu(`!w${w}`, i);
        want.push((p.content as { body: string }).body);
        void s.sendPdu(['one.example', 'two.example'], p);
      }
      if (i % 10 === 0) await sleep(5);
    }
    const deadline = Date.now() + 20_000;
    while ((delivered.get('one.example')?.length ?? 0) < want.length || (delivered.get('two.example')?.length ?? 0) < want.length) {
      assert.ok(Date.now() < deadline, `delivered ${delivered.get('one.example')?.length} and ${delivered.get('two.example')?.length} of ${want.length}`);
      await sleep(20);
    }
    for (const dest of ['one.example', 'two.example']) {
      assert.equal(maxInFlight.get(dest), 1, `${dest}: never two transactions at once`);
      assert.deepEqual([...delivered.get(dest)!].sort(), [...want].sort(), `${dest}: every PDU exactly once`);
      // Each worker's own PDUs keep their order.
      for (let w = 0; w < 3; w++) {
        const mine = delivered.get(dest)!.filter((b) => b.startsWith(`!w${w} `)).map((b) => Number(b.split(' ')[1]));
        assert.deepEqual(mine, Array.from({ length: 30 }, (_, i) => i));
      }
    }
    assert.equal(duplicateTxn, false, 'no two transactions share a txnId');
    await Promise.all(workers.map((s) => s.stop()));
    // Nothing left queued: every lease was given back.
    const check = redisClient();
    conns.push(check);
    assert.deepEqual(await check.keys(`${prefix}fed:dest:*`), []);
  });

  it('a lease held by a worker that died blocks the others until its TTL, then they send', async () => {
    const prefix = freshPrefix('fed-dead');
    const check = redisClient();
    conns.push(check);
    // The dead worker's lease, as it left it.
    await check.set(`${prefix}fed:dest:one.example`, 'dead', 'PX', 600);
    const sent: number[] = [];
    const redis = redisClient();
    conns.push(redis);
    const s = new FederationSender({
      serverName: 'me',
      client: { request: async () => (sent.push(Date.now()), { pdus: {} }) },
      logger,
      gate: new DestinationLeases({ redis, prefix, nodeId: 'alive', leaseMs: 3_000, logger }),
      nodeId: 'alive',
      gateRetryMs: 50,
      ...shared(),
    });
    const t0 = Date.now();
    void s.sendPdu(['one.example'], pdu('!r', 1));
    while (sent.length === 0) {
      assert.ok(Date.now() - t0 < 5_000, 'sent once the dead lease lapsed');
      await sleep(20);
    }
    assert.ok(sent[0]! - t0 >= 500, `waited for the lease (${sent[0]! - t0} ms)`);
    await s.stop();
  });
});
