// Push notifications end to end: a real Hearth server and a real HTTP push gateway (node:http on
// loopback) that records what it gets and answers as each test scripts it. Covers who is pushed
// (offline users only), the two notification formats, badge-only pushes after a read receipt,
// retries with exponential backoff, dropped 4xx pushes, rejected pushkeys, and a queue that
// survives a restart.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HearthConfigInput } from '../../src/config/load.js';
import { ok, roomWith, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const NOTIFY = '/_matrix/push/v1/notify';

interface Received {
  at: number;
  path: string;
  notification: any;
  status: number;
}

/** A push gateway: records each request, answers with `answer` (default 200 {rejected: []}). */
class FakeGateway {
  readonly received: Received[] = [];
  answer: (n: any) => { status: number; body?: unknown } = () => ({ status: 200, body: { rejected: [] } });
  /** Accept requests but never answer them. */
  hang = false;
  /** Requests held unanswered whose connection is still open. */
  hanging = 0;
  private server: Server | null = null;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const notification = JSON.parse(Buffer.concat(chunks).toString('utf8')).notification;
        if (this.hang) {
          this.received.push({ at: performance.now(), path: req.url ?? '', notification, status: 0 });
          this.hanging++;
          res.once('close', () => this.hanging--);
          return;
        }
        const a = this.answer(notification);
        this.received.push({ at: performance.now(), path: req.url ?? '', notification, status: a.status });
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(a.body ?? {}));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${NOTIFY}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  forEvent(eventId: string): Received[] {
    return this.received.filter((r) => r.notification.event_id === eventId);
  }

  async waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; gateway got ${JSON.stringify(this.received)}`);
      await sleep(10);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Tiny windows and backoffs so a test sees the behaviour in milliseconds. The fake gateway is on
// loopback, which the outbound IP policy refuses unless allow-listed.
const PUSH_CONFIG: HearthConfigInput = {
  push: { connected_window_ms: 200, min_backoff_ms: 100, max_backoff_ms: 1600, max_attempts: 6, request_timeout_ms: 2000 },
  outbound: { ip_range_whitelist: ['127.0.0.1/32'] },
};

describe('push gateway delivery', function () {
  this.timeout(20000);
  let srv: TestServer;
  let gw: FakeGateway;
  let txn = 0;

  beforeEach(async function () {
    gw = new FakeGateway();
    await gw.start();
    srv = await startTestServer(PUSH_CONFIG);
  });
  afterEach(async function () {
    await srv?.stop();
    await gw?.close();
  });

  async function user(name: string, on = srv): Promise<User> {
    const u = await new Api(on.url).register(name);
    await ok(u.put(`${V3}/profile/${enc(u.userId)}/displayname`, { displayname: `${name[0].toUpperCase()}${name.slice(1)} Display` }), 'displayname');
    return u;
  }
  const pushkey = (u: User) => `key-${u.userId}`;
  async function setPusher(u: User, data: Record<string, unknown> = {}): Promise<void> {
    await ok(
      u.post(`${V3}/pushers/set`, {
        kind: 'http',
        app_id: 'org.example.app',
        pushkey: pushkey(u),
        app_display_name: 'Example',
        device_display_name: 'Phone',
        lang: 'en',
        data: { url: gw.url, extra: 'kept', ...data },
      }),
      'pushers/set',
    );
  }
  const room = (owner: User, members: User[], name?: string) => roomWith(owner, members, { preset: 'public_chat', ...(name ? { name } : {}) });
  const send = (u: User, roomId: string, body: string) => sendEvent(u, roomId, 'm.room.message', `p${++txn}`, { msgtype: 'm.text', body }, 'send');

  it('pushes an event to an offline user, not to one with a /sync in flight', async function () {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    await setPusher(bob);
    await setPusher(carol);
    const roomId = await room(alice, [bob, carol], 'Mission Control');
    // bob: an initial sync, then a long-poll that is still parked when alice sends.
    const first = await ok(bob.get(`${V3}/sync?timeout=0`), 'initial sync');
    const poll = bob.get(`${V3}/sync?timeout=10000&since=${enc(first.next_batch)}`);
    await sleep(50);
    const eventId = await send(alice, roomId, 'I am floating in a most peculiar way');
    await gw.waitFor('carol\'s push', () => gw.forEvent(eventId).length > 0);
    await ok(poll, 'long-poll');
    await sleep(200);

    const pushed = gw.forEvent(eventId);
    assert.equal(pushed.length, 1, 'one push, for carol only');
    assert.equal(pushed[0].path, NOTIFY);
    const n = pushed[0].notification;
    assert.deepEqual(n.devices, [{ app_id: 'org.example.app', pushkey: pushkey(carol), pushkey_ts: n.devices[0].pushkey_ts, data: { extra: 'kept' }, tweaks: {} }]);
    assert.ok(Number.isInteger(n.devices[0].pushkey_ts) && Math.abs(n.devices[0].pushkey_ts - Date.now() / 1000) < 60, 'pushkey_ts in seconds');
    assert.equal(n.event_id, eventId);
    assert.equal(n.room_id, roomId);
    assert.equal(n.type, 'm.room.message');
    assert.equal(n.sender, alice.userId);
    assert.equal(n.sender_display_name, 'Alice Display');
    assert.equal(n.room_name, 'Mission Control');
    assert.equal(n.prio, 'low', 'a plain group message has no sound tweak');
    assert.deepEqual(n.content, { msgtype: 'm.text', body: 'I am floating in a most peculiar way' });
    assert.deepEqual(n.counts, { unread: 1 });
  });

  it('names a room without m.room.name by its canonical alias in room_name', async function () {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    await setPusher(carol);
    const roomId = await roomWith(alice, [bob, carol], { preset: 'public_chat', room_alias_name: `pushalias${++txn}` });
    const eventId = await send(alice, roomId, 'named by alias');
    await gw.waitFor('the push', () => gw.forEvent(eventId).length > 0);
    const n = gw.forEvent(eventId)[0].notification;
    assert.match(n.room_name, /^#pushalias\d+:localhost$/);
    assert.equal(n.room_alias, n.room_name);
  });

  it('sends only IDs, counts and devices to an event_id_only pusher; sound means high priority', async function () {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob, { format: 'event_id_only' });
    const roomId = await room(alice, [bob]); // two members: the one-to-one rule (with sound)
    const first = await send(alice, roomId, 'secret one');
    const second = await send(alice, roomId, 'secret two');
    await gw.waitFor('two pushes', () => gw.forEvent(first).length + gw.forEvent(second).length === 2);
    const n = gw.forEvent(second)[0].notification;
    assert.deepEqual(Object.keys(n).sort(), ['counts', 'devices', 'event_id', 'prio', 'room_id']);
    assert.equal(n.prio, 'high');
    assert.deepEqual(n.devices[0].data, { extra: 'kept', format: 'event_id_only' });
    assert.deepEqual(n.devices[0].tweaks, { sound: 'default' });
    assert.ok(!JSON.stringify(gw.received).includes('secret'), 'no content anywhere');
    // Pushes may go out in either order, but the second event's count covers both.
    assert.deepEqual(n.counts, { unread: 2 });
  });

  it('pushes a badge-only notification after a read receipt', async function () {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    const eventId = await send(alice, roomId, 'read me');
    await gw.waitFor('the event push', () => gw.forEvent(eventId).length === 1);
    await ok(bob.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}), 'receipt');
    await gw.waitFor('the badge push', () => gw.received.length === 2);
    const n = gw.received[1].notification;
    assert.deepEqual(n, { counts: { unread: 0 }, devices: [{ app_id: 'org.example.app', pushkey: pushkey(bob), pushkey_ts: n.devices[0].pushkey_ts, data: { extra: 'kept' } }] });
    // The same receipt again changes no count: no further push.
    await ok(bob.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read.private/${enc(eventId)}`, {}), 'private receipt');
    await sleep(200);
    assert.equal(gw.received.length, 2);
  });

  it('retries a failing gateway with growing delays and delivers exactly once', async function () {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    let failures = 3;
    gw.answer = () => (failures-- > 0 ? { status: 500, body: { error: 'down' } } : { status: 200, body: { rejected: [] } });
    const eventId = await send(alice, roomId, 'persevere');
    await gw.waitFor('a successful delivery', () => gw.forEvent(eventId).some((r) => r.status === 200));
    await sleep(300);
    const attempts = gw.forEvent(eventId);
    assert.deepEqual(attempts.map((r) => r.status), [500, 500, 500, 200], 'three failures, then one delivery, nothing after');
    const gaps = attempts.slice(1).map((r, i) => r.at - attempts[i].at);
    // Nominally 100, 200 and 400 ms (min_backoff_ms doubling); slack for a loaded machine.
    assert.ok(gaps[0] >= 90, `first retry waited ${gaps[0]} ms`);
    assert.ok(gaps[1] > gaps[0] * 1.3 && gaps[2] > gaps[1] * 1.3, `delays grow: ${gaps.map(Math.round).join(', ')} ms`);
    assert.equal(await srv.hearth.store.pushers.nextPushDue(), null, 'queue empty');
  });

  it('drops a push the gateway answers with 4xx, without retrying', async function () {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    gw.answer = () => ({ status: 400, body: { error: 'bad' } });
    const eventId = await send(alice, roomId, 'nope');
    await gw.waitFor('the push', () => gw.forEvent(eventId).length === 1);
    await sleep(400); // several backoff periods
    assert.equal(gw.forEvent(eventId).length, 1);
    assert.equal(await srv.hearth.store.pushers.nextPushDue(), null, 'queue empty');
    assert.equal((await ok(bob.get(`${V3}/pushers`), 'pushers')).pushers.length, 1, 'the pusher stays');
  });

  it('gives up on a push after max_attempts failed attempts', async function () {
    await srv.stop();
    srv = await startTestServer({ ...PUSH_CONFIG, push: { ...PUSH_CONFIG.push, max_attempts: 3 } });
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    gw.answer = () => ({ status: 502 });
    const eventId = await send(alice, roomId, 'doomed');
    await gw.waitFor('three attempts', () => gw.forEvent(eventId).length === 3);
    await sleep(600); // past the next backoff (400 ms)
    assert.equal(gw.forEvent(eventId).length, 3);
    assert.equal(await srv.hearth.store.pushers.nextPushDue(), null, 'queue empty');
  });

  it('keeps sends and syncs fast while the gateway hangs', async function () {
    // The request timeout far beyond the test's own: sends or a sync that waited on the gateway
    // would time the test out, and the hanging request is seen still open once they are done
    // (no wall-clock bound, which a loaded machine can overrun).
    await srv.stop();
    srv = await startTestServer({ ...PUSH_CONFIG, push: { ...PUSH_CONFIG.push, request_timeout_ms: 120_000 } });
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    gw.hang = true;
    await send(alice, roomId, 'first');
    await gw.waitFor('a hanging request', () => gw.received.length === 1);
    for (let i = 0; i < 10; i++) await send(alice, roomId, `more ${i}`);
    await ok(alice.get(`${V3}/sync?timeout=0`), 'sync');
    assert.equal(gw.hanging, 1, 'the sends and the sync were answered while the gateway still held its request');
    // One request per pusher at a time: the rest wait in the queue.
    assert.equal(gw.received.length, 1);
    assert.ok((await srv.hearth.store.pushers.duePushes(Date.now(), 100)).length >= 10);
  });

  it('removes a pusher whose pushkey the gateway rejects', async function () {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await setPusher(bob);
    const roomId = await room(alice, [bob]);
    gw.answer = (n) => ({ status: 200, body: { rejected: n.devices.map((d: any) => d.pushkey) } });
    const eventId = await send(alice, roomId, 'expired token');
    await gw.waitFor('the push', () => gw.forEvent(eventId).length === 1);
    const end = Date.now() + 2000;
    let pushers: unknown[] = [];
    do {
      pushers = (await ok(bob.get(`${V3}/pushers`), 'pushers')).pushers;
    } while (pushers.length > 0 && Date.now() < end && (await sleep(10), true));
    assert.deepEqual(pushers, []);
    // Nothing more goes to the removed pusher.
    await send(alice, roomId, 'anyone there?');
    await sleep(200);
    assert.equal(gw.received.length, 1);
  });
});

