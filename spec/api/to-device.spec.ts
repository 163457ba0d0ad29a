// PUT /sendToDevice over real HTTP: delivery through /sync `to_device`, delete-on-ack, "*"
// expansion, idempotent retries, size limits and remote/unknown recipients.

import { assert } from '../helpers/assert.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { expectError, login, PASSWORD, type User } from './keys-helpers.js';


describe('E2EE to-device messages', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let bobLaptop: User;
  let txn = 0;

  const send = (from: Api, type: string, messages: unknown, txnId = `t${++txn}`) =>
    from.put(`${V3}/sendToDevice/${enc(type)}/${enc(txnId)}`, { messages });
  const sync = async (u: Api, since?: string, timeout = 0) => {
    const r = await u.get(`${V3}/sync?timeout=${timeout}${since ? `&since=${enc(since)}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const pending = (u: User) => srv.hearth.store.e2ee.getToDevice(u.userId, u.deviceId, srv.hearth.store.currentPosition(), 100);

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    alice = await api.register('alice', PASSWORD);
    bob = await api.register('bob', PASSWORD);
    bobLaptop = await login(srv.url, 'bob', { device_id: 'LAPTOP' });
  });
  after(async () => srv.stop());

  it('delivers to the named device through /sync and deletes it once a later since acknowledges it', async () => {
    const s0 = await sync(bob);
    const r = await send(alice, 'm.room_key_request', { [bob.userId]: { [bob.deviceId]: { hello: 'bob' } } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {});
    const s1 = await sync(bob, s0.next_batch);
    assert.deepEqual(s1.to_device.events, [{ type: 'm.room_key_request', sender: alice.userId, content: { hello: 'bob' } }]);
    assert.equal((await pending(bobLaptop)).length, 0, 'the other device got nothing');
    // Re-syncing from the same since (the response was lost) delivers it again.
    const again = await sync(bob, s0.next_batch);
    assert.equal(again.to_device.events.length, 1);
    // Syncing from the token that delivered it acknowledges it: gone for good.
    const s2 = await sync(bob, s1.next_batch);
    assert.deepEqual(s2.to_device.events, []);
    assert.equal((await pending(bob)).length, 0);
    assert.deepEqual((await sync(bob, s0.next_batch)).to_device.events, []);
  });

  it('wakes a parked /sync of the recipient', async () => {
    const s0 = await sync(bobLaptop);
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const parked = sync(bobLaptop, s0.next_batch, 60_000);
    await new Promise((r) => setTimeout(r, 200));
    await send(alice, 'm.test', { [bob.userId]: { LAPTOP: { n: 1 } } });
    const s1 = await parked;
    assert.deepEqual(s1.to_device.events.map((e: any) => e.content), [{ n: 1 }]);
    await sync(bobLaptop, s1.next_batch);
  });

  it('"*" expands to every device of the user; an explicit device entry wins over it', async () => {
    const r = await send(alice, 'm.test', { [bob.userId]: { '*': { to: 'all' }, LAPTOP: { to: 'laptop' } } });
    assert.equal(r.status, 200);
    assert.deepEqual((await pending(bob)).map((m) => m.content), [{ to: 'all' }]);
    assert.deepEqual((await pending(bobLaptop)).map((m) => m.content), [{ to: 'laptop' }]);
    await sync(bob, (await sync(bob)).next_batch);
    await sync(bobLaptop, (await sync(bobLaptop)).next_batch);
  });

  it('a retried transaction queues nothing new; the same txnId from another device is a new request', async () => {
    const before = (await pending(bob)).length;
    const msg = { [bob.userId]: { [bob.deviceId]: { once: true } } };
    const [a, b] = await Promise.all([send(alice, 'm.test', msg, 'same'), send(alice, 'm.test', msg, 'same')]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal((await send(alice, 'm.test', msg, 'same')).status, 200);
    assert.equal((await pending(bob)).length, before + 1);
    const alice2 = await login(srv.url, 'alice');
    assert.equal((await send(alice2, 'm.test', msg, 'same')).status, 200);
    assert.equal((await pending(bob)).length, before + 2);
  });

  it('ignores remote users and unknown devices or users', async () => {
    const before = (await pending(bob)).length;
    const r = await send(alice, 'm.test', {
      '@someone:remote.example': { DEV: { x: 1 } },
      '@nobody:localhost': { '*': { x: 1 } },
      [bob.userId]: { NOSUCHDEVICE: { x: 1 } },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await pending(bob)).length, before);
  });

  it('refuses a message over 64 KiB (413 M_TOO_LARGE) and queues nothing of that request', async () => {
    const before = (await pending(bob)).length;
    const big = { blob: 'x'.repeat(64 * 1024) };
    expectError(await send(alice, 'm.test', { [bob.userId]: { LAPTOP: { small: 1 }, [bob.deviceId]: big } }), 413, 'M_TOO_LARGE');
    assert.equal((await pending(bob)).length, before);
    assert.equal((await pending(bobLaptop)).length, 0);
    // Many messages under the per-message cap fit in one request (general 1 MiB body limit).
    const many = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`D${i}`, { blob: 'y'.repeat(60 * 1024) }]));
    assert.equal((await send(alice, 'm.test', { [bob.userId]: many })).status, 200);
    const tooMuch = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`D${i}`, { blob: 'y'.repeat(60 * 1024) }]));
    expectError(await send(alice, 'm.test', { [bob.userId]: tooMuch }), 413, 'M_TOO_LARGE');
  });

  it('rejects malformed bodies', async () => {
    expectError(await alice.put(`${V3}/sendToDevice/m.test/bad1`, {}), 400, 'M_MISSING_PARAM');
    expectError(await send(alice, 'm.test', { [bob.userId]: 'nope' }), 400, 'M_BAD_JSON');
    expectError(await send(alice, 'm.test', { [bob.userId]: { [bob.deviceId]: [1, 2] } }), 400, 'M_BAD_JSON');
    expectError(await send(alice, 'm.test', []), 400, 'M_BAD_JSON');
  });
});
