// A reader whose token is the current position of both streams parks without building a response
// first (SyncService.sync: the range is empty, so the build would be an empty answer). These
// check that such a reader is still woken by everything a build would have shown (a message in a
// joined room, an invite, typing, a to-device message), that a timeout still answers a complete
// empty response, and that no build runs until the wake.

import { assert } from '../helpers/assert.js';
import { createRoom, makeUser, ok, roomPath, roomWith, syncOk, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sync: a reader at the head parks without a build', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;
  /** Calls of SyncService's private build (one per response built). */
  let builds = 0;

  before(async () => {
    srv = await startTestServer();
    [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => makeUser(srv, u)));
    roomId = await roomWith(alice, [bob]);
    const service = srv.hearth.services.sync as unknown as { build: (...a: unknown[]) => Promise<unknown> };
    const build = service.build.bind(service);
    service.build = (...a: unknown[]) => {
      builds++;
      return build(...a);
    };
  });
  after(async () => srv?.stop());

  /** bob's token at the head: a zero-timeout sync, then nothing else written. */
  const head = async (): Promise<string> => (await syncOk(bob)).next_batch;
  const poll = (since: string, timeout = 10_000) => syncOk(bob, { since, timeout });

  it('builds nothing while parked; the wake builds once and carries the message', async () => {
    const since = await head();
    const before = builds;
    const pending = poll(since);
    await sleep(150);
    assert.equal(builds, before, 'parked at the head without a build');
    await ok(alice.put(roomPath(roomId, 'send/m.room.message/h1'), { msgtype: 'm.text', body: 'at head' }), 'send');
    const s = await pending;
    assert.deepEqual(
      s.rooms.join[roomId].timeline.events.map((e: any) => e.content.body),
      ['at head'],
    );
    assert.equal(builds, before + 1, 'one build, after the wake');
    assert.notEqual(s.next_batch, since);
  });

  it('a timeout answers the complete empty response, with next_batch not below the token', async () => {
    const since = await head();
    const s = await poll(since, 300);
    assert.deepEqual(s.rooms, { join: {}, invite: {}, leave: {}, knock: {} });
    assert.deepEqual(s.device_one_time_keys_count, { signed_curve25519: 0 });
    assert.deepEqual(s.to_device, { events: [] });
    const [, stream, ephemeral] = s.next_batch.split('_').map(Number);
    const [, sinceStream, sinceEphemeral] = since.split('_').map(Number);
    assert.equal(stream, sinceStream, 'nothing was written meanwhile');
    assert.ok(ephemeral >= sinceEphemeral);
  });

  it('is woken by an invite to a room it does not watch yet', async () => {
    const since = await head();
    // Every poll's timeout (60 s) outlasts the test (20 s): each answer was a wake, with no
    // wall-clock bound for a loaded machine to overrun.
    const pending = poll(since, 60_000);
    await sleep(100);
    const other = await createRoom(alice, { invite: [bob.userId] });
    // Another change (alice's presence) may answer first: poll on, as a client does; each poll
    // must be woken, not time out (main failed here about 1 run in 3 under load).
    let s = await pending;
    for (let i = 0; i < 5 && !s.rooms.invite[other]; i++) s = await poll(s.next_batch, 60_000);
    assert.ok(s.rooms.invite[other], `invite in ${JSON.stringify(s.rooms)}`);
  });

  it('is woken by typing in a joined room', async () => {
    const since = await head();
    const pending = poll(since);
    await sleep(100);
    await ok(alice.put(roomPath(roomId, `typing/${enc(alice.userId)}`), { typing: true, timeout: 5000 }), 'typing');
    // Another change (alice's presence) may answer first: poll on, as a client does.
    let s = await pending;
    const typingOf = (r: any) => (r.rooms.join[roomId]?.ephemeral?.events ?? []).filter((e: any) => e.type === 'm.typing');
    for (let i = 0; i < 5 && typingOf(s).length === 0; i++) s = await poll(s.next_batch, 2000);
    assert.deepEqual(typingOf(s).map((e: any) => e.content.user_ids), [[alice.userId]]);
    await ok(alice.put(roomPath(roomId, `typing/${enc(alice.userId)}`), { typing: false }), 'stop typing');
  });

  it('is woken by a to-device message', async () => {
    const since = await head();
    // Every poll's timeout (60 s) outlasts the test: each answer was a wake (see above).
    const pending = poll(since, 60_000);
    await sleep(100);
    await ok(alice.put(`${V3}/sendToDevice/m.test/h2`, { messages: { [bob.userId]: { [bob.deviceId]: { n: 1 } } } }), 'sendToDevice');
    // Another change (alice's presence, the previous test's typing stop) may answer first: poll
    // on, as a client does; each poll must be woken, not time out (main failed here about 1
    // run in 6 under load).
    let s = await pending;
    for (let i = 0; i < 5 && s.to_device.events.length === 0; i++) s = await poll(s.next_batch, 60_000);
    assert.deepEqual(s.to_device.events, [{ type: 'm.test', sender: alice.userId, content: { n: 1 } }]);
  });

  it('a full_state request from the head token still builds at once', async () => {
    const since = await head();
    const before = builds;
    // full_state ignores the timeout: one of 60 s, past the test's own, would fail it if waited.
    const s = await syncOk(bob, { since, timeout: 60_000, full_state: true });
    assert.ok(s.rooms.join[roomId]?.state.events.length > 0, 'full state');
    assert.ok(builds > before);
  });
});
