// Room tags, ignored users and content reports over real HTTP (Client-Server API v1.12 "Room
// Tagging", "Ignoring Users", "Reporting Content").

import { assert } from '../helpers/assert.js';
import { makeUser, ok, roomPath, roomWith, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('tags, ignored users and reports', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let mallory: User;
  let roomId: string;
  let txn = 0;

  const room = (rest: string, id = roomId) => roomPath(id, rest);
  const text = (who: User, body: string, id = roomId) => sendEvent(who, id, 'm.room.message', `ti${++txn}`, { msgtype: 'm.text', body }, `send ${body}`);
  const sync = (who: User, since?: string) => syncOk(who, { since, filter: { room: { timeline: { limit: 100 } } } });
  const tagsUrl = (who: User, id = roomId) => `${V3}/user/${enc(who.userId)}/rooms/${enc(id)}/tags`;
  const bodies = (events: any[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
  const timelineBodies = (s: any, id = roomId) => bodies(s.rooms.join[id]?.timeline.events ?? []);

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol, mallory] = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map((u) => makeUser(srv, u)));
    roomId = await roomWith(alice, [bob, carol]);
  });
  after(async () => srv?.stop());

  describe('room tags', () => {
    it('PUT/GET/DELETE tags with order; they appear as m.tag room account data in /sync', async () => {
      // Orders 0 and 1 here; fractional orders have their own test below.
      assert.deepEqual(await ok(alice.get(tagsUrl(alice)), 'GET tags'), { tags: {} });
      const since = (await sync(alice)).next_batch;
      assert.deepEqual(await ok(alice.put(`${tagsUrl(alice)}/u.work`, { order: 0 }), 'PUT u.work'), {});
      await ok(alice.put(`${tagsUrl(alice)}/m.favourite`, {}), 'PUT m.favourite');
      assert.deepEqual(await ok(alice.get(tagsUrl(alice)), 'GET tags'), { tags: { 'u.work': { order: 0 }, 'm.favourite': {} } });

      const s1 = await sync(alice, since);
      const tagEvents = (s1.rooms.join[roomId]?.account_data.events ?? []).filter((e: any) => e.type === 'm.tag');
      assert.equal(tagEvents.length, 1, JSON.stringify(s1.rooms.join[roomId]?.account_data));
      assert.deepEqual(tagEvents[0].content, { tags: { 'u.work': { order: 0 }, 'm.favourite': {} } });

      // Re-tagging changes the order; DELETE removes one tag.
      await ok(alice.put(`${tagsUrl(alice)}/u.work`, { order: 1 }), 'PUT u.work again');
      await ok(alice.req('DELETE', `${tagsUrl(alice)}/m.favourite`), 'DELETE m.favourite');
      assert.deepEqual(await ok(alice.get(tagsUrl(alice)), 'GET tags'), { tags: { 'u.work': { order: 1 } } });
      const s2 = await sync(alice, s1.next_batch);
      const t2 = (s2.rooms.join[roomId]?.account_data.events ?? []).find((e: any) => e.type === 'm.tag');
      assert.deepEqual(t2?.content, { tags: { 'u.work': { order: 1 } } }, JSON.stringify(s2.rooms.join[roomId]));
      // Initial sync too.
      const init = (await sync(alice)).rooms.join[roomId].account_data.events.find((e: any) => e.type === 'm.tag');
      assert.deepEqual(init?.content, { tags: { 'u.work': { order: 1 } } });
      const outOfRange = await alice.put(`${tagsUrl(alice)}/u.big`, { order: 2 });
      assert.equal(outOfRange.status, 400, 'order is between 0 and 1');

      // Tags are per user.
      assert.deepEqual(await ok(bob.get(tagsUrl(bob)), 'bob tags'), { tags: {} });
      const other = await bob.get(tagsUrl(alice));
      assert.equal(other.status, 403, `reading another user's tags: ${JSON.stringify(other.body)}`);
      const otherPut = await bob.put(`${tagsUrl(alice)}/u.evil`, {});
      assert.equal(otherPut.status, 403);
      assert.deepEqual(await ok(alice.get(tagsUrl(alice)), 'GET tags'), { tags: { 'u.work': { order: 1 } } });
    });

    it('a fractional order (spec: "a number between 0 and 1", e.g. 0.25) is accepted and kept', async () => {
      const roomB = (await ok(alice.post(`${V3}/createRoom`, { preset: 'private_chat' }), 'createRoom')).room_id;
      const since = (await sync(alice)).next_batch;
      await ok(alice.put(`${tagsUrl(alice, roomB)}/u.work`, { order: 0.25 }), 'PUT u.work order 0.25');
      assert.deepEqual(await ok(alice.get(tagsUrl(alice, roomB)), 'GET tags'), { tags: { 'u.work': { order: 0.25 } } });
      const s = await sync(alice, since);
      const t = (s.rooms.join[roomB]?.account_data.events ?? []).find((e: any) => e.type === 'm.tag');
      assert.deepEqual(t?.content, { tags: { 'u.work': { order: 0.25 } } });
    });
  });

  describe('ignored users (m.ignored_user_list)', () => {
    it('messages of an ignored user disappear from /sync and /messages; state events stay; un-ignoring restores', async () => {
      const before = await text(bob, 'bob before ignoring');
      await text(carol, 'carol before');
      const since = (await sync(alice)).next_batch;

      await ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/m.ignored_user_list`, { ignored_users: { [bob.userId]: {} } }), 'ignore bob');
      await text(bob, 'bob while ignored');
      await text(carol, 'carol while bob ignored');
      // A displayname change: a state event (m.room.member) sent by bob.
      await ok(bob.put(`${V3}/profile/${enc(bob.userId)}/displayname`, { displayname: 'Robert' }), 'bob state event');

      const inc = await sync(alice, since);
      const ad = inc.account_data.events.find((e: any) => e.type === 'm.ignored_user_list');
      assert.deepEqual(ad?.content, { ignored_users: { [bob.userId]: {} } }, 'the list itself comes down as account data');
      assert.deepEqual(timelineBodies(inc), ['carol while bob ignored'], JSON.stringify(timelineBodies(inc)));
      assert.ok(inc.rooms.join[roomId].timeline.events.some((e: any) => e.type === 'm.room.member' && e.sender === bob.userId && e.content.displayname === 'Robert'), 'state events of ignored users are still sent');

      const initial = await sync(alice);
      assert.ok(!timelineBodies(initial).some((b: string) => b.startsWith('bob')), `initial sync: ${JSON.stringify(timelineBodies(initial))}`);
      assert.ok(timelineBodies(initial).includes('carol before'));

      const msgs = await ok(alice.get(room('messages?dir=b&limit=100')), '/messages');
      assert.ok(!bodies(msgs.chunk).some((b: string) => b.startsWith('bob')), `/messages: ${JSON.stringify(bodies(msgs.chunk))}`);
      assert.ok(bodies(msgs.chunk).includes('carol while bob ignored'));
      const single = await alice.get(room(`event/${enc(before)}`));
      assert.equal(single.status, 404, `/event of an ignored user's message: ${single.status}`);
      // Others are unaffected.
      const carolView = await ok(carol.get(room('messages?dir=b&limit=100')), 'carol /messages');
      assert.ok(bodies(carolView.chunk).includes('bob while ignored'));

      await ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/m.ignored_user_list`, { ignored_users: {} }), 'un-ignore');
      await text(bob, 'bob after un-ignoring');
      const back = await ok(alice.get(room('messages?dir=b&limit=100')), '/messages after');
      assert.ok(bodies(back.chunk).includes('bob after un-ignoring'));
      assert.ok(bodies(back.chunk).includes('bob before ignoring'), 'history is visible again');
    });

    it('messages of an ignored user do not count in unread_notifications', async () => {
      await text(alice, 'I have read everything so far'); // own message: counts start from 0
      await ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/m.ignored_user_list`, { ignored_users: { [bob.userId]: {} } }), 'ignore bob');
      try {
        await text(bob, 'hidden message');
        await text(carol, 'visible message');
        const s = await sync(alice);
        assert.deepEqual(timelineBodies(s).slice(-1), ['visible message']);
        assert.deepEqual(s.rooms.join[roomId].unread_notifications, { notification_count: 1, highlight_count: 0 }, 'only the visible message counts');
      } finally {
        await ok(alice.put(`${V3}/user/${enc(alice.userId)}/account_data/m.ignored_user_list`, { ignored_users: {} }), 'un-ignore');
      }
    });

    it('invites from an ignored user are not shown', async () => {
      await ok(carol.put(`${V3}/user/${enc(carol.userId)}/account_data/m.ignored_user_list`, { ignored_users: { [mallory.userId]: {} } }), 'ignore mallory');
      const since = (await sync(carol)).next_batch;
      const fromMallory = (await ok(mallory.post(`${V3}/createRoom`, { preset: 'private_chat', name: 'spam', invite: [carol.userId] }), 'mallory invites')).room_id;
      const fromAlice = (await ok(alice.post(`${V3}/createRoom`, { preset: 'private_chat', name: 'legit', invite: [carol.userId] }), 'alice invites')).room_id;

      const inc = await sync(carol, since);
      assert.ok(inc.rooms.invite[fromAlice], 'an invite from a non-ignored user shows');
      assert.equal(inc.rooms.invite[fromMallory], undefined, `the ignored user's invite is hidden: ${Object.keys(inc.rooms.invite)}`);
      const initial = await sync(carol);
      assert.ok(initial.rooms.invite[fromAlice]);
      assert.equal(initial.rooms.invite[fromMallory], undefined);
    });
  });

  describe('reporting content', () => {
    it('POST /rooms/{id}/report/{eventId}: 200 and stored; unknown event → 404', async () => {
      const bad = await text(bob, 'something nasty');
      assert.deepEqual(await ok(carol.post(room(`report/${enc(bad)}`), { reason: 'offensive', score: -100 }), 'report'), {});
      const reports = await srv.hearth.store.directory.listReports(10);
      const mine = reports.find((r) => r.eventId === bad);
      assert.ok(mine, JSON.stringify(reports));
      assert.deepEqual({ roomId: mine.roomId, reporter: mine.reporter, reason: mine.reason, score: mine.score }, { roomId, reporter: carol.userId, reason: 'offensive', score: -100 });

      assert.deepEqual(await ok(carol.post(room(`report/${enc(bad)}`), {}), 'report without reason'), {});
      const unknown = await carol.post(room(`report/${enc('$nope')}`), { reason: 'x' });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      const outsider = await mallory.post(room(`report/${enc(bad)}`), { reason: 'x' });
      assert.equal(outsider.status, 404, `an event the reporter cannot see: ${outsider.status}`);
      const badScore = await carol.post(room(`report/${enc(bad)}`), { score: 5 });
      assert.equal(badScore.status, 400, 'score is between -100 and 0');
    });

    it('POST /rooms/{id}/report: 200 and stored; unknown room → 404', async () => {
      assert.deepEqual(await ok(carol.post(room('report'), { reason: 'the whole room is spam' }), 'room report'), {});
      const reports = await srv.hearth.store.directory.listReports(10);
      assert.ok(reports.some((r) => r.roomId === roomId && r.eventId === null && r.reason === 'the whole room is spam' && r.reporter === carol.userId), JSON.stringify(reports));
      const unknown = await carol.post(room('report', '!nope:localhost'), { reason: 'x' });
      assert.equal(unknown.status, 404);
    });
  });
});
