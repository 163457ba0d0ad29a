// Several push workers on one durable queue (the cluster's pusher role, here three PushGateway
// instances in one process on one real SQLite store): every job is claimed by one of them and
// delivered exactly once, and a job whose claim was abandoned (a worker died) is sent later.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { PushGateway } from '../../src/push/gateway.js';
import { createOutboundHttp, OutboundGuard } from '../../src/net/outbound-guard.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('push: several workers on one queue', function () {
  let dir: string;
  let store: SqliteStore;
  let server: Server;
  let url: string;
  const seen: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).notification.event_id);
        // Slow enough that the workers' passes over the queue overlap.
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"rejected":[]}'), 20);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_matrix/push/v1/notify`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  beforeEach(async () => {
    seen.length = 0;
    dir = mkdtempSync(join(tmpdir(), 'hearth-push-workers-'));
    store = await openSqliteStore({ path: join(dir, 'h.sqlite'), synchronous: 'normal', logger });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function worker(): { gw: PushGateway; close(): Promise<void> } {
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: [], ip_range_whitelist: ['127.0.0.1/32'] }));
    const gw = new PushGateway({
      pushers: store.pushers,
      http,
      logger,
      requestTimeoutMs: 5000,
      maxConcurrent: 4,
      minBackoffMs: 50,
      maxBackoffMs: 1000,
      maxAttempts: 3,
    });
    return { gw, close: async () => (await gw.stop(), await http.close()) };
  }

  async function addPushers(n: number): Promise<void> {
    for (let k = 0; k < n; k++) {
      await store.pushers.setPusher(
        {
          userId: '@alice:localhost',
          deviceId: 'DEV',
          kind: 'http',
          appId: 'org.example.app',
          pushkey: `key${k}`,
          pushkeyTs: 1,
          appDisplayName: 'App',
          deviceDisplayName: 'Phone',
          profileTag: null,
          lang: 'en',
          data: { url },
        },
        true,
      );
    }
  }

  const enqueue = (n: number, pushkey: string, notBefore = Date.now()) =>
    store.pushers.enqueuePush({ userId: '@alice:localhost', appId: 'org.example.app', pushkey, notification: { event_id: `$${n}` }, notBefore });

  async function untilEmpty(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while ((await store.pushers.nextPushDue()) !== null) {
      if (Date.now() > end) throw new Error(`queue not drained: ${seen.length} delivered`);
      await sleep(20);
    }
  }

  it('three workers deliver each of 60 jobs exactly once', async () => {
    await addPushers(12);
    for (let n = 0; n < 60; n++) await enqueue(n, `key${n % 12}`);
    const workers = [worker(), worker(), worker()];
    for (const w of workers) w.gw.start();
    // Every worker is woken for every enqueue, as each would be by its own dispatcher.
    for (const w of workers) w.gw.wake();
    await untilEmpty(20_000);
    await Promise.all(workers.map((w) => w.close()));
    assert.equal(seen.length, 60, `deliveries: ${seen.length}`);
    assert.deepEqual([...seen].sort(), Array.from({ length: 60 }, (_, n) => `$${n}`).sort());
  });

  it('a job whose claim was abandoned is delivered once its lease ends', async () => {
    await addPushers(1);
    const id = await enqueue(1, 'key0');
    // A worker claimed it and died: the job is invisible until the lease it took ends.
    assert.equal(await store.pushers.claimPush(id, Date.now(), Date.now() + 300), true);
    const w = worker();
    w.gw.start();
    await sleep(100);
    assert.deepEqual(seen, [], 'not sent while the claim holds');
    await untilEmpty(5000);
    await w.close();
    assert.deepEqual(seen, ['$1']);
  });
});
