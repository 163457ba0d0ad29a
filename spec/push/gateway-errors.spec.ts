// A push that fails without an answer (connection refused) is logged with the error object
// itself (pino's `err`: type, message, stack, code), not only a one-line summary, both while it
// is retried and when it is dropped after the last attempt. Real SQLite queue, real sockets.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { PushGateway } from '../../src/push/gateway.js';
import { createOutboundHttp, OutboundGuard } from '../../src/net/outbound-guard.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('push: failed deliveries log the error object', function () {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-push-errors-'));
    store = await openSqliteStore({ path: join(dir, 'h.sqlite'), synchronous: 'normal', logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a refused connection: err on the retry record and on the drop record', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const records: Array<Record<string, any>> = [];
    const sink = new Writable({ write: (chunk, _e, cb) => (records.push(JSON.parse(String(chunk))), cb()) });
    const logger = pino({ level: 'debug' }, sink);
    await store.pushers.setPusher(
      {
        userId: '@alice:localhost', deviceId: 'DEV', kind: 'http', appId: 'org.example.app', pushkey: 'k', pushkeyTs: 1,
        appDisplayName: 'App', deviceDisplayName: 'Phone', profileTag: null, lang: 'en', data: { url: `http://127.0.0.1:${port}/_matrix/push/v1/notify` },
      },
      true,
    );
    await store.pushers.enqueuePush({ userId: '@alice:localhost', appId: 'org.example.app', pushkey: 'k', notification: { event_id: '$1' }, notBefore: Date.now() });
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: [], ip_range_whitelist: ['127.0.0.1/32'] }));
    const gw = new PushGateway({ pushers: store.pushers, http, logger, requestTimeoutMs: 5000, maxConcurrent: 1, minBackoffMs: 20, maxBackoffMs: 20, maxAttempts: 2 });
    gw.start();
    const end = Date.now() + 10_000;
    while (!records.some((r) => r.msg === 'push dropped after too many failed attempts') && Date.now() < end) await sleep(20);
    await gw.stop();
    await http.close();
    const retry = records.find((r) => r.msg === 'push failed; will retry');
    const dropped = records.find((r) => r.msg === 'push dropped after too many failed attempts');
    for (const [what, r] of [['retry', retry], ['drop', dropped]] as const) {
      assert.ok(r, `no ${what} record: ${JSON.stringify(records)}`);
      assert.equal(typeof r.err?.message, 'string', `${what}: ${JSON.stringify(r)}`);
      assert.equal(typeof r.err?.stack, 'string', `${what}: ${JSON.stringify(r)}`);
      assert.match(JSON.stringify(r.err), /ECONNREFUSED/, `${what}: ${JSON.stringify(r)}`);
    }
  });
});
