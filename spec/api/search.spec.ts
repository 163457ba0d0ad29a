// POST /search over real HTTP (Client-Server API "Server Side Search"): room_events with keys,
// filters, both orders, paging, event context, state, groups, history visibility, redactions
// and encrypted rooms.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, roomPath, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('POST /search', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let shared: string;
  let secret: string;
  let n = 0;

  const say = (who: User, roomId: string, body: string) => sendEvent(who, roomId, 'm.room.message', `t${++n}`, { msgtype: 'm.text', body }, 'send');
  const search = (who: User, roomEvents: Record<string, unknown>, nextBatch?: string) =>
    who.post(`${V3}/search${nextBatch ? `?next_batch=${encodeURIComponent(nextBatch)}` : ''}`, { search_categories: { room_events: roomEvents } });
  const bodies = (res: any) => res.search_categories.room_events.results.map((r: any) => r.result.content.body ?? r.result.content.name);

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol] = await Promise.all([makeUser(srv, 'alice', 'Alice'), makeUser(srv, 'bob', 'Bob'), makeUser(srv, 'carol')]);
    shared = await createRoom(alice, { preset: 'public_chat', name: 'Kitchen' });
    await ok(bob.post(roomPath(shared, 'join'), {}), 'bob joins');
    secret = await createRoom(alice, { preset: 'private_chat', name: 'Pantry secrets' });
  });
  after(async () => srv?.stop());

  it('finds messages and names in the rooms the user is in, newest first, with highlights and count', async () => {
    await say(alice, shared, 'Baking bread today');
    await say(bob, shared, 'bread needs flour');
    await say(alice, secret, 'secret bread recipe');
    const res = await ok(search(bob, { search_term: 'Bread', order_by: 'recent' }), 'search');
    const re = res.search_categories.room_events;
    assert.deepEqual(bodies(res), ['bread needs flour', 'Baking bread today'], 'bob does not see the room he is not in');
    assert.equal(re.count, 2);
    assert.deepEqual(re.highlights, ['bread']);
    assert.equal(re.results[0].result.room_id, shared);
    assert.equal(typeof re.results[0].rank, 'number');
    assert.equal(re.next_batch, undefined, 'one page holds everything');

    const all = await ok(search(alice, { search_term: 'bread', order_by: 'recent' }), 'alice');
    assert.deepEqual(bodies(all), ['secret bread recipe', 'bread needs flour', 'Baking bread today']);
    const names = await ok(search(alice, { search_term: 'pantry', keys: ['content.name'] }), 'names');
    assert.deepEqual(bodies(names), ['Pantry secrets']);
    const onlyBody = await ok(search(alice, { search_term: 'pantry', keys: ['content.body'] }), 'body only');
    assert.deepEqual(bodies(onlyBody), []);
  });

  it('applies filter rooms, not_rooms, senders and limit, and pages with next_batch in both orders', async () => {
    const room = await createRoom(alice, { preset: 'private_chat' });
    for (let i = 0; i < 7; i++) await say(alice, room, `pasta batch ${i}`);
    await say(alice, shared, 'pasta in the kitchen');
    const inRoom = await ok(search(alice, { search_term: 'pasta', order_by: 'recent', filter: { rooms: [room], limit: 3 } }), 'rooms');
    assert.deepEqual(bodies(inRoom), ['pasta batch 6', 'pasta batch 5', 'pasta batch 4']);
    const next = inRoom.search_categories.room_events.next_batch;
    assert.equal(typeof next, 'string');
    const page2 = await ok(search(alice, { search_term: 'pasta', order_by: 'recent', filter: { rooms: [room], limit: 3 } }, next), 'page 2');
    assert.deepEqual(bodies(page2), ['pasta batch 3', 'pasta batch 2', 'pasta batch 1']);
    const page3 = await ok(
      search(alice, { search_term: 'pasta', order_by: 'recent', filter: { rooms: [room], limit: 3 } }, page2.search_categories.room_events.next_batch),
      'page 3',
    );
    assert.deepEqual(bodies(page3), ['pasta batch 0']);
    assert.equal(page3.search_categories.room_events.next_batch, undefined);

    const notRoom = await ok(search(alice, { search_term: 'pasta', filter: { not_rooms: [room] } }), 'not_rooms');
    assert.deepEqual(bodies(notRoom), ['pasta in the kitchen']);
    const bySender = await ok(search(alice, { search_term: 'pasta', filter: { senders: [bob.userId] } }), 'senders');
    assert.deepEqual(bodies(bySender), []);

    const seen = new Set<string>();
    let token: string | undefined;
    for (let i = 0; i < 5; i++) {
      const page = await ok(search(alice, { search_term: 'pasta', order_by: 'rank', filter: { limit: 3 } }, token), 'rank page');
      for (const r of page.search_categories.room_events.results) seen.add(r.result.event_id);
      token = page.search_categories.room_events.next_batch;
      if (!token) break;
    }
    assert.equal(seen.size, 8, 'rank paging visits every match once');
    expectError(await search(alice, { search_term: 'pasta' }, 'garbage'), 400, 'M_INVALID_PARAM');
  });

  it('returns event context with profiles, room state and groups', async () => {
    const room = await createRoom(alice, { preset: 'private_chat', invite: [bob.userId] });
    await ok(bob.post(roomPath(room, 'join'), {}), 'join');
    await say(alice, room, 'before one');
    await say(bob, room, 'before two');
    const hit = await say(alice, room, 'the soup is ready');
    await say(bob, room, 'after one');
    const res = await ok(
      search(bob, {
        search_term: 'soup',
        filter: { rooms: [room] },
        event_context: { before_limit: 2, after_limit: 1, include_profile: true },
        include_state: true,
        groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] },
      }),
      'context',
    );
    const re = res.search_categories.room_events;
    assert.equal(re.results.length, 1);
    const r = re.results[0];
    assert.equal(r.result.event_id, hit);
    assert.deepEqual(r.context.events_before.map((e: any) => e.content.body), ['before two', 'before one']);
    assert.deepEqual(r.context.events_after.map((e: any) => e.content.body), ['after one']);
    assert.equal(typeof r.context.start, 'string');
    assert.equal(typeof r.context.end, 'string');
    assert.equal(r.context.profile_info[alice.userId].displayname, 'Alice');
    assert.equal(r.context.profile_info[bob.userId].displayname, 'Bob');
    const state = re.state[room];
    assert.ok(state.some((e: any) => e.type === 'm.room.create'), 'include_state gives the room state');
    assert.deepEqual(re.groups.room_id[room].results, [hit]);
    assert.equal(re.groups.room_id[room].order, 1);
    assert.deepEqual(re.groups.sender[alice.userId].results, [hit]);
  });

  it('honours history visibility, redactions and leaves encrypted text out', async () => {
    const room = await createRoom(alice, { preset: 'private_chat' });
    await ok(alice.put(roomPath(room, 'state/m.room.history_visibility/'), { history_visibility: 'joined' }), 'joined-only');
    await say(alice, room, 'cheese before carol');
    await ok(alice.post(roomPath(room, 'invite'), { user_id: carol.userId }), 'invite');
    await ok(carol.post(roomPath(room, 'join'), {}), 'join');
    await say(alice, room, 'cheese after carol');
    const forCarol = await ok(search(carol, { search_term: 'cheese' }), 'carol');
    assert.deepEqual(bodies(forCarol), ['cheese after carol'], 'history from before the join stays hidden');

    const doomed = await say(alice, room, 'cheese that gets redacted');
    await ok(alice.put(roomPath(room, `redact/${encodeURIComponent(doomed)}/r1`), {}), 'redact');
    const after = await ok(search(alice, { search_term: 'redacted' }), 'after redaction');
    assert.deepEqual(bodies(after), []);

    const enc = await createRoom(alice, {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    await sendEvent(alice, enc, 'm.room.encrypted', 'e1', { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'cheese', sender_key: 'k', session_id: 's', device_id: 'D' }, 'encrypted');
    const inEnc = await ok(search(alice, { search_term: 'cheese', filter: { rooms: [enc] } }), 'encrypted');
    assert.deepEqual(inEnc.search_categories.room_events.results, []);
    assert.equal(inEnc.search_categories.room_events.count, 0);
  });

  it('rejects bad requests with Matrix errors', async () => {
    expectError(await alice.post(`${V3}/search`, {}), 400, 'M_MISSING_PARAM');
    expectError(await search(alice, { search_term: 'x', order_by: 'sideways' }), 400, 'M_BAD_JSON');
    expectError(await search(alice, { search_term: 'x', keys: ['content.secret'] }), 400, 'M_BAD_JSON');
    const none = await ok(alice.post(`${V3}/search`, { search_categories: {} }), 'no category');
    assert.deepEqual(none, { search_categories: {} });
    const blank = await ok(search(alice, { search_term: '!!!' }), 'only punctuation');
    assert.deepEqual(blank.search_categories.room_events.results, []);
    const anon = await new (alice.constructor as any)(srv.url).post(`${V3}/search`, { search_categories: {} });
    expectError(anon, 401, 'M_MISSING_TOKEN');
  });
});
