// Sync state rules over real HTTP (spec: GET /sync; the SyTest scenarios of tests/31sync/03joined.pl
// and 06state.pl): a newly joined room is `limited` when it has history the timeline leaves out;
// newly shared room-mates' presence arrives; a member event the filter hides does not bring a
// room section; a room joined and left within one batch comes with its state; a member who
// rejoins a private-history room sees the joins that happened while they were away.

import { assert } from '../helpers/assert.js';
import { createRoom, ok, roomPath as room, syncOk, serverPerSuite } from '../helpers/fixtures.js';
import { enc } from '../helpers/server.js';

describe('sync state rules', function () {
  this.timeout(30_000);
  const { users, send } = serverPerSuite('ss');

  it('a newly joined room is limited when the timeline leaves history out, even filtered history', async () => {
    const [a, b] = await users(2);
    const roomId = await createRoom(a, { preset: 'public_chat' });
    for (let i = 0; i < 4; i++) await send(a, roomId, `before ${i}`);
    const f = { room: { timeline: { types: ['m.room.message'], limit: 10 }, state: { types: [] } } };
    const s0 = await syncOk(b, { filter: f });
    for (let i = 0; i < 4; i++) await send(a, roomId, `after ${i}`);
    await ok(b.post(room(roomId, 'join'), {}), 'join');
    const s1 = await syncOk(b, { since: s0.next_batch, filter: f });
    const tl = s1.rooms.join[roomId].timeline;
    assert.equal(tl.events.length, 8, 'all 8 messages fit the limit');
    assert.equal(tl.limited, true, 'the create event and the rest are history the client does not have');
  });

  it('newly shared room-mates bring their presence, both ways, once', async () => {
    const [a, b] = await users(2);
    const roomId = await createRoom(a, { preset: 'public_chat' });
    const a0 = await syncOk(a);
    const b0 = await syncOk(b);
    await send(a, roomId, 'let presence settle');
    const a1 = await syncOk(a, { since: a0.next_batch });
    await ok(b.post(room(roomId, 'join'), {}), 'join');
    const senders = (s: any, self: string) => (s.presence?.events ?? []).filter((e: any) => e.sender !== self).map((e: any) => e.sender);
    const b1 = await syncOk(b, { since: b0.next_batch });
    assert.deepEqual(senders(b1, b.userId), [a.userId], 'the joiner gets the presence of the room it joined');
    const a2 = await syncOk(a, { since: a1.next_batch });
    assert.deepEqual(senders(a2, a.userId), [b.userId], 'the room gets the presence of the new member');
    const b2 = await syncOk(b, { since: b1.next_batch });
    assert.deepEqual(senders(b2, b.userId), [], 'and only once');
  });

  it('a new member who never came online is reported offline to the room', async () => {
    const [a, b] = await users(2);
    const roomId = await createRoom(a, { preset: 'public_chat' });
    const a0 = await syncOk(a);
    // b joins without ever syncing: no presence of its own yet.
    await ok(b.post(room(roomId, 'join'), {}), 'join');
    const a1 = await syncOk(a, { since: a0.next_batch });
    const ev = (a1.presence?.events ?? []).filter((e: any) => e.sender === b.userId);
    assert.equal(ev.length, 1, JSON.stringify(a1.presence));
    assert.equal(ev[0].content.presence, 'offline');
  });

  it('a displayname change the filter hides brings no room section (no full state resent)', async () => {
    const [a] = await users(1);
    const f = { room: { timeline: { types: [] }, state: { types: ['a.madeup.test.state'] }, ephemeral: { types: [] } }, presence: { types: [] } };
    const roomId = await createRoom(a, { preset: 'private_chat' });
    await ok(a.put(room(roomId, 'state/a.madeup.test.state'), { my_key: 1 }), 'state');
    const s0 = await syncOk(a, { filter: f });
    assert.equal(s0.rooms.join[roomId].state.events.length, 1);
    await ok(a.put(room(roomId, `state/m.room.member/${enc(a.userId)}`), { membership: 'join', displayname: 'boris' }), 'rename');
    await send(a, roomId, 'a message to wait on');
    const s1 = await syncOk(a, { since: s0.next_batch, filter: f });
    assert.deepEqual(Object.keys(s1.rooms?.join ?? {}), [], 'nothing the filter lets through changed');
  });

  it('once m.ignored_user_list names a sender, their messages bring no room section, and others\' still do', async () => {
    const [u1, u2, u3] = await users(3);
    const roomId = await createRoom(u1, { preset: 'public_chat' });
    for (const u of [u2, u3]) await ok(u.post(room(roomId, 'join'), {}), 'join');
    const f = { account_data: { types: ['m.ignored_user_list'] }, presence: { types: [] }, room: { timeline: { types: ['m.room.message'] }, state: { types: ['m.room.member'] } } };
    await ok(u1.put(`/_matrix/client/v3/user/${enc(u1.userId)}/account_data/m.ignored_user_list`, { ignored_users: { [u2.userId]: {} } }), 'ignore');
    const s0 = await syncOk(u1, { filter: f });
    await send(u2, roomId, 'ignored');
    const s1 = await syncOk(u1, { since: s0.next_batch, filter: f });
    assert.deepEqual(Object.keys(s1.rooms?.join ?? {}), [], 'an ignored message is no news');
    await send(u3, roomId, 'not ignored');
    const s2 = await syncOk(u1, { since: s1.next_batch, filter: f });
    assert.deepEqual(s2.rooms.join[roomId].timeline.events.map((e: any) => e.content.body), ['not ignored']);
  });

  it('a room joined and left within one batch comes with its state in rooms.leave', async () => {
    const [a, b] = await users(2);
    const f = { room: { timeline: { types: [] }, state: { types: ['a.madeup.test.state'] }, ephemeral: { types: [] }, include_leave: true }, presence: { types: [] } };
    const roomId = await createRoom(a, { preset: 'private_chat' });
    await ok(a.put(room(roomId, 'state/a.madeup.test.state'), { my_key: 1 }), 'state');
    await ok(a.post(room(roomId, 'invite'), { user_id: b.userId }), 'invite');
    const s0 = await syncOk(b, { filter: f });
    await ok(b.post(room(roomId, 'join'), {}), 'join');
    await ok(b.post(room(roomId, 'leave'), {}), 'leave');
    const s1 = await syncOk(b, { since: s0.next_batch, filter: f });
    const st = s1.rooms.leave[roomId].state.events;
    assert.deepEqual(st.map((e: any) => [e.type, e.content.my_key]), [['a.madeup.test.state', 1]]);
  });

  it('a rejected invite (never joined) still gets no room state', async () => {
    const [a, b] = await users(2);
    const f = { room: { state: { types: ['a.madeup.test.state'] }, include_leave: true } };
    const roomId = await createRoom(a, { preset: 'private_chat' });
    await ok(a.put(room(roomId, 'state/a.madeup.test.state'), { secret: 1 }), 'state');
    await ok(a.post(room(roomId, 'invite'), { user_id: b.userId }), 'invite');
    const s0 = await syncOk(b, { filter: f });
    await ok(b.post(room(roomId, 'leave'), {}), 'reject');
    const s1 = await syncOk(b, { since: s0.next_batch, filter: f });
    const st = s1.rooms?.leave?.[roomId]?.state?.events ?? [];
    assert.deepEqual(st, []);
  });

  it('rejoining a private-history room shows the joins made while away', async () => {
    const [creator, syncer, invitee] = await users(3);
    const roomId = await createRoom(creator, { preset: 'public_chat' });
    await ok(syncer.post(room(roomId, 'join'), {}), 'join');
    await ok(creator.put(room(roomId, 'state/m.room.history_visibility'), { history_visibility: 'joined' }), 'history');
    await ok(creator.post(room(roomId, 'invite'), { user_id: invitee.userId }), 'invite');
    const s0 = await syncOk(syncer);
    await ok(syncer.post(room(roomId, 'leave'), {}), 'leave');
    await ok(invitee.post(room(roomId, 'join'), {}), 'invitee joins');
    await send(creator, roomId, 'said while syncer was away');
    await ok(syncer.post(room(roomId, 'join'), {}), 'rejoin');
    const s1 = await syncOk(syncer, { since: s0.next_batch });
    const tl: any[] = s1.rooms.join[roomId].timeline.events;
    assert.ok(tl.some((e) => e.type === 'm.room.member' && e.state_key === invitee.userId && e.content.membership === 'join'), 'the join is current state');
    assert.ok(!tl.some((e) => e.content?.body === 'said while syncer was away'), 'messages from the absence stay hidden');
  });
});
