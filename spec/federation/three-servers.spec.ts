// Three real Hearth servers (A, B, C) on loopback sharing one room. C is cut off from A and B
// (every federation request between them fails both ways, each side keeps serving its clients),
// both sides change the room's state and talk, then the partition heals. Afterwards the three
// must agree on the room's state, that state must be the state resolution (v2) of both
// branches, and every message must reach every user's /sync exactly once.
//
// The conflicts are built so the winners are known in advance:
// - m.room.name: alice (A) then carol (C, later timestamp) set it; both cite the same power
//   levels, so mainline position ties and the later timestamp wins: carol's.
// - m.room.topic: dave (C, power 50) sets it during the partition while alice demotes dave to 0
//   on A. Power events resolve first, so dave's topic fails the iterative auth check against the
//   resolved power levels, although it is the newest: the old topic stays.
// - m.room.power_levels: changed only on A, so alice's demotion stands.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { freePort, partition, serverName, startFederated, SyncedTimeline, waitFor, watchRequests, type User } from '../helpers/federation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('federation: three Hearth servers, a partition and its healing', function () {
  this.timeout(120_000);
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;
  let roomId: string;
  const views: SyncedTimeline[] = [];
  const sent: Array<{ by: string; body: string }> = [];

  const send = async (user: User, body: string) => {
    const r = await user.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(body)}`, { msgtype: 'm.text', body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    sent.push({ by: user.userId, body });
    return r.body.event_id as string;
  };
  const setState = async (user: User, type: string, content: object) => {
    const r = await user.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/${type}/`, content);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.event_id as string;
  };
  const stateOf = async (user: User) => {
    const r = await user.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as any[];
  };
  const ids = (state: any[]) => state.map((e) => e.event_id as string).sort();

  before(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    [a, b, c] = [await startFederated(ports[0]), await startFederated(ports[1]), await startFederated(ports[2])];
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
    carol = await new Api(c.url).register('carol');
    dave = await new Api(c.url).register('dave');
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  });

  it('all three servers join one room and see each other\'s messages', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', {
      preset: 'public_chat',
      name: 'name-0',
      topic: 'topic-0',
      power_level_content_override: { users: { [carol.userId]: 50, [dave.userId]: 50 }, state_default: 50 },
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    for (const u of [bob, carol, dave]) {
      const j = await u.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(a))}`, {});
      assert.equal(j.status, 200, JSON.stringify(j.body));
    }
    const everyone = [alice, bob, carol, dave].map((u) => u.userId).sort();
    for (const u of [alice, bob, carol]) {
      await waitFor(async () => {
        const m = await u.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
        return m.status === 200 && JSON.stringify(Object.keys(m.body.joined).sort()) === JSON.stringify(everyone);
      }, 20_000, `${u.userId} to see all four members`);
    }
    for (const u of [alice, bob, carol, dave]) views.push(await new SyncedTimeline(u, roomId).start());
    for (const u of [alice, bob, carol, dave]) await send(u, `before ${u.userId}`);
    for (const v of views) await v.until((t) => t.length >= 4);
  });

  it('C is partitioned; both sides change the state and talk; after healing all three agree on the resolved state', async () => {
    const [logA, logC] = [watchRequests(a), watchRequests(c)];
    const heal = partition([a, b, c], c);
    let healed = false;
    try {
      const nameA = await setState(alice, 'm.room.name', { name: 'name-A' });
      await sleep(20); // carol's name is strictly later: the timestamp tie-break picks it
      const nameC = await setState(carol, 'm.room.name', { name: 'name-C' });
      const topicC = await setState(dave, 'm.room.topic', { topic: 'topic-C' });
      await send(dave, 'during dave 1');
      await send(carol, 'during carol 1');
      const pl = (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`)).body;
      const demote = await setState(alice, 'm.room.power_levels', { ...pl, users: { ...pl.users, [dave.userId]: 0 } });
      await send(alice, 'during alice 1');
      await send(bob, 'during bob 1');
      const lastA = await send(alice, 'during alice 2');
      const lastC = await send(carol, 'during carol 2');
      // The sides really are apart: C has none of A's changes, A none of C's.
      assert.equal((await carol.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`)).body.name, 'name-C');
      assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.name/`)).body.name, 'name-A');
      assert.equal((await c.hearth.store.rooms.getEvent(demote)), null);
      assert.equal((await a.hearth.store.rooms.getEvent(topicC)), null);
      // Both sides' senders now count C (or A and B) as behind.
      await waitFor(async () => a.hearth.federation!.core.sender.catchingUp(serverName(c)) && c.hearth.federation!.core.sender.catchingUp(serverName(a)), 10_000, 'senders to notice the partition');

      heal();
      healed = true;
      // Every server gets both branches (the states can agree before that: dave's topic loses anyway).
      for (const [s, ids] of [[a, [topicC, lastC]], [b, [topicC, lastC, lastA]], [c, [demote, lastA]]] as const) {
        await waitFor(async () => (await s.hearth.store.rooms.getEvents([...ids])).size === ids.length, 30_000, `${serverName(s)} to get both branches`);
      }
      let states: any[][] = [];
      await waitFor(async () => {
        states = await Promise.all([alice, bob, carol].map(stateOf));
        const [sa, sb, sc] = states.map(ids);
        return JSON.stringify(sa) === JSON.stringify(sb) && JSON.stringify(sb) === JSON.stringify(sc) && sa.includes(nameC) && sa.includes(demote);
      }, 30_000, 'A, B and C to agree on the room state');

      const get = (type: string) => states[0].find((e) => e.type === type && e.state_key === '');
      assert.equal(get('m.room.name').event_id, nameC, 'same mainline position: the later timestamp wins');
      assert.notEqual(get('m.room.name').event_id, nameA);
      assert.equal(get('m.room.topic').content.topic, 'topic-0', 'dave\'s newer topic fails auth against the resolved power levels');
      assert.equal(get('m.room.power_levels').event_id, demote);
      assert.equal(get('m.room.power_levels').content.users[dave.userId], 0);
      // Catch-up sent only the newest events; the receivers asked for the rest, and took them
      // into the timeline (not as outliers).
      assert.ok(logC.some((l) => l.startsWith(`POST ${serverName(a)} /_matrix/federation/v1/get_missing_events/`)), 'C filled a gap from A');
      assert.ok(logA.some((l) => l.startsWith(`POST ${serverName(c)} /_matrix/federation/v1/get_missing_events/`)), 'A filled a gap from C');
      assert.equal((await c.hearth.store.rooms.getEvent(demote))?.outlier, false);
      assert.equal((await a.hearth.store.rooms.getEvent(topicC))?.softFailed, true, 'dave\'s topic reached A after his demotion: soft-failed there');
      const members = states[0].filter((e) => e.type === 'm.room.member').map((e) => `${e.state_key}=${e.content.membership}`).sort();
      assert.deepEqual(members, [alice, bob, carol, dave].map((u) => `${u.userId}=join`).sort());
    } finally {
      if (!healed) heal();
    }
  });

  it('every message reaches every user\'s /sync exactly once, each sender\'s in order, the same order for users of one server', async () => {
    // A message after the healing merges the branches for everyone.
    await send(bob, 'after bob');
    const expected = sent.map((m) => m.body).sort();
    for (const v of views) await v.until((t) => new Set(t).size >= expected.length, 30_000);
    // Nothing more trickles in later (a duplicate would).
    await sleep(500);
    for (const v of views) await v.poll(0);
    for (const v of views) {
      const texts = v.messages();
      assert.deepEqual([...texts].sort(), expected, `${v.user.userId} sees each message once`);
      for (const who of [alice, bob, carol, dave]) {
        const own = sent.filter((m) => m.by === who.userId).map((m) => m.body);
        assert.deepEqual(texts.filter((t) => own.includes(t)), own, `${v.user.userId} sees ${who.userId}'s messages in the order sent`);
      }
    }
    // carol and dave share server C: one server, one order.
    assert.deepEqual(views[2].messages(), views[3].messages());
    // Each server's /messages holds every message once too.
    for (const u of [alice, bob, carol]) {
      const r = await u.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=200`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const texts = r.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
      assert.deepEqual([...texts].sort(), expected, `${u.userId}'s server's /messages`);
    }
  });

  it('a gap wider than one transaction may fetch is bridged with the state C reports (/state_ids): bounded work, state right, the oldest messages missing', async () => {
    const { DEFAULT_GAP_BUDGET } = await import('../../src/federation/gap-fill.js');
    const logA = watchRequests(a);
    const heal = partition([a, b, c], c);
    const total = DEFAULT_GAP_BUDGET.events + 20;
    let topic: string;
    let last: string;
    try {
      await send(carol, 'wide 0'); // the transaction in flight when the partition is noticed
      topic = await setState(carol, 'm.room.topic', { topic: 'topic-wide' });
      for (let i = 1; i <= total; i++) last = await send(carol, `wide ${i}`);
      await waitFor(async () => c.hearth.federation!.core.sender.catchingUp(serverName(a)), 10_000, 'C to count A as behind');
    } finally {
      heal();
    }
    await waitFor(async () => (await a.hearth.store.rooms.getEvent(last!)) !== null, 30_000, 'A to receive C\'s newest event');
    assert.equal((await a.hearth.store.rooms.getEvent(last!))?.outlier, false, 'bridged, not an outlier');
    const fetched = logA.filter((l) => l.startsWith(`POST ${serverName(c)} /_matrix/federation/v1/get_missing_events/`));
    assert.ok(fetched.length > 0 && fetched.length <= DEFAULT_GAP_BUDGET.requests, `${fetched.length} get_missing_events requests`);
    assert.ok(logA.some((l) => l.startsWith(`GET ${serverName(c)} /_matrix/federation/v1/state_ids/`)), 'A asked C for the state at the gap');
    // The topic set inside the part of the gap A never fetched is in A's state all the same.
    assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`)).body.topic, 'topic-wide');
    assert.equal((await a.hearth.store.rooms.getEvent(topic!))?.outlier, true, 'the topic event came with the state (/state), not the timeline');
    const r = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=300`);
    const wide = r.body.chunk.filter((e: any) => e.type === 'm.room.message' && e.content.body.startsWith('wide ')).map((e: any) => e.content.body);
    assert.ok(wide.includes(`wide ${total}`) && wide.includes('wide 0'));
    // "wide 0" came in the transaction in flight, the newest one in the catch-up transaction.
    assert.ok(wide.length <= DEFAULT_GAP_BUDGET.events + 2, `A fetched at most the budget (${wide.length} of ${total + 1})`);
    assert.equal(new Set(wide).size, wide.length, 'no message twice');
    // A and C agree on the state again.
    await waitFor(async () => {
      const [sa, sc] = await Promise.all([alice, carol].map(stateOf));
      return JSON.stringify(ids(sa)) === JSON.stringify(ids(sc));
    }, 10_000, 'A and C to agree on the state');
  });
});
