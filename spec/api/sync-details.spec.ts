// /sync details over real HTTP against the Client-Server API v1.12 (GET /sync, filters,
// lazy-loading room members) and the client expectations in shared/notes/client-compat.md §4.

import { assert } from '../helpers/assert.js';
import { createRoom, ok, roomPath as room, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

let txnSeq = 0;

describe('/sync details', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => api.register(u)));
  });
  after(async () => srv.stop());

  const create = (body: Record<string, unknown>, who: User = alice) => createRoom(who, body);
  const send = (who: User, roomId: string, body: string) => sendEvent(who, roomId, 'm.room.message', `sd${++txnSeq}`, { msgtype: 'm.text', body }, `send ${body}`);
  const sync = (who: User, q: { since?: string; filter?: unknown; timeout?: number; full_state?: boolean } = {}) => syncOk(who, q);
  const ids = (events: any[]) => events.map((e) => e.event_id);
  const memberKeys = (events: any[]) => events.filter((e) => e.type === 'm.room.member').map((e) => e.state_key as string).sort();
  const roomsEmpty = (s: any) =>
    Object.keys(s.rooms?.join ?? {}).length === 0 && Object.keys(s.rooms?.invite ?? {}).length === 0 && Object.keys(s.rooms?.leave ?? {}).length === 0;

  it('initial sync: timeline, limited, prev_batch, state at the start of the timeline, account_data, ephemeral, summary, unread_notifications', async () => {
    const roomId = await create({ preset: 'public_chat', name: 'Start', invite: ['@ghost:localhost'] });
    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    for (let i = 0; i < 3; i++) await send(alice, roomId, `m${i}`);
    const rename = await ok(alice.put(room(roomId, 'state/m.room.name'), { name: 'Renamed' }), 'rename');

    const s = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { limit: 1 } } } });
    assert.equal(typeof s.next_batch, 'string');
    const r = s.rooms.join[roomId];
    assert.ok(r, 'room in rooms.join');
    assert.deepEqual(ids(r.timeline.events), [rename.event_id], 'timeline holds only the last event');
    assert.equal(r.timeline.limited, true);
    assert.equal(typeof r.timeline.prev_batch, 'string');

    const st: any[] = r.state.events;
    const get = (t: string, k = '') => st.find((e) => e.type === t && e.state_key === k);
    assert.ok(get('m.room.create'), 'state has m.room.create');
    assert.ok(get('m.room.power_levels'));
    assert.ok(get('m.room.join_rules'));
    assert.equal(get('m.room.name')?.content.name, 'Start', 'state is the state *before* the timeline: the old name');
    assert.ok(!ids(st).includes(rename.event_id), 'timeline events are not repeated in state');
    assert.deepEqual(memberKeys(st), ['@ghost:localhost', alice.userId, bob.userId].sort());

    assert.ok(Array.isArray(r.account_data?.events), 'account_data.events');
    assert.ok(Array.isArray(r.ephemeral?.events), 'ephemeral.events');
    assert.equal(typeof r.unread_notifications?.notification_count, 'number');
    assert.equal(typeof r.unread_notifications?.highlight_count, 'number');
    assert.equal(r.summary['m.joined_member_count'], 2);
    assert.equal(r.summary['m.invited_member_count'], 1);
    // Heroes are only required when the room has no name or alias (spec RoomSummary); this one is named.
    assert.equal(r.summary['m.heroes'], undefined, 'a named room needs no heroes');

    // prev_batch continues exactly before the timeline.
    const back = await ok(alice.get(room(roomId, `messages?dir=b&limit=3&from=${enc(r.timeline.prev_batch)}`)), 'messages');
    assert.deepEqual(back.chunk.map((e: any) => e.content.body), ['m2', 'm1', 'm0']);
    // Top-level sections.
    assert.ok(Array.isArray(s.account_data?.events));
  });

  it('incremental sync without changes returns at once with timeout=0 and a token that loses nothing', async () => {
    const roomId = await create({ preset: 'public_chat' });
    const s0 = await sync(alice);
    const t = Date.now();
    const s1 = await sync(alice, { since: s0.next_batch, timeout: 0 });
    assert.ok(Date.now() - t < 1000, 'timeout=0 answers immediately');
    assert.ok(roomsEmpty(s1), `nothing changed, got ${JSON.stringify(s1.rooms)}`);
    assert.equal(typeof s1.next_batch, 'string');
    const again = await sync(alice, { since: s1.next_batch });
    assert.ok(roomsEmpty(again), 'the returned token replays nothing');
    const ev = await send(alice, roomId, 'after the empty sync');
    const s2 = await sync(alice, { since: s1.next_batch });
    assert.deepEqual(ids(s2.rooms.join[roomId].timeline.events), [ev], 'the event after the token arrives');
    const s2b = await sync(alice, { since: s0.next_batch });
    assert.deepEqual(ids(s2b.rooms.join[roomId].timeline.events), [ev], 'the older token is still valid');
  });

  it('incremental non-limited sync carries no state; a newly joined room carries full state', async () => {
    const roomId = await create({ preset: 'public_chat', name: 'fresh' });
    const c0 = await sync(carol);
    const a0 = await sync(alice);
    await ok(carol.post(room(roomId, 'join'), {}), 'join');
    const c1 = await sync(carol, { since: c0.next_batch });
    const j = c1.rooms.join[roomId];
    assert.ok(j, 'newly joined room appears');
    const all = [...j.state.events, ...j.timeline.events];
    assert.ok(all.some((e: any) => e.type === 'm.room.create'), 'm.room.create delivered');
    assert.ok(all.some((e: any) => e.type === 'm.room.name'), 'full state delivered');
    const a1 = await sync(alice, { since: a0.next_batch });
    const ja = a1.rooms.join[roomId];
    assert.equal(ja.timeline.limited, false);
    assert.deepEqual(ja.timeline.events.map((e: any) => [e.type, e.state_key]), [['m.room.member', carol.userId]]);
    assert.deepEqual(ja.state.events, [], 'no state between since and the timeline');
    assert.equal(ja.summary?.['m.joined_member_count'], 2, 'summary sent when members change');
  });

  it('timeout=1000 with no activity waits about a second, then returns empty rooms', async () => {
    const s0 = await sync(dave);
    const t = Date.now();
    const s1 = await sync(dave, { since: s0.next_batch, timeout: 1000 });
    const took = Date.now() - t;
    assert.ok(took >= 900, `long-poll returned after ${took} ms`);
    assert.ok(took < 5000, `long-poll took ${took} ms`);
    assert.ok(roomsEmpty(s1), JSON.stringify(s1.rooms));
    assert.equal(typeof s1.next_batch, 'string');
  });

  it('full_state=true returns the full state on an incremental sync, immediately', async () => {
    const roomId = await create({ preset: 'public_chat', name: 'full', topic: 'state' });
    const s0 = await sync(alice);
    // full_state ignores the timeout: one of 60 s, past the test's own, would fail it if waited.
    const s1 = await sync(alice, { since: s0.next_batch, full_state: true, timeout: 60_000 });
    const r = s1.rooms.join[roomId];
    assert.ok(r, 'room present although nothing changed');
    const types = r.state.events.map((e: any) => e.type);
    for (const want of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name', 'm.room.topic', 'm.room.member']) {
      assert.ok(types.includes(want), `full state has ${want}`);
    }
    assert.deepEqual(r.timeline.events, [], 'the timeline is still limited by since');
  });

  describe('filters', () => {
    let roomId: string;
    let otherRoom: string;
    const messages: string[] = [];

    before(async () => {
      roomId = await create({ preset: 'public_chat', name: 'filtered' });
      otherRoom = await create({ preset: 'public_chat', name: 'other' });
      for (let i = 0; i < 4; i++) messages.push(await send(alice, roomId, `f${i}`));
    });

    it('a stored filter (POST then ?filter=<id>) applies timeline.limit and rooms', async () => {
      const def = { room: { rooms: [roomId], timeline: { limit: 2 } } };
      const c = await ok(alice.post(`${V3}/user/${enc(alice.userId)}/filter`, def), 'create filter');
      assert.equal(typeof c.filter_id, 'string');
      assert.ok(!c.filter_id.startsWith('{'), 'filter IDs must not start with {');
      const s = await sync(alice, { filter: c.filter_id });
      assert.deepEqual(Object.keys(s.rooms.join), [roomId], 'rooms filter applies');
      assert.deepEqual(ids(s.rooms.join[roomId].timeline.events), messages.slice(-2));
      assert.equal(s.rooms.join[roomId].timeline.limited, true);
    });

    it('GET /user/{userId}/filter/{id} returns the stored definition', async () => {
      const def = {
        event_fields: ['type', 'content', 'sender'],
        account_data: { not_types: ['m.push_rules'] },
        room: {
          include_leave: true,
          not_rooms: [otherRoom],
          state: { lazy_load_members: true, types: ['m.room.*'] },
          timeline: { limit: 7, not_senders: ['@spam:localhost'], types: ['m.room.message', 'm.room.name'] },
        },
        presence: { types: [] },
      };
      const c = await ok(alice.post(`${V3}/user/${enc(alice.userId)}/filter`, def), 'create filter');
      const g = await ok(alice.get(`${V3}/user/${enc(alice.userId)}/filter/${enc(c.filter_id)}`), 'get filter');
      assert.deepEqual(g, def);
    });

    it('an unknown filter ID is 404 M_NOT_FOUND', async () => {
      const r = await alice.get(`${V3}/user/${enc(alice.userId)}/filter/99999999`);
      assert.equal(r.status, 404, JSON.stringify(r.body));
      assert.equal(r.body.errcode, 'M_NOT_FOUND');
    });

    it('an invalid filter definition is refused with 400 (stored and inline)', async () => {
      for (const bad of [
        { room: { timeline: { limit: 'ten' } } },
        { room: { rooms: 'not-a-list' } },
        { event_format: 'xml' },
        { presence: 'not_an_object' },
        { room: { timeline: { types: [0] } } },
        { room: { timeline: { rooms: ['not_a_room_id'] } } },
        { room: { rooms: ['not_a_room_id'] } },
        { room: { timeline: { senders: ['not_a_sender_id'] } } },
        { presence: { not_senders: ['@'] } },
        { room: { state: { lazy_load_members: 'true' } } },
      ]) {
        const r = await alice.post(`${V3}/user/${enc(alice.userId)}/filter`, bad);
        assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.status} ${JSON.stringify(r.body)}`);
        assert.equal(typeof r.body.errcode, 'string');
      }
      const inline = await alice.get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 'ten' } } }))}`);
      assert.equal(inline.status, 400, JSON.stringify(inline.body));
      const notJson = await alice.get(`${V3}/sync?timeout=0&filter=${enc('{not json')}`);
      assert.equal(notJson.status, 400, JSON.stringify(notJson.body));
    });

    it('inline JSON filters apply timeline types and not_types', async () => {
      const onlyMsgs = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { types: ['m.room.message'], limit: 50 } } } });
      const tl1 = onlyMsgs.rooms.join[roomId].timeline.events;
      assert.deepEqual(ids(tl1), messages);
      const noMsgs = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { not_types: ['m.room.message'], limit: 50 } } } });
      const tl2: any[] = noMsgs.rooms.join[roomId].timeline.events;
      assert.ok(tl2.length > 0, 'the state events remain');
      assert.ok(tl2.every((e) => e.type !== 'm.room.message'));
      assert.ok(tl2.some((e) => e.type === 'm.room.create'));
      const wildcard = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { types: ['m.room.n*'], limit: 50 } } } });
      assert.deepEqual(wildcard.rooms.join[roomId].timeline.events.map((e: any) => e.type), ['m.room.name']);
    });

    it('state filter types apply to the state section', async () => {
      const s = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { limit: 1 }, state: { types: ['m.room.name'] } } } });
      assert.deepEqual(s.rooms.join[roomId].state.events.map((e: any) => e.type), ['m.room.name']);
    });
  });

  describe('lazy-loading members', () => {
    let roomId: string;
    const lazy = (limit: number) => ({ room: { state: { lazy_load_members: true }, timeline: { limit } } });
    const ghosts = ['@ghost1:localhost', '@ghost2:localhost', '@ghost3:localhost', '@ghost4:localhost', '@ghost5:localhost'];

    before(async () => {
      // 4 joined members (alice, bob, carol, dave) and 5 invited ones; only carol speaks lately.
      roomId = await create({ preset: 'public_chat', name: 'lazy', invite: ghosts });
      for (const u of [bob, carol, dave]) await ok(u.post(room(roomId, 'join'), {}), 'join');
      await send(dave, roomId, 'dave spoke long ago');
      for (let i = 0; i < 3; i++) await send(carol, roomId, `carol ${i}`);
    });

    it('returns only the member events of timeline senders, the syncing user and the heroes', async () => {
      const s = await sync(bob, { filter: lazy(3) });
      const r = s.rooms.join[roomId];
      assert.deepEqual(r.timeline.events.map((e: any) => e.sender), [carol.userId, carol.userId, carol.userId]);
      const heroes: string[] = r.summary?.['m.heroes'] ?? [];
      assert.ok(!heroes.includes(dave.userId), `dave joined after 5 others and is no hero: ${heroes}`);
      const members = memberKeys(r.state.events);
      assert.ok(members.includes(carol.userId), 'sender included');
      assert.ok(members.includes(bob.userId), 'self included');
      assert.ok(!members.includes(dave.userId), 'a silent non-hero member is not loaded');
      const allowed = new Set([carol.userId, bob.userId, ...heroes]);
      for (const m of members) assert.ok(allowed.has(m), `unexpected lazy member ${m}`);
      assert.ok(r.state.events.some((e: any) => e.type === 'm.room.create'), 'non-member state still complete');
      assert.ok(r.state.events.some((e: any) => e.type === 'm.room.name'));
      // Without lazy loading every member is there.
      const full = await sync(bob, { filter: { room: { timeline: { limit: 3 } } } });
      assert.deepEqual(memberKeys(full.rooms.join[roomId].state.events), [alice.userId, bob.userId, carol.userId, dave.userId, ...ghosts].sort());
    });

    it("includes the heroes' member events in an unnamed room (spec: m.heroes \"MUST be included in the state\" when lazy-loading)", async () => {
      // Heroes are only required for rooms without a name or alias (spec RoomSummary).
      const unnamed = await create({ preset: 'public_chat', invite: ghosts });
      await ok(bob.post(room(unnamed, 'join'), {}), 'join');
      for (let i = 0; i < 3; i++) await send(alice, unnamed, `alice ${i}`);
      const s = await sync(bob, { filter: lazy(3) });
      const r = s.rooms.join[unnamed];
      const heroes: string[] = r.summary['m.heroes'];
      assert.ok(heroes.length >= 5, `5 heroes expected, got ${heroes}`);
      const members = memberKeys([...r.state.events, ...r.timeline.events]);
      const missing = heroes.filter((h) => !members.includes(h));
      assert.deepEqual(missing, [], 'hero member events missing from lazy-loaded state');
    });

    it("always includes the user's own member event in an initial sync, even when it is far back", async () => {
      for (const u of [alice, dave, carol]) {
        const s = await sync(u, { filter: lazy(2) });
        const r = s.rooms.join[roomId];
        const own = r.state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === u.userId)
          ?? r.timeline.events.find((e: any) => e.type === 'm.room.member' && e.state_key === u.userId);
        assert.ok(own, `${u.userId} gets their own member event`);
        assert.equal(own.content.membership, 'join');
      }
    });

    it('the messages endpoint with lazy_load_members returns the senders\' member events in state', async () => {
      const f = enc(JSON.stringify({ lazy_load_members: true }));
      const m = await ok(bob.get(room(roomId, `messages?dir=b&limit=3&filter=${f}`)), 'messages');
      assert.ok(Array.isArray(m.state), 'state present');
      assert.ok(memberKeys(m.state).includes(carol.userId));
      assert.ok(!memberKeys(m.state).includes(dave.userId));
    });

    it('an incremental sync includes the member event of a new timeline sender the client was never sent', async () => {
      const s0 = await sync(bob, { filter: lazy(3) });
      assert.ok(!memberKeys(s0.rooms.join[roomId].state.events).includes(dave.userId), 'precondition: dave not loaded yet');
      const ev = await send(dave, roomId, 'dave speaks again');
      const s1 = await sync(bob, { since: s0.next_batch, filter: lazy(3) });
      const r = s1.rooms.join[roomId];
      assert.deepEqual(ids(r.timeline.events), [ev]);
      assert.ok(
        memberKeys([...r.state.events, ...r.timeline.events]).includes(dave.userId),
        `dave's member event must accompany his first visible message; state was ${JSON.stringify(r.state.events.map((e: any) => [e.type, e.state_key]))}`,
      );
    });

    it('a limited incremental sync includes membership changes that happened in the gap', async () => {
      // Five invitees make carol no hero, so only the gap rule can bring her member event.
      const gapRoom = await create({ preset: 'public_chat', name: 'gap members', invite: ghosts });
      await ok(bob.post(room(gapRoom, 'join'), {}), 'bob joins');
      const s0 = await sync(bob, { filter: lazy(3) });
      await ok(carol.post(room(gapRoom, 'join'), {}), 'carol joins in the gap');
      for (let i = 0; i < 5; i++) await send(alice, gapRoom, `after carol ${i}`);
      const s1 = await sync(bob, { since: s0.next_batch, filter: lazy(3) });
      const r = s1.rooms.join[gapRoom];
      assert.equal(r.timeline.limited, true);
      assert.ok(!r.timeline.events.some((e: any) => e.type === 'm.room.member'), 'the join is in the gap, not the timeline');
      const carolMember = r.state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === carol.userId);
      assert.ok(carolMember, 'spec: "When a sync is limited, the server MUST return membership events for events in the gap"');
      assert.equal(carolMember.content.membership, 'join');
    });
  });

  it('being kicked puts the room in rooms.leave with the kick event in the timeline', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(carol.post(room(roomId, 'join'), {}), 'join');
    const c0 = await sync(carol);
    assert.ok(c0.rooms.join[roomId]);
    await send(alice, roomId, 'before the kick');
    await ok(alice.post(room(roomId, 'kick'), { user_id: carol.userId, reason: 'testing' }), 'kick');
    await send(alice, roomId, 'after the kick');
    const c1 = await sync(carol, { since: c0.next_batch });
    assert.equal(c1.rooms.join[roomId], undefined, 'no longer joined');
    const left = c1.rooms.leave[roomId];
    assert.ok(left, 'room in rooms.leave');
    const tl: any[] = left.timeline.events;
    const kick = tl[tl.length - 1];
    assert.equal(kick.type, 'm.room.member');
    assert.equal(kick.state_key, carol.userId);
    assert.equal(kick.sender, alice.userId);
    assert.equal(kick.content.membership, 'leave');
    assert.equal(kick.content.reason, 'testing');
    assert.ok(tl.some((e) => e.content?.body === 'before the kick'));
    assert.ok(!tl.some((e) => e.content?.body === 'after the kick'), 'nothing after the kick leaks');
    const c2 = await sync(carol, { since: c1.next_batch });
    assert.equal(c2.rooms.leave[roomId], undefined, 'the leave is reported once');
    assert.equal(c2.rooms.join[roomId], undefined);
  });

  it('a limited incremental sync has a prev_batch that /messages continues from without gap or overlap', async () => {
    const roomId = await create({ preset: 'public_chat', topic: 'old topic' });
    const s0 = await sync(alice);
    const gap: string[] = [];
    for (let i = 0; i < 6; i++) gap.push(await send(alice, roomId, `g${i}`));
    gap.push((await ok(alice.put(room(roomId, 'state/m.room.topic'), { topic: 'new topic' }), 'topic')).event_id);
    for (let i = 6; i < 12; i++) gap.push(await send(alice, roomId, `g${i}`));
    const s1 = await sync(alice, { since: s0.next_batch, filter: { room: { rooms: [roomId], timeline: { limit: 5 } } } });
    const r = s1.rooms.join[roomId];
    assert.equal(r.timeline.limited, true);
    assert.deepEqual(ids(r.timeline.events), gap.slice(-5));
    const topic = r.state.events.find((e: any) => e.type === 'm.room.topic');
    assert.equal(topic?.content.topic, 'new topic', 'state changed in the gap is delivered');
    assert.equal(typeof r.timeline.prev_batch, 'string');
    const back = await ok(alice.get(room(roomId, `messages?dir=b&limit=50&from=${enc(r.timeline.prev_batch)}`)), 'messages');
    assert.deepEqual(ids(back.chunk.slice(0, 8)), gap.slice(0, 8).reverse(), 'continues right before the timeline');
    const bounded = await ok(
      alice.get(room(roomId, `messages?dir=b&limit=50&from=${enc(r.timeline.prev_batch)}&to=${enc(s0.next_batch)}`)),
      'messages to since',
    );
    assert.deepEqual(ids(bounded.chunk), gap.slice(0, 8).reverse(), 'from prev_batch to since is exactly the gap');
    // Paging forward from the old since (what js-sdk does after limited) gives the gap in order.
    const fwd = await ok(alice.get(room(roomId, `messages?dir=f&limit=50&from=${enc(s0.next_batch)}`)), 'messages f');
    assert.deepEqual(ids(fwd.chunk), gap);
  });

  it('account data changes wake a long-poll', async () => {
    const roomId = await create({ preset: 'public_chat' });
    const s0 = await sync(alice);
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const poll = sync(alice, { since: s0.next_batch, timeout: 60_000 });
    await new Promise((r) => setTimeout(r, 150));
    await ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/org.example.wake`, { n: 1 }), 'account data');
    const s1 = await poll;
    assert.deepEqual(s1.account_data.events.filter((e: any) => e.type === 'org.example.wake'), [{ type: 'org.example.wake', content: { n: 1 } }]);

    const poll2 = sync(alice, { since: s1.next_batch, timeout: 60_000 });
    await new Promise((r) => setTimeout(r, 150));
    await ok(alice.put(`${V3}/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.tag`, { x: 2 }), 'room account data');
    const s2 = await poll2;
    assert.deepEqual(s2.rooms.join[roomId]?.account_data?.events, [{ type: 'org.example.tag', content: { x: 2 } }]);
  });

  it('an invite wakes the invitee\'s long-poll', async () => {
    const d0 = await sync(dave);
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const poll = sync(dave, { since: d0.next_batch, timeout: 60_000 });
    await new Promise((r) => setTimeout(r, 150));
    const roomId = await create({ preset: 'private_chat', name: 'wake up', invite: [dave.userId] });
    const d1 = await poll;
    const inv = d1.rooms.invite[roomId];
    assert.ok(inv, 'invite delivered');
    const names = inv.invite_state.events.filter((e: any) => e.type === 'm.room.name');
    assert.equal(names[0]?.content.name, 'wake up');
  });

  it('is gap-free: incremental syncs during 50 concurrent sends deliver every event exactly once, in order', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    const filter = { room: { rooms: [roomId], timeline: { limit: 100 } } };
    const s0 = await sync(alice, { filter });
    const got: any[] = [];
    let limitedSeen = false;
    let sending = true;
    const acked: string[][] = [[], [], [], [], []];
    const senders = acked.map(async (list, chain) => {
      for (let i = 0; i < 10; i++) {
        const r = await ok(bob.put(room(roomId, `send/m.room.message/gap-${chain}-${i}`), { msgtype: 'm.text', body: `${chain}:${i}` }), 'send');
        list.push(r.event_id);
      }
    });
    const reader = (async () => {
      let since = s0.next_batch as string;
      const deadline = Date.now() + 15000;
      while (Date.now() < deadline) {
        const s = await sync(alice, { since, filter, timeout: sending ? 2000 : 0 });
        const r = s.rooms.join[roomId];
        if (r) {
          if (r.timeline.limited) limitedSeen = true;
          got.push(...r.timeline.events.filter((e: any) => e.type === 'm.room.message'));
        }
        since = s.next_batch;
        if (!sending && !r) break;
      }
    })();
    await Promise.all(senders);
    sending = false;
    await reader;
    assert.equal(limitedSeen, false, 'no limited timeline at limit 100');
    const gotIds = ids(got);
    assert.equal(new Set(gotIds).size, gotIds.length, 'no event delivered twice');
    assert.equal(gotIds.length, 50, `all 50 delivered, got ${gotIds.length}`);
    const fwd = await ok(alice.get(room(roomId, `messages?dir=f&limit=100&from=${enc(s0.next_batch)}`)), 'messages');
    assert.deepEqual(gotIds, ids(fwd.chunk), 'sync order equals room order');
    for (const [chain, list] of acked.entries()) {
      const positions = list.map((id) => gotIds.indexOf(id));
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b), `chain ${chain} in send order`);
      assert.ok(positions.every((p) => p >= 0));
    }
  });
});
