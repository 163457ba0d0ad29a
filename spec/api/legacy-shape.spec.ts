// The deprecated v1 API's response shape over real HTTP, as its clients (and SyTest's initialSync
// tests) read it and as Synapse serves it: `user_id` beside `sender` and `age` at the top level of
// every event; receipts in GET /initialSync and GET /rooms/{roomId}/initialSync (none for a room
// one has left); one's own presence in GET /initialSync even with no rooms; GET /events refusing
// a `limit` that is not a count.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, roomPath, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('deprecated endpoints: the v1 shape', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let txn = 0;

  before(async () => {
    srv = await startTestServer({});
    [alice, bob] = await Promise.all([makeUser(srv, 'alice'), makeUser(srv, 'bob')]);
  });
  after(async () => srv.stop());

  const say = (who: User, roomId: string, body: string) => sendEvent(who, roomId, 'm.room.message', `v${++txn}`, { msgtype: 'm.text', body }, 'send');

  it('room initialSync: state and messages carry user_id and age; own presence and the room receipts are there', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'Here' }), 'presence');
    const id = await say(alice, roomId, 'hello');
    await ok(bob.post(roomPath(roomId, `receipt/m.read/${enc(id)}`), {}), 'receipt');
    await ok(bob.post(roomPath(roomId, `receipt/m.read.private/${enc(id)}`), {}), 'private receipt');

    const res = await ok(alice.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 'room initialSync');
    const members = res.state.filter((e: any) => e.type === 'm.room.member');
    assert.deepEqual(members.map((e: any) => e.user_id).sort(), [alice.userId, bob.userId].sort());
    assert.ok(members.every((e: any) => e.user_id === e.sender && typeof e.age === 'number'), JSON.stringify(members));
    const msg = res.messages.chunk.find((e: any) => e.event_id === id);
    assert.equal(msg.user_id, alice.userId);
    assert.equal(msg.room_id, roomId);
    const mine = res.presence.find((p: any) => p.content.user_id === alice.userId);
    assert.equal(mine?.content.presence, 'online', JSON.stringify(res.presence));
    assert.equal(mine.content.status_msg, 'Here');
    assert.deepEqual(res.receipts, [{ type: 'm.receipt', room_id: roomId, content: { [id]: { 'm.read': { [bob.userId]: { ts: res.receipts[0].content[id]['m.read'][bob.userId].ts } } } } }], 'public receipts only');
    assert.equal(typeof res.receipts[0].content[id]['m.read'][bob.userId].ts, 'number');
  });

  it('room initialSync of a room one has left: no receipts, no presence, membership leave', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    const id = await say(alice, roomId, 'before');
    await ok(alice.post(roomPath(roomId, `receipt/m.read/${enc(id)}`), {}), 'receipt');
    await ok(bob.post(roomPath(roomId, 'leave'), {}), 'leave');
    const res = await ok(bob.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 'room initialSync');
    assert.equal(res.membership, 'leave');
    assert.deepEqual(res.receipts, []);
    assert.deepEqual(res.presence, []);
  });

  it('global initialSync: receipts of joined rooms (own private ones too), events with user_id', async () => {
    const carol = await makeUser(srv, 'carol');
    const roomId = await createRoom(carol, { preset: 'public_chat' });
    await ok(alice.post(roomPath(roomId, 'join'), {}), 'join');
    const first = await say(carol, roomId, 'one');
    await ok(carol.post(roomPath(roomId, `receipt/m.read/${enc(first)}`), {}), 'receipt');
    await ok(alice.post(roomPath(roomId, `receipt/m.read.private/${enc(first)}`), {}), 'alice private receipt');

    const res = await ok(carol.get(`${V3}/initialSync?limit=3`), 'initialSync');
    const r = res.receipts.find((x: any) => x.room_id === roomId);
    assert.equal(r?.type, 'm.receipt', JSON.stringify(res.receipts));
    assert.equal(typeof r.content[first]['m.read'][carol.userId].ts, 'number');
    assert.equal(r.content[first]['m.read.private'], undefined, "alice's private receipt is hers");
    const aliceView = await ok(alice.get(`${V3}/initialSync?limit=3`), 'alice initialSync');
    const ar = aliceView.receipts.find((x: any) => x.room_id === roomId);
    assert.ok(ar.content[first]['m.read.private'][alice.userId], 'own private receipt');

    const room = res.rooms.find((x: any) => x.room_id === roomId);
    assert.ok(room.state.some((e: any) => e.type === 'm.room.member' && e.user_id === alice.userId), JSON.stringify(room.state));
    assert.ok(room.messages.chunk.every((e: any) => e.user_id === e.sender));

    // Advancing the receipt moves it.
    const second = await say(carol, roomId, 'two');
    await ok(carol.post(roomPath(roomId, `receipt/m.read/${enc(second)}`), {}), 'receipt 2');
    const again = await ok(carol.get(`${V3}/initialSync?limit=3`), 'initialSync again');
    const r2 = again.receipts.find((x: any) => x.room_id === roomId);
    assert.ok(r2.content[second]['m.read'][carol.userId]);
    assert.equal(r2.content[first]?.['m.read']?.[carol.userId], undefined);
  });

  it('global initialSync: a new user with no rooms sees their own presence', async () => {
    const dan = await makeUser(srv, 'dan');
    const res = await ok(dan.get(`${V3}/initialSync`), 'initialSync');
    assert.deepEqual(res.rooms, []);
    const mine = res.presence.find((p: any) => p.content.user_id === dan.userId);
    assert.ok(mine, JSON.stringify(res.presence));
    assert.equal(mine.type, 'm.presence');
    assert.equal(mine.content.presence, 'online');
    assert.equal(typeof mine.content.last_active_ago, 'number');
  });

  it('GET /events: the stream events carry user_id; a limit that is not a count is a 400', async () => {
    const start = (await ok(alice.get(`${V3}/events?timeout=0`), 'events')).end;
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const id = await say(alice, roomId, 'streamed');
    const res = await ok(alice.get(`${V3}/events?timeout=0&limit=5&from=${enc(start)}`), 'events');
    const ev = res.chunk.find((e: any) => e.event_id === id);
    assert.equal(ev.user_id, alice.userId);
    assert.equal(typeof ev.age, 'number');
    expectError(await alice.get(`${V3}/events?timeout=0&limit=hello&from=${enc(start)}`), 400, 'M_INVALID_PARAM');
    expectError(await alice.get(`${V3}/events?timeout=0&limit=-2&from=${enc(start)}`), 400, 'M_INVALID_PARAM');
  });
});
