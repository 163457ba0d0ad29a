// Room membership over real HTTP against the Client-Server API v1.12 ("Room membership",
// /join, /leave, /forget, /kick, /ban, /unban, /joined_rooms, /joined_members, /members).

import { assert } from '../helpers/assert.js';
import { ok, roomPath as room, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('room membership over HTTP', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;
  let bob: User;
  let carol: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    [alice, bob, carol] = await Promise.all([api.register('alice'), api.register('bob'), api.register('carol')]);
  });
  after(async () => srv.stop());

  async function create(body: Record<string, unknown>, who: User = alice): Promise<string> {
    const r = await who.post(`${V3}/createRoom`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.room_id as string;
  }
  async function forbidden(p: Promise<{ status: number; body: any }>, what: string): Promise<void> {
    const r = await p;
    assert.equal(r.status, 403, `${what}: expected 403, got ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.errcode, 'M_FORBIDDEN', what);
  }
  async function membershipOf(roomId: string, userId: string, who: User = alice): Promise<string | undefined> {
    const r = await who.get(room(roomId, `state/m.room.member/${enc(userId)}`));
    return r.status === 200 ? r.body.membership : undefined;
  }
  async function joinedRooms(who: User): Promise<string[]> {
    return (await ok(who.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms;
  }

  it('invite → join → leave, reflected in /sync, /joined_rooms and member state', async () => {
    const roomId = await create({ preset: 'private_chat' });
    const s0 = await ok(bob.get(`${V3}/sync?timeout=0`), 'sync');
    assert.equal(s0.rooms.invite[roomId], undefined);

    await ok(alice.post(room(roomId, 'invite'), { user_id: bob.userId }), 'invite');
    assert.equal(await membershipOf(roomId, bob.userId), 'invite');
    const s1 = await ok(bob.get(`${V3}/sync?timeout=0&since=${enc(s0.next_batch)}`), 'sync');
    assert.ok(s1.rooms.invite[roomId], 'invite shows up in rooms.invite');
    assert.ok(!(await joinedRooms(bob)).includes(roomId), 'an invite is not a joined room');

    const j = await ok(bob.post(room(roomId, 'join'), {}), 'join');
    assert.equal(j.room_id, roomId);
    assert.equal(await membershipOf(roomId, bob.userId), 'join');
    assert.ok((await joinedRooms(bob)).includes(roomId));
    const s2 = await ok(bob.get(`${V3}/sync?timeout=0&since=${enc(s1.next_batch)}`), 'sync');
    assert.ok(s2.rooms.join[roomId], 'room moves to rooms.join');
    assert.equal(s2.rooms.invite[roomId], undefined);

    await ok(bob.post(room(roomId, 'leave'), {}), 'leave');
    assert.equal(await membershipOf(roomId, bob.userId), 'leave');
    assert.ok(!(await joinedRooms(bob)).includes(roomId));
    const s3 = await ok(bob.get(`${V3}/sync?timeout=0&since=${enc(s2.next_batch)}`), 'sync');
    assert.ok(s3.rooms.leave[roomId], 'room moves to rooms.leave');
    assert.equal(s3.rooms.join[roomId], undefined);
  });

  it('rejoining a private room after leaving needs a new invite', async () => {
    const roomId = await create({ preset: 'private_chat', invite: [bob.userId] });
    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    await ok(bob.post(room(roomId, 'leave'), {}), 'leave');
    await forbidden(bob.post(room(roomId, 'join'), {}), 'rejoin without invite');
    assert.equal(await membershipOf(roomId, bob.userId), 'leave');
    await ok(alice.post(room(roomId, 'invite'), { user_id: bob.userId }), 're-invite');
    await ok(bob.post(room(roomId, 'join'), {}), 'rejoin with invite');
    assert.equal(await membershipOf(roomId, bob.userId), 'join');
  });

  it('rejecting an invite (leave while invited) works and leaves membership leave', async () => {
    const roomId = await create({ preset: 'private_chat', invite: [bob.userId] });
    await ok(bob.post(room(roomId, 'leave'), {}), 'reject');
    assert.equal(await membershipOf(roomId, bob.userId), 'leave');
    await forbidden(bob.post(room(roomId, 'join'), {}), 'join after rejecting');
  });

  it('joins by alias through POST /join/{roomIdOrAlias}', async () => {
    const roomId = await create({ preset: 'public_chat', room_alias_name: 'by-alias' });
    const j = await ok(bob.post(`${V3}/join/${enc('#by-alias:localhost')}`, {}), 'join by alias');
    assert.equal(j.room_id, roomId);
    assert.equal(await membershipOf(roomId, bob.userId), 'join');
    const missing = await bob.post(`${V3}/join/${enc('#no-such-alias:localhost')}`, {});
    assert.equal(missing.status, 404, JSON.stringify(missing.body));
    assert.equal(missing.body.errcode, 'M_NOT_FOUND');
  });

  it('kicking needs power: a PL-0 member gets 403, the creator succeeds', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(bob.post(room(roomId, 'join'), {}), 'bob joins');
    await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    await forbidden(bob.post(room(roomId, 'kick'), { user_id: carol.userId, reason: 'no' }), 'PL-0 kick');
    assert.equal(await membershipOf(roomId, carol.userId), 'join');
    await ok(alice.post(room(roomId, 'kick'), { user_id: carol.userId, reason: 'bye' }), 'creator kick');
    const ev = await ok(alice.get(room(roomId, `state/m.room.member/${enc(carol.userId)}?format=event`)), 'member event');
    const content = ev.content ?? ev; // format=event is optional in v1.12; accept content either way
    assert.equal(content.membership, 'leave');
    assert.equal(content.reason, 'bye');
    if (ev.sender) assert.equal(ev.sender, alice.userId);
    assert.ok(!(await joinedRooms(carol)).includes(roomId));
    // A kicked user may rejoin a public room.
    await ok(carol.post(room(roomId, 'join'), {}), 'rejoin after kick');
  });

  it('a ban prevents rejoining (403); unban allows a re-invite and join', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    await ok(bob.post(room(roomId, 'join'), {}), 'bob joins');
    await forbidden(bob.post(room(roomId, 'ban'), { user_id: carol.userId }), 'PL-0 ban');
    const c0 = await ok(carol.get(`${V3}/sync?timeout=0`), 'sync');
    await ok(alice.post(room(roomId, 'ban'), { user_id: carol.userId, reason: 'spam' }), 'ban');
    assert.equal(await membershipOf(roomId, carol.userId), 'ban');
    const c1 = await ok(carol.get(`${V3}/sync?timeout=0&since=${enc(c0.next_batch)}`), 'sync');
    assert.equal(c1.rooms.join[roomId], undefined);
    const tl = c1.rooms.leave[roomId]?.timeline.events ?? [];
    const banEv = tl[tl.length - 1];
    assert.equal(banEv?.content.membership, 'ban', 'the ban is the last event of the room in rooms.leave');
    assert.equal(banEv.state_key, carol.userId);
    await forbidden(carol.post(room(roomId, 'join'), {}), 'join while banned');
    await forbidden(alice.post(room(roomId, 'invite'), { user_id: carol.userId }), 'invite while banned');
    await forbidden(bob.post(room(roomId, 'unban'), { user_id: carol.userId }), 'PL-0 unban');
    assert.equal(await membershipOf(roomId, carol.userId), 'ban');
    await ok(alice.post(room(roomId, 'unban'), { user_id: carol.userId }), 'unban');
    assert.equal(await membershipOf(roomId, carol.userId), 'leave');
    // Switch the room to invite-only: joining must now go through an invite.
    await ok(alice.put(room(roomId, 'state/m.room.join_rules'), { join_rule: 'invite' }), 'join_rules');
    await forbidden(carol.post(room(roomId, 'join'), {}), 'join invite-only room without invite');
    await ok(alice.post(room(roomId, 'invite'), { user_id: carol.userId }), 're-invite after unban');
    await ok(carol.post(room(roomId, 'join'), {}), 'join after re-invite');
    assert.equal(await membershipOf(roomId, carol.userId), 'join');
  });

  it('/forget is refused while joined (400) and a forgotten room is not in a later initial sync with include_leave', async () => {
    const forgotten = await create({ preset: 'public_chat', name: 'to forget' });
    const kept = await create({ preset: 'public_chat', name: 'kept' });
    for (const r of [forgotten, kept]) await ok(bob.post(room(r, 'join'), {}), 'join');
    const early = await bob.post(room(forgotten, 'forget'), {});
    assert.equal(early.status, 400, `forget while joined: ${early.status} ${JSON.stringify(early.body)}`);
    assert.equal(typeof early.body.errcode, 'string');
    for (const r of [forgotten, kept]) await ok(bob.post(room(r, 'leave'), {}), 'leave');
    await ok(bob.post(room(forgotten, 'forget'), {}), 'forget after leaving');
    const filter = enc(JSON.stringify({ room: { include_leave: true } }));
    const s = await ok(bob.get(`${V3}/sync?timeout=0&filter=${filter}`), 'initial sync');
    assert.ok(s.rooms.leave[kept], 'a left (not forgotten) room is in rooms.leave with include_leave');
    assert.equal(s.rooms.leave[forgotten], undefined, 'a forgotten room is not');
    assert.equal(s.rooms.join[forgotten], undefined);
    const plain = await ok(bob.get(`${V3}/sync?timeout=0`), 'initial sync without include_leave');
    assert.equal(plain.rooms.leave[kept], undefined, 'left rooms are omitted from initial sync without include_leave');
  });

  it('/joined_rooms and /joined_members (with display names)', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    await ok(alice.post(room(roomId, 'invite'), { user_id: carol.userId }), 'invite carol');
    await ok(bob.put(`${V3}/profile/${enc(bob.userId)}/displayname`, { displayname: 'Bobby Tables' }), 'displayname');
    assert.ok((await joinedRooms(alice)).includes(roomId));
    assert.ok((await joinedRooms(bob)).includes(roomId));
    assert.ok(!(await joinedRooms(carol)).includes(roomId), 'invited is not joined');
    const jm = await ok(alice.get(room(roomId, 'joined_members')), 'joined_members');
    assert.deepEqual(Object.keys(jm.joined).sort(), [alice.userId, bob.userId].sort());
    assert.equal(jm.joined[bob.userId].display_name, 'Bobby Tables');
    assert.equal(typeof jm.joined[alice.userId].display_name, 'string');
    assert.deepEqual(Object.keys(jm.joined[bob.userId]).sort(), ['display_name'], 'no avatar: the key is absent (spec: optional string, not nullable)');
    await ok(bob.put(`${V3}/profile/${enc(bob.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/bob' }), 'avatar');
    const again = await ok(alice.get(room(roomId, 'joined_members')), 'joined_members again');
    assert.equal(again.joined[bob.userId].avatar_url, 'mxc://localhost/bob');
    await forbidden(carol.get(room(roomId, 'joined_members')), 'joined_members as invitee');
  });

  it('/members filters by membership=join and not_membership=leave', async () => {
    const roomId = await create({ preset: 'public_chat', invite: ['@ghost:localhost'] });
    await ok(bob.post(room(roomId, 'join'), {}), 'bob joins');
    await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    await ok(carol.post(room(roomId, 'leave'), {}), 'carol leaves');
    const all = await ok(alice.get(room(roomId, 'members')), 'members');
    const m = (chunk: any[]) => Object.fromEntries(chunk.map((e: any) => [e.state_key, e.content.membership]));
    assert.deepEqual(m(all.chunk), { [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'leave', '@ghost:localhost': 'invite' });
    for (const e of all.chunk) assert.equal(e.type, 'm.room.member');
    const joined = await ok(alice.get(room(roomId, 'members?membership=join')), 'membership=join');
    assert.deepEqual(m(joined.chunk), { [alice.userId]: 'join', [bob.userId]: 'join' });
    const notLeft = await ok(alice.get(room(roomId, 'members?not_membership=leave')), 'not_membership=leave');
    assert.deepEqual(m(notLeft.chunk), { [alice.userId]: 'join', [bob.userId]: 'join', '@ghost:localhost': 'invite' });
  });

  it('/members?at=<old next_batch> returns the membership as of that token', async () => {
    const roomId = await create({ preset: 'public_chat' });
    await ok(bob.post(room(roomId, 'join'), {}), 'bob joins');
    const s = await ok(alice.get(`${V3}/sync?timeout=0`), 'sync');
    const at = s.next_batch as string;
    await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    await ok(bob.post(room(roomId, 'leave'), {}), 'bob leaves');
    const now = await ok(alice.get(room(roomId, 'members')), 'members now');
    const m = (chunk: any[]) => Object.fromEntries(chunk.map((e: any) => [e.state_key, e.content.membership]));
    assert.deepEqual(m(now.chunk), { [alice.userId]: 'join', [bob.userId]: 'leave', [carol.userId]: 'join' });
    const then = await ok(alice.get(room(roomId, `members?at=${enc(at)}`)), 'members at');
    assert.deepEqual(m(then.chunk), { [alice.userId]: 'join', [bob.userId]: 'join' }, 'carol had not joined and bob had not left yet');
    const thenJoined = await ok(alice.get(room(roomId, `members?at=${enc(at)}&membership=join`)), 'members at + membership');
    assert.deepEqual(Object.keys(m(thenJoined.chunk)).sort(), [alice.userId, bob.userId].sort());
    // The prev_batch of the room's timeline is a valid `at` too.
    const prev = s.rooms.join[roomId].timeline.prev_batch as string;
    const atPrev = await alice.get(room(roomId, `members?at=${enc(prev)}`));
    assert.equal(atPrev.status, 200, JSON.stringify(atPrev.body));
    assert.ok(!m(atPrev.body.chunk)[carol.userId]);
  });

  it('a non-member cannot list members of a private room', async () => {
    const roomId = await create({ preset: 'private_chat' });
    await forbidden(carol.get(room(roomId, 'members')), 'members as stranger');
  });

  // The joined check of a send runs on the room's writer against its in-memory state (no store
  // read per send): same statuses and messages as before, for every way of not being joined.
  it('sends from non-members are refused with 403: never joined, left, unknown room, and identical state after leaving', async () => {
    const roomId = await create({ preset: 'public_chat' });
    const never = await carol.put(room(roomId, 'send/m.room.message/nm1'), { msgtype: 'm.text', body: 'hi' });
    assert.equal(never.status, 403, JSON.stringify(never.body));
    assert.deepEqual(never.body, { errcode: 'M_FORBIDDEN', error: 'You are not joined to this room' });

    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    await ok(bob.put(room(roomId, 'send/m.room.message/nm2'), { msgtype: 'm.text', body: 'in' }), 'send while joined');
    await ok(alice.put(room(roomId, 'state/m.room.power_levels'), {
      ...(await ok(alice.get(room(roomId, 'state/m.room.power_levels')), 'power levels')),
      events_default: 0,
      state_default: 0,
    }), 'let members set state');
    const topic = await ok(bob.put(room(roomId, 'state/m.room.topic'), { topic: 'bob was here' }), 'topic while joined');
    // The same state again while joined is answered with the event in place.
    assert.equal((await ok(bob.put(room(roomId, 'state/m.room.topic'), { topic: 'bob was here' }), 'same topic')).event_id, topic.event_id);

    await ok(bob.post(room(roomId, 'leave'), {}), 'leave');
    const left = await bob.put(room(roomId, 'send/m.room.message/nm3'), { msgtype: 'm.text', body: 'out' });
    assert.deepEqual([left.status, left.body], [403, { errcode: 'M_FORBIDDEN', error: 'You are not joined to this room' }]);
    // Not answered with the old event as if it had been set again: the sender left.
    const sameTopic = await bob.put(room(roomId, 'state/m.room.topic'), { topic: 'bob was here' });
    assert.deepEqual([sameTopic.status, sameTopic.body.errcode], [403, 'M_FORBIDDEN']);
    // A retried transaction of a send made while joined is still refused once the sender left.
    const retried = await bob.put(room(roomId, 'send/m.room.message/nm2'), { msgtype: 'm.text', body: 'in' });
    assert.deepEqual([retried.status, retried.body.errcode], [403, 'M_FORBIDDEN']);

    const unknown = await bob.put(room('!nowhere:localhost', 'send/m.room.message/nm4'), { msgtype: 'm.text', body: 'x' });
    assert.deepEqual([unknown.status, unknown.body], [403, { errcode: 'M_FORBIDDEN', error: 'Unknown room or not a member' }]);
  });
});