describe('push queue across restarts', function () {
  this.timeout(20000);
  let dir: string;
  let srv: TestServer | null = null;
  let gw: FakeGateway;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-push-restart-'));
    gw = new FakeGateway();
    await gw.start();
  });
  after(async function () {
    await srv?.stop();
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers pushes queued while the gateway was down after the server restarts', async function () {
    srv = await startTestServer(PUSH_CONFIG, dir);
    const alice = await new Api(srv.url).register('alice');
    const bob = await new Api(srv.url).register('bob');
    await bob.post(`${V3}/pushers/set`, {
      kind: 'http', app_id: 'org.example.app', pushkey: 'bobkey', app_display_name: 'A', device_display_name: 'D', lang: 'en', data: { url: gw.url },
    });
    const { room_id: roomId } = (await alice.post(`${V3}/createRoom`, { preset: 'public_chat' })).body;
    assert.equal((await bob.post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);

    gw.answer = () => ({ status: 503 });
    const sent = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'while you were out' });
    const eventId: string = sent.body.event_id;
    await gw.waitFor('a failed attempt', () => gw.forEvent(eventId).length >= 1);
    await srv.stop();
    srv = null;
    const failed = gw.forEvent(eventId).length;

    gw.answer = () => ({ status: 200, body: { rejected: [] } });
    srv = await startTestServer(PUSH_CONFIG, dir);
    await gw.waitFor('delivery after the restart', () => gw.forEvent(eventId).some((r) => r.status === 200));
    await sleep(200);
    const all = gw.forEvent(eventId);
    assert.equal(all.length, failed + 1, 'delivered once after the restart');
    assert.equal(all[all.length - 1].notification.content.body, 'while you were out');
    assert.equal(await srv.hearth.store.pushers.nextPushDue(), null);
  });
});
