// Typing notifications and presence over real HTTP (Client-Server API v1.12 "Typing
// Notifications" and "Presence"): m.typing in /sync with timeouts, typing surviving a send,
// wake-ups; PUT/GET /presence/{userId}/status, set_presence on /sync, activity, who sees whose
// presence, presence disabled, and the idle/offline transitions with tiny timeouts.

import { assert } from '../helpers/assert.js';
import { createRoom, makeUser, ok, roomPath as room, roomWith as sharedRoom, syncOk, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let txn = 0;

const sync = (who: User, q: { since?: string; timeout?: number; setPresence?: string } = {}) =>
  syncOk(who, { since: q.since, timeout: q.timeout, set_presence: q.setPresence });
const typingIn = (s: any, roomId: string): string[][] =>
  (s.rooms?.join?.[roomId]?.ephemeral?.events ?? []).filter((e: any) => e.type === 'm.typing').map((e: any) => e.content.user_ids);
const presenceOf = (s: any, userId: string): any[] => (s.presence?.events ?? []).filter((e: any) => e.sender === userId);
const status = (viewer: User, userId: string) => viewer.get(`${V3}/presence/${enc(userId)}/status`);

describe('typing notifications', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => makeUser(srv, u)));
    roomId = await sharedRoom(alice, [bob]);
  });
  after(async () => srv?.stop());

  const typing = (who: User, userId: string, body: unknown, inRoom = roomId) => who.put(room(inRoom, `typing/${enc(userId)}`), body);

  it('PUT typing {typing:true, timeout} shows m.typing {user_ids} in the members\' /sync ephemeral', async () => {
    const since = (await sync(bob)).next_batch;
    assert.deepEqual(await ok(typing(alice, alice.userId, { typing: true, timeout: 10000 }), 'typing'), {});
    const s = await sync(bob, { since });
    assert.deepEqual(typingIn(s, roomId), [[alice.userId]], JSON.stringify(s.rooms.join[roomId]?.ephemeral));
    // An initial sync shows the current typing set as well, to every member (the typist too).
    assert.deepEqual(typingIn(await sync(bob), roomId), [[alice.userId]]);
    assert.deepEqual(typingIn(await sync(alice), roomId), [[alice.userId]]);

    // Stopping explicitly empties the list.
    const since2 = (await sync(bob)).next_batch;
    await ok(typing(alice, alice.userId, { typing: false }), 'stop typing');
    assert.deepEqual(typingIn(await sync(bob, { since: since2 }), roomId), [[]]);
  });

  it('stops by itself after the timeout (300 ms)', async () => {
    const since = (await sync(bob)).next_batch;
    await ok(typing(alice, alice.userId, { typing: true, timeout: 300 }), 'typing');
    const s1 = await sync(bob, { since });
    assert.deepEqual(typingIn(s1, roomId), [[alice.userId]]);
    await sleep(700);
    const s2 = await sync(bob, { since: s1.next_batch });
    assert.deepEqual(typingIn(s2, roomId), [[]], `typing expired: ${JSON.stringify(s2.rooms.join[roomId]?.ephemeral)}`);
    // As Synapse: an initial sync shows a room's typing set once it ever changed, empty included,
    // so a client that starts syncing just after a stop still learns of it.
    assert.deepEqual(typingIn(await sync(bob), roomId), [[]], 'an initial sync shows the empty set once nobody types');
    const quiet = await createRoom(alice, { preset: 'public_chat' });
    assert.deepEqual(typingIn(await sync(alice), quiet), [], 'no typing event for a room where nobody ever typed');
  });

  it('a send does not end the sender\'s typing notification (the spec ties typing to PUT typing and its timeout only)', async () => {
    await ok(typing(alice, alice.userId, { typing: true, timeout: 30000 }), 'typing');
    const since = (await sync(bob)).next_batch;
    const { event_id } = await ok(alice.put(room(roomId, `send/m.room.message/tp${++txn}`), { msgtype: 'm.text', body: 'still typing' }), 'send');
    const s = await sync(bob, { since });
    assert.ok(s.rooms.join[roomId].timeline.events.some((e: any) => e.event_id === event_id));
    assert.deepEqual(typingIn(s, roomId), [], `no typing change after the send: ${JSON.stringify(s.rooms.join[roomId].ephemeral)}`);
    assert.deepEqual(typingIn(await sync(bob), roomId), [[alice.userId]], 'alice is still typing');
    await ok(typing(alice, alice.userId, { typing: false }), 'stop typing');
    assert.deepEqual(typingIn(await sync(bob), roomId), [[]], 'stopped explicitly');
  });

  it('typing for another user → 403; typing in a room one is not joined to → 403', async () => {
    const r = await typing(bob, alice.userId, { typing: true, timeout: 1000 });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_FORBIDDEN');
    const r2 = await typing(carol, carol.userId, { typing: true, timeout: 1000 });
    assert.equal(r2.status, 403, JSON.stringify(r2.body));
    assert.deepEqual(typingIn(await sync(alice), roomId), [[]], 'nobody is typing');
  });

  it('a parked long-poll wakes on a typing change', async () => {
    const since = (await sync(bob)).next_batch;
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const polling = sync(bob, { since, timeout: 60_000 });
    await sleep(250);
    await ok(typing(alice, alice.userId, { typing: true, timeout: 5000 }), 'typing');
    const s = await polling;
    assert.deepEqual(typingIn(s, roomId), [[alice.userId]]);
    // ...and on the stop.
    const polling2 = sync(bob, { since: s.next_batch, timeout: 60_000 });
    await sleep(250);
    await ok(typing(alice, alice.userId, { typing: false }), 'stop');
    const s2 = await polling2;
    assert.deepEqual(typingIn(s2, roomId), [[]]);
  });
});

