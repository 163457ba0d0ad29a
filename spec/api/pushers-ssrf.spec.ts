// Pushers cannot be aimed at the server itself or its network (issue 9, SSRF): /pushers/set
// refuses gateway URLs whose host is an IP literal in a refused range, and the push gateway
// worker never connects to a refused address, whether the URL names it directly (a pusher stored
// before the policy) or through a name that resolves to it (`localhost`). Such a push is dropped,
// not retried. With outbound.ip_range_whitelist the same loopback gateway is reached. A 302 from
// an allowed gateway is not followed.
//
// To know that a refused push has been processed (and not merely not yet enqueued), bob also has
// a sentinel pusher on 127.0.0.2, the only address allow-listed in those tests: once the sentinel
// got its push, the refused push was queued too, and the queue emptying means it was dropped.

import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HearthConfigInput } from '../../src/config/load.js';
import { expectError, ok, roomWith, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const NOTIFY = '/_matrix/push/v1/notify';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loopback HTTP server counting the requests it gets. */
class CountingServer {
  requests: string[] = [];
  answer: () => { status: number; headers?: Record<string, string> } = () => ({ status: 200 });
  private server: Server | null = null;
  port = 0;

  async start(host = '127.0.0.1'): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        const a = this.answer();
        res.writeHead(a.status, { 'content-type': 'application/json', ...(a.headers ?? {}) });
        res.end(JSON.stringify({ rejected: [] }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    this.host = host;
  }
  host = '127.0.0.1';
  url(host = this.host): string {
    return `http://${host}:${this.port}${NOTIFY}`;
  }
  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

// Fast retries, so "not retried" is visible within a short wait.
const FAST: HearthConfigInput = { push: { connected_window_ms: 100, min_backoff_ms: 50, max_backoff_ms: 200, max_attempts: 20, request_timeout_ms: 2000 } };
const ALLOW_LOOPBACK: HearthConfigInput = { ...FAST, outbound: { ip_range_whitelist: ['127.0.0.1/32'] } };
// The default policy for 127.0.0.1; only the sentinel's address is let through.
const ALLOW_SENTINEL: HearthConfigInput = { ...FAST, outbound: { ip_range_whitelist: ['127.0.0.2/32'] } };

describe('pushers and SSRF', function () {
  this.timeout(20000);
  let srv: TestServer | undefined;
  let gw: CountingServer;
  let other: CountingServer;
  let sentinel: CountingServer;
  let txn = 0;

  beforeEach(async function () {
    gw = new CountingServer();
    other = new CountingServer();
    sentinel = new CountingServer();
    await gw.start();
    await other.start();
    await sentinel.start('127.0.0.2');
  });
  afterEach(async function () {
    await srv?.stop();
    srv = undefined;
    await gw.close();
    await other.close();
    await sentinel.close();
  });

  const pusher = (url: unknown, pushkey = 'k1') => ({
    kind: 'http',
    app_id: 'org.example.app',
    pushkey,
    app_display_name: 'Example',
    device_display_name: 'Phone',
    lang: 'en',
    data: { url },
  });

  /** alice and bob share a room; bob never syncs, so alice's messages push to him. */
  async function pair(s: TestServer): Promise<{ alice: User; bob: User; roomId: string }> {
    const alice = await new Api(s.url).register('alice');
    const bob = await new Api(s.url).register('bob');
    const roomId = await roomWith(alice, [bob], { preset: 'public_chat' });
    return { alice, bob, roomId };
  }
  const say = (u: User, roomId: string, body: string) => sendEvent(u, roomId, 'm.room.message', `t${++txn}`, { msgtype: 'm.text', body }, 'send');

  async function waitFor(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await pred())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }
  const queueEmpty = (s: TestServer) => waitFor('an empty push queue', async () => (await s.hearth.store.pushers.nextPushDue()) === null);
  /** The sentinel got a push: every push for that event is queued; then the queue empties. */
  async function settled(s: TestServer): Promise<void> {
    await waitFor('the sentinel push', () => sentinel.requests.length > 0);
    await queueEmpty(s);
    await sleep(300); // several backoff periods: nothing comes back for a retry
    assert.equal(await s.hearth.store.pushers.nextPushDue(), null, 'nothing rescheduled');
  }

  it('rejects at /pushers/set a gateway URL whose host is an internal IP literal, in any spelling', async function () {
    srv = await startTestServer(FAST);
    const { bob } = await pair(srv);
    const port = gw.port;
    const hosts = ['127.0.0.1', '2130706433', '0x7f000001', '127.1', '[::1]', '[::ffff:127.0.0.1]', '0.0.0.0', '169.254.169.254', '[fd00:ec2::254]', '10.0.0.1', '100.64.0.1'];
    for (const host of hosts) {
      const res = await bob.post(`${V3}/pushers/set`, pusher(`http://${host}:${port}${NOTIFY}?q=1`));
      expectError(res, 400, 'M_INVALID_PARAM');
      assert.match(res.body.error, /data\.url/);
    }
    expectError(await bob.post(`${V3}/pushers/set`, pusher(`ftp://8.8.8.8${NOTIFY}`)), 400, 'M_INVALID_PARAM');
    assert.deepEqual((await ok(bob.get(`${V3}/pushers`), 'pushers')).pushers, []);
    // A public literal and a name are fine at set time.
    await ok(bob.post(`${V3}/pushers/set`, pusher(`https://8.8.8.8${NOTIFY}`, 'k2')), 'public literal');
    await ok(bob.post(`${V3}/pushers/set`, pusher(`https://push.example.org${NOTIFY}`, 'k3')), 'name');
  });

  it('never calls a loopback gateway with the default policy, even for a pusher already stored', async function () {
    srv = await startTestServer(ALLOW_SENTINEL);
    const { alice, bob, roomId } = await pair(srv);
    await ok(bob.post(`${V3}/pushers/set`, pusher(sentinel.url(), 'sentinel')), 'sentinel pusher');
    // As if registered before the policy existed: straight into the store, past /pushers/set.
    await srv.hearth.store.pushers.setPusher(
      {
        userId: bob.userId,
        deviceId: bob.deviceId,
        kind: 'http',
        appId: 'org.example.app',
        pushkey: 'old',
        pushkeyTs: Date.now(),
        appDisplayName: 'Example',
        deviceDisplayName: 'Phone',
        profileTag: null,
        lang: 'en',
        data: { url: gw.url() },
      },
      false,
    );
    await say(alice, roomId, 'would push');
    await settled(srv);
    assert.equal(gw.requests.length, 0, 'the loopback gateway was never called');
  });

  it('refuses at connect time a gateway name that resolves to loopback (localhost), without retrying', async function () {
    srv = await startTestServer(ALLOW_SENTINEL);
    const { alice, bob, roomId } = await pair(srv);
    await ok(bob.post(`${V3}/pushers/set`, pusher(sentinel.url(), 'sentinel')), 'sentinel pusher');
    // A name passes /pushers/set: DNS can change, so it is checked when connecting.
    await ok(bob.post(`${V3}/pushers/set`, pusher(gw.url('localhost'))), 'pushers/set');
    await say(alice, roomId, 'to localhost');
    await settled(srv);
    assert.equal(gw.requests.length, 0, 'never connected');
    assert.equal((await ok(bob.get(`${V3}/pushers`), 'pushers')).pushers.length, 2, 'the pushers themselves stay');
  });

  it('calls the loopback gateway when 127.0.0.1/32 is allow-listed, by literal and by name', async function () {
    srv = await startTestServer(ALLOW_LOOPBACK);
    const { alice, bob, roomId } = await pair(srv);
    await ok(bob.post(`${V3}/pushers/set`, pusher(gw.url())), 'pushers/set');
    await say(alice, roomId, 'hello');
    await waitFor('the push', () => gw.requests.length === 1);
    assert.deepEqual(gw.requests, [`POST ${NOTIFY}`]);
    await ok(bob.post(`${V3}/pushers/set`, pusher(gw.url('localhost'))), 'replace with a name');
    await say(alice, roomId, 'hello again');
    await waitFor('the second push', () => gw.requests.length === 2);
  });

  it('does not follow a 302 from an allowed gateway, and does not retry it', async function () {
    srv = await startTestServer(ALLOW_LOOPBACK);
    const { alice, bob, roomId } = await pair(srv);
    gw.answer = () => ({ status: 302, headers: { location: other.url() } });
    await ok(bob.post(`${V3}/pushers/set`, pusher(gw.url())), 'pushers/set');
    await say(alice, roomId, 'moved?');
    await waitFor('the push', () => gw.requests.length > 0);
    await queueEmpty(srv);
    await sleep(300);
    assert.deepEqual(gw.requests, [`POST ${NOTIFY}`], 'one attempt');
    assert.deepEqual(other.requests, [], 'the redirect target was never called');
  });
});
