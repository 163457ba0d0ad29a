// The parked-reader registry (src/sync/waiters.ts): a waiter resolves exactly once, whichever
// comes first of a wake, its timeout or its abort signal, and leaves the registry then (a parked
// long-poll of a client that went away must not stay registered until its timeout). Also the
// long-poll side over HTTP: a parked /sync that times out answers the same empty response it
// built before parking, and one whose client disconnects leaves the registry at once.

import { assert } from '../helpers/assert.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { SyncWaiters } from '../../src/sync/waiters.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const AT = { stream: 5, ephemeral: 0 };

describe('SyncWaiters', function () {
  let notifier: LocalNotifier;
  let waiters: SyncWaiters;
  beforeEach(function () {
    notifier = new LocalNotifier();
    waiters = new SyncWaiters(notifier);
  });
  afterEach(function () {
    waiters.close();
  });

  it('a wake resolves true once and removes the waiter from every index', async function () {
    const counts: number[] = [];
    waiters = new SyncWaiters(notifier, (n) => counts.push(n));
    const p = waiters.wait('@a:x', ['!r1:x', '!r2:x'], AT, 10_000);
    assert.equal(waiters.size, 1);
    notifier.publish({ stream: 6, roomId: '!r2:x' });
    notifier.publish({ stream: 7, roomId: '!r1:x' });
    assert.equal(await p, true);
    assert.equal(waiters.size, 0);
    assert.deepEqual(counts, [1, 0], 'added once, removed once');
  });

  it('times out false and leaves the registry', async function () {
    const t0 = Date.now();
    assert.equal(await waiters.wait('@a:x', ['!r:x'], AT, 60), false);
    assert.ok(Date.now() - t0 >= 50);
    assert.equal(waiters.size, 0);
    // A later notice for the room finds nobody (the timed-out waiter is gone, not woken twice).
    notifier.publish({ stream: 9, roomId: '!r:x' });
    assert.equal(waiters.size, 0);
  });

  it('an abort resolves false at once and leaves the registry; an already aborted signal does not park', async function () {
    const ac = new AbortController();
    // A wait of 60 s, past the test's own timeout: resolving at all was the abort's doing (no
    // wall-clock bound for a loaded machine to overrun).
    const p = waiters.wait('@a:x', ['!r:x'], AT, 60_000, ac.signal);
    assert.equal(waiters.size, 1);
    ac.abort();
    assert.equal(await p, false);
    assert.equal(waiters.size, 0);
    assert.equal(await waiters.wait('@a:x', ['!r:x'], AT, 10_000, ac.signal), false);
    assert.equal(waiters.size, 0);
  });

  it('a wake after the abort, and an abort after the wake, change nothing', async function () {
    const ac = new AbortController();
    const p = waiters.wait('@a:x', ['!r:x'], AT, 10_000, ac.signal);
    notifier.publish({ stream: 6, roomId: '!r:x' });
    ac.abort();
    assert.equal(await p, true);
    const ac2 = new AbortController();
    const q = waiters.wait('@b:x', ['!q:x'], AT, 10_000, ac2.signal);
    ac2.abort();
    notifier.publish({ stream: 7, roomId: '!q:x' });
    assert.equal(await q, false);
    assert.equal(waiters.size, 0);
  });

  it('typing wakes only a waiter that wants typing', async function () {
    const no = waiters.wait('@a:x', ['!r:x'], AT, 150, undefined, { typing: false, presence: true });
    const yes = waiters.wait('@b:x', ['!r:x'], AT, 10_000, undefined, { typing: true, presence: false });
    notifier.publish({ ephemeral: 1, roomId: '!r:x', kind: 'typing' });
    assert.equal(await yes, true);
    assert.equal(await no, false);
  });
});

describe('Parked long-polls over HTTP', function () {
  let srv: TestServer;
  before(async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false } } });
  });
  after(async function () {
    await srv.stop();
  });

  it('a timed-out long-poll answers the empty response it built before parking', async function () {
    const alice = await new Api(srv.url).register('alice');
    await alice.post('/_matrix/client/v3/createRoom', {});
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');
    const since = first.body.next_batch as string;
    const now = await alice.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(since)}`);
    const parked = await alice.get(`/_matrix/client/v3/sync?timeout=300&since=${enc(since)}`);
    assert.equal(parked.status, 200);
    assert.deepEqual(parked.body, now.body, 'the same answer as an immediate empty sync');
    assert.equal(srv.hearth.services.sync.waiterCount(), 0);
  });

  it('a long-poll whose client goes away leaves the registry at once', async function () {
    const bob = await new Api(srv.url).register('bob');
    const first = await bob.get('/_matrix/client/v3/sync?timeout=0');
    const ac = new AbortController();
    const gone = fetch(`${srv.url}/_matrix/client/v3/sync?timeout=30000&since=${enc(first.body.next_batch)}`, {
      headers: { authorization: `Bearer ${bob.token}` },
      signal: ac.signal,
    }).catch(() => 'aborted');
    const until = Date.now() + 5000;
    while (srv.hearth.services.sync.waiterCount() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.hearth.services.sync.waiterCount(), 1, 'parked');
    ac.abort();
    assert.equal(await gone, 'aborted');
    while (srv.hearth.services.sync.waiterCount() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.hearth.services.sync.waiterCount(), 0, 'released on disconnect, not at its timeout');
  });
});