describe('presence', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;
  let erin: User;
  let frank: User;

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol, dave, erin, frank] = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((u) => makeUser(srv, u)));
    await sharedRoom(alice, [bob, dave, erin, frank]);
    // carol shares no room with anyone.
    await ok(carol.post(`${V3}/createRoom`, { preset: 'private_chat' }), 'carol room');
  });
  after(async () => srv?.stop());

  it('PUT/GET /presence/{userId}/status: online, unavailable, offline with status_msg', async () => {
    assert.deepEqual(await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'Working' }), 'PUT'), {});
    for (const viewer of [alice, bob]) {
      const p = await ok(status(viewer, alice.userId), 'GET');
      assert.equal(p.presence, 'online');
      assert.equal(p.status_msg, 'Working');
      assert.equal(p.currently_active, true);
      assert.equal(typeof p.last_active_ago, 'number');
      assert.ok(p.last_active_ago >= 0 && p.last_active_ago < 5000, `last_active_ago ${p.last_active_ago}`);
    }
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'unavailable', status_msg: 'Lunch' }), 'PUT');
    const u = await ok(status(bob, alice.userId), 'GET');
    assert.equal(u.presence, 'unavailable');
    assert.equal(u.status_msg, 'Lunch');
    assert.equal(u.currently_active, false);
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'offline' }), 'PUT');
    const o = await ok(status(bob, alice.userId), 'GET');
    assert.equal(o.presence, 'offline');
    assert.equal(o.currently_active, false);

    const bad = await alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'busy-ish' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    const other = await bob.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online' });
    assert.equal(other.status, 403, `setting another user's presence: ${JSON.stringify(other.body)}`);
    assert.equal((await ok(status(bob, alice.userId), 'GET')).presence, 'offline', 'unchanged by the refused PUT');
  });

  it('set_presence on /sync: unavailable and offline are honoured, the default marks online', async () => {
    await sync(dave, { setPresence: 'unavailable' });
    const u = await ok(status(bob, dave.userId), 'GET');
    assert.equal(u.presence, 'unavailable');
    assert.equal(u.currently_active, false);
    await sync(dave);
    const o = await ok(status(bob, dave.userId), 'GET');
    assert.equal(o.presence, 'online', 'a sync without set_presence marks the user online');
    assert.equal(o.currently_active, true);

    // A client syncing with set_presence=offline does not make its user online.
    await sync(erin, { setPresence: 'offline' });
    assert.equal((await ok(status(bob, erin.userId), 'GET')).presence, 'offline');
    const bad = await erin.get(`${V3}/sync?timeout=0&set_presence=bogus`);
    assert.equal(bad.status, 400);
  });

  it('set_presence=online on /sync overrides an earlier unavailable and reaches room-mates with last_active_ago', async () => {
    for (const earlier of ['put', 'sync'] as const) {
      if (earlier === 'put') await ok(dave.put(`${V3}/presence/${enc(dave.userId)}/status`, { presence: 'unavailable' }), 'PUT');
      else await sync(dave, { setPresence: 'unavailable' });
      const bobSince = (await sync(bob)).next_batch;
      assert.equal(presenceOf(await sync(bob), dave.userId)[0]?.content.presence, 'unavailable', `${earlier}: precondition`);
      await sync(dave, { setPresence: 'online' });
      assert.equal((await ok(status(bob, dave.userId), 'GET')).presence, 'online', `${earlier}: GET status`);
      const ev = presenceOf(await sync(bob, { since: bobSince }), dave.userId);
      assert.equal(ev.length, 1, `${earlier}: bob's incremental sync carries dave's change`);
      assert.equal(ev[0].content.presence, 'online');
      assert.equal(ev[0].content.currently_active, true);
      assert.equal(typeof ev[0].content.last_active_ago, 'number');
    }
  });

  it('activity: a sync makes the user online and active; a send resets last_active_ago', async () => {
    await sync(frank);
    const p0 = await ok(status(bob, frank.userId), 'GET');
    assert.equal(p0.presence, 'online');
    assert.equal(p0.currently_active, true);
    assert.ok(p0.last_active_ago < 1000, `just active: ${p0.last_active_ago}`);
    await sleep(1100);
    const p1 = await ok(status(bob, frank.userId), 'GET');
    assert.ok(p1.last_active_ago >= 1000, `last_active_ago grows with time: ${p1.last_active_ago}`);
    const rooms = (await ok(frank.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms as string[];
    await ok(frank.put(room(rooms[0], `send/m.room.message/pr${++txn}`), { msgtype: 'm.text', body: 'hello' }), 'send');
    const p2 = await ok(status(bob, frank.userId), 'GET');
    assert.ok(p2.last_active_ago < 500, `a send is activity: last_active_ago ${p2.last_active_ago}`);
    assert.equal(p2.presence, 'online');
    assert.equal(p2.currently_active, true);
  });

  it('presence reaches users who share a room (/sync presence.events), not users who share none', async () => {
    const bobSince = (await sync(bob)).next_batch;
    const carolSince = (await sync(carol)).next_batch;
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'visible to roommates' }), 'PUT');

    const sb = await sync(bob, { since: bobSince });
    const ev = presenceOf(sb, alice.userId);
    assert.equal(ev.length, 1, JSON.stringify(sb.presence));
    assert.equal(ev[0].type, 'm.presence');
    assert.equal(ev[0].content.presence, 'online');
    assert.equal(ev[0].content.status_msg, 'visible to roommates');
    assert.equal(ev[0].content.currently_active, true);
    assert.equal(typeof ev[0].content.last_active_ago, 'number');
    assert.equal(presenceOf(await sync(bob), alice.userId).length, 1, 'and in an initial sync');

    for (const s of [await sync(carol, { since: carolSince }), await sync(carol)]) {
      assert.deepEqual(presenceOf(s, alice.userId), [], `carol shares no room with alice: ${JSON.stringify(s.presence)}`);
      assert.deepEqual(presenceOf(s, bob.userId), []);
    }
    const peek = await status(carol, alice.userId);
    assert.equal(peek.status, 403, `GET presence of a user sharing no room: ${JSON.stringify(peek.body)}`);
  });

  it('a parked long-poll wakes on a presence change of a roommate', async () => {
    const since = (await sync(bob)).next_batch;
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const polling = sync(bob, { since, timeout: 60_000 });
    await sleep(250);
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'unavailable', status_msg: 'brb' }), 'PUT');
    let s = await polling;
    // On a saturated machine alice's idle timer (offline) can fire first and wake the poll; the
    // change she made must then be in the very next response, with no wait.
    if (presenceOf(s, alice.userId)[0]?.content.presence === 'offline') s = await sync(bob, { since: s.next_batch as string, timeout: 0 });
    assert.equal(presenceOf(s, alice.userId)[0]?.content.presence, 'unavailable', JSON.stringify(s.presence));
  });
});

describe('presence disabled', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;

  before(async () => {
    srv = await startTestServer({ presence: { enabled: false } });
    [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => makeUser(srv, u)));
    await sharedRoom(alice, [bob]);
  });
  after(async () => srv?.stop());

  it('presence.enabled: false → no presence events in /sync, whatever users do', async () => {
    const since = (await sync(bob)).next_batch;
    await sync(alice, { setPresence: 'online' });
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'hi' }), 'PUT still accepted');
    const rooms = (await ok(alice.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms as string[];
    await ok(alice.put(room(rooms[0], `send/m.room.message/pd${++txn}`), { msgtype: 'm.text', body: 'hi' }), 'send');
    for (const s of [await sync(bob, { since }), await sync(bob), await sync(alice)]) {
      assert.deepEqual(s.presence?.events ?? [], [], JSON.stringify(s.presence));
    }
    const p = await ok(status(bob, alice.userId), 'GET');
    assert.notEqual(p.status_msg, 'hi', 'nothing was recorded');
  });
});

describe('presence transitions (idle_timeout_ms 1000, offline_timeout_ms 1500)', function () {
  this.timeout(20000);
  let srv: TestServer;
  let watcher: User;
  let gone: User;
  let poller: User;
  let syncer: User;

  before(async () => {
    srv = await startTestServer({ presence: { idle_timeout_ms: 1000, offline_timeout_ms: 1500 } });
    [watcher, gone, poller, syncer] = await Promise.all(['watcher', 'gone', 'poller', 'syncer'].map((u) => makeUser(srv, u)));
    await sharedRoom(watcher, [gone, poller, syncer]);
  });
  after(async () => srv?.stop());

  it('a user who stops syncing goes offline (~2.5 s), and roommates are told', async () => {
    const since = (await sync(watcher)).next_batch;
    await sync(gone);
    assert.equal((await ok(status(watcher, gone.userId), 'GET')).presence, 'online');
    // The sweep runs every second over one-second buckets: the change lands between 1.5 and ~3 s.
    const t0 = Date.now();
    await sleep(1400);
    let p = await ok(status(watcher, gone.userId), 'GET');
    while (p.presence !== 'offline' && Date.now() - t0 < 4000) {
      await sleep(100);
      p = await ok(status(watcher, gone.userId), 'GET');
    }
    assert.equal(p.presence, 'offline', `after ${Date.now() - t0} ms: ${JSON.stringify(p)}`);
    assert.equal(p.currently_active, false);
    const s = await sync(watcher, { since });
    const ev = presenceOf(s, gone.userId);
    assert.equal(ev[ev.length - 1]?.content.presence, 'offline', `watcher sees the transition: ${JSON.stringify(s.presence)}`);
  });

  it('a send by a user who went offline keeps them offline (as Synapse): no flip to online and back', async () => {
    const since = (await sync(watcher)).next_batch;
    assert.equal((await ok(status(watcher, gone.userId), 'GET')).presence, 'offline');
    const rooms = (await ok(gone.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms as string[];
    await ok(gone.put(room(rooms[0], `send/m.room.message/off${Date.now()}`), { msgtype: 'm.text', body: 'from a bot' }), 'send');
    const p = await ok(status(watcher, gone.userId), 'GET');
    assert.equal(p.presence, 'offline');
    assert.ok(p.last_active_ago < 1000, `the send still counts as activity: last_active_ago ${p.last_active_ago}`);
    const s = await sync(watcher, { since });
    assert.deepEqual(presenceOf(s, gone.userId), [], `no presence change reaches room-mates: ${JSON.stringify(s.presence)}`);
  });

  it('activity counts as heartbeat: a user syncing every 200 ms stays online the whole time', async () => {
    const seen: string[] = [];
    const until = Date.now() + 3000;
    const loop = (async () => {
      while (Date.now() < until) {
        await sync(syncer);
        await sleep(200);
      }
    })();
    await sleep(100);
    while (Date.now() < until - 100) {
      seen.push((await ok(status(watcher, syncer.userId), 'GET')).presence);
      await sleep(50);
    }
    await loop;
    const counts = seen.reduce<Record<string, number>>((m, s) => ((m[s] = (m[s] ?? 0) + 1), m), {});
    assert.deepEqual(Object.keys(counts), ['online'], `states sampled while the client kept syncing: ${JSON.stringify(counts)}`);
  });

});

describe('presence of long-polling clients (idle_timeout_ms 60000, offline_timeout_ms 1500)', function () {
  this.timeout(20000);
  let srv: TestServer;
  let watcher: User;
  let poller: User;

  // sync.max_timeout_ms (60 s by default) lets a client's long-poll outlast offline_timeout_ms
  // (30 s by default); here the ratio is the same with short times. A client whose /sync is
  // open is connected: it must not be reported offline.
  before(async () => {
    srv = await startTestServer({ presence: { idle_timeout_ms: 60000, offline_timeout_ms: 1500 } });
    [watcher, poller] = await Promise.all(['watcher', 'poller'].map((u) => makeUser(srv, u)));
    await sharedRoom(watcher, [poller]);
  });
  after(async () => srv?.stop());

  it('a client that keeps long-polling with a timeout above offline_timeout_ms is never reported offline', async () => {
    // The watcher long-polls too and records every presence event about the poller.
    const events: string[] = [];
    const until = Date.now() + 5000;
    let wSince = (await sync(watcher, { setPresence: 'offline' })).next_batch;
    const watch = (async () => {
      while (Date.now() < until) {
        const s = await sync(watcher, { since: wSince, timeout: Math.max(0, Math.min(1000, until - Date.now())), setPresence: 'offline' });
        wSince = s.next_batch;
        for (const e of presenceOf(s, poller.userId)) events.push(e.content.presence);
      }
    })();
    let since = (await sync(poller)).next_batch;
    let polls = 0;
    while (Date.now() < until) {
      const s = await sync(poller, { since, timeout: Math.max(0, Math.min(5000, until - Date.now())) });
      since = s.next_batch;
      polls++;
    }
    await watch;
    assert.ok(!events.includes('offline'), `presence of a client connected the whole time, as its roommate saw it over ${polls} long-polls: ${JSON.stringify(events)}`);
  });
});
