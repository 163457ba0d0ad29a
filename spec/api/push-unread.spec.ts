// Push rules and unread counts over real HTTP (Client-Server API v1.12 "Push Notifications":
// default rules, the /pushrules CRUD API, m.push_rules account data; "Receiving notifications":
// unread_notifications in /sync, /notifications; "Threading": unread_thread_notifications).

import { assert } from '../helpers/assert.js';
import { makeUser, ok, roomPath as room, roomWith as makeRoom, sendEvent, syncOk as sync, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('push rules and unread counts', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;
  let erin: User;
  let txn = 0;

  const send = (who: User, roomId: string, content: Record<string, unknown>, type = 'm.room.message') =>
    sendEvent(who, roomId, type, `pu${++txn}`, content, `send ${JSON.stringify(content)}`);
  const text = (who: User, roomId: string, body: string) => send(who, roomId, { msgtype: 'm.text', body });
  async function counts(who: User, roomId: string, filter?: unknown): Promise<any> {
    const s = await sync(who, { filter });
    const r = s.rooms.join[roomId];
    assert.ok(r, `${who.userId} is in ${roomId}`);
    return r;
  }
  const unread = async (who: User, roomId: string) => (await counts(who, roomId)).unread_notifications;
  const rules = (who: User) => ok(who.get(`${V3}/pushrules/`), 'GET /pushrules/');
  const ruleUrl = (kind: string, id: string, rest = '') => `${V3}/pushrules/global/${kind}/${enc(id)}${rest}`;

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol, dave, erin] = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin'].map((u) => makeUser(srv, u)));
  });
  after(async () => srv?.stop());

  describe('GET /pushrules/', () => {
    it('returns the full default rule set in the spec order', async () => {
      const rs = await rules(bob);
      const g = rs.global;
      const ids = (kind: string) => g[kind].map((r: any) => r.rule_id);
      assert.deepEqual(ids('override'), [
        '.m.rule.master',
        '.m.rule.suppress_notices',
        '.m.rule.invite_for_me',
        '.m.rule.member_event',
        '.m.rule.is_user_mention',
        '.m.rule.contains_display_name',
        '.m.rule.is_room_mention',
        '.m.rule.roomnotif',
        '.m.rule.tombstone',
        '.m.rule.reaction',
        '.m.rule.room.server_acl',
        '.m.rule.suppress_edits',
      ]);
      assert.deepEqual(ids('content'), ['.m.rule.contains_user_name']);
      assert.deepEqual(ids('underride'), [
        '.m.rule.call',
        '.m.rule.encrypted_room_one_to_one',
        '.m.rule.room_one_to_one',
        '.m.rule.message',
        '.m.rule.encrypted',
      ]);
      assert.deepEqual(g.room, []);
      assert.deepEqual(g.sender, []);
      for (const kind of ['override', 'content', 'underride']) for (const r of g[kind]) assert.equal(r.default, true, r.rule_id);

      const byId = (kind: string, id: string) => g[kind].find((r: any) => r.rule_id === id);
      assert.deepEqual(byId('override', '.m.rule.master'), { rule_id: '.m.rule.master', default: true, enabled: false, conditions: [], actions: [] });
      assert.deepEqual(byId('override', '.m.rule.invite_for_me').conditions, [
        { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
        { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
        { kind: 'event_match', key: 'state_key', pattern: bob.userId },
      ]);
      assert.deepEqual(byId('override', '.m.rule.is_user_mention').conditions, [
        { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: bob.userId },
      ]);
      assert.deepEqual(byId('override', '.m.rule.is_user_mention').actions, ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]);
      assert.deepEqual(byId('override', '.m.rule.suppress_edits').conditions, [
        { kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' },
      ]);
      const cu = byId('content', '.m.rule.contains_user_name');
      assert.equal(cu.pattern, 'bob', 'the content rule matches the localpart');
      assert.deepEqual(cu.actions, ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }]);
      assert.deepEqual(byId('underride', '.m.rule.call').actions, ['notify', { set_tweak: 'sound', value: 'ring' }]);
      assert.deepEqual(byId('underride', '.m.rule.room_one_to_one').conditions, [
        { kind: 'room_member_count', is: '2' },
        { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
      ]);
      assert.deepEqual(byId('underride', '.m.rule.message').actions, ['notify']);

      // The same set is what an initial /sync carries as m.push_rules account data.
      const s = await sync(bob);
      const pr = s.account_data.events.find((e: any) => e.type === 'm.push_rules');
      assert.deepEqual(pr?.content, rs, 'initial sync: m.push_rules equals GET /pushrules/');
    });
  });

  describe('push rule CRUD', () => {
    const r1 = { conditions: [{ kind: 'event_match', key: 'content.body', pattern: 'xyzzy' }], actions: ['notify'] };

    it('room rules accept any rule ID; dont_notify is kept as sent', async () => {
      await ok(erin.put(ruleUrl('room', '#a:example.com'), { actions: ['dont_notify'] }), 'PUT room rule by alias');
      const got = await ok(erin.get(ruleUrl('room', '#a:example.com')), 'GET');
      assert.deepEqual(got.actions, ['dont_notify']);
      assert.deepEqual(await ok(erin.get(ruleUrl('room', '#a:example.com', '/actions')), 'GET actions'), { actions: ['dont_notify'] });
      await ok(erin.put(ruleUrl('room', '#a:example.com', '/actions'), { actions: ['dont_notify'] }), 'PUT actions');
      assert.deepEqual((await ok(erin.get(ruleUrl('room', '#a:example.com')), 'GET')).actions, ['dont_notify']);
      await ok(erin.req('DELETE', ruleUrl('room', '#a:example.com')), 'DELETE');
    });

    it('malformed /pushrules paths answer 400 (and /pushrules without its slash is no endpoint)', async () => {
      const P = `${V3}/pushrules`;
      for (const path of ['/', '/not_a_scope/room/%23spam%3Aexample.com', '/global', '/global/room', '/global/room/', '/global/not_a_template/foo', '/global/override/.m.rule.master/not_an_attr']) {
        const r = await erin.put(P + path, { actions: ['notify'], enabled: true });
        assert.equal(r.status, 400, `PUT ${path}: ${r.status} ${JSON.stringify(r.body)}`);
        assert.equal(typeof r.body.errcode, 'string');
      }
      for (const path of ['/global', '/global/room', '/not_a_scope/', '/global/not_a_template/', '/global/override/.m.rule.master/not_an_attr']) {
        const r = await erin.get(P + path);
        assert.equal(r.status, 400, `GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      }
      assert.equal((await erin.get(P)).status, 404);
      assert.equal((await erin.get(P + '/global/override/not_a_rule_id')).status, 404);
      assert.equal((await erin.get(P + '/')).status, 200);
      assert.equal((await erin.get(P + '/global/')).status, 200);
      assert.equal((await erin.get(P + '/global/room/')).status, 200);
    });

    it('PUT with before/after orders user rules (after .m.rule.master, before the other defaults); GET returns the rule', async () => {
      await ok(erin.put(ruleUrl('override', 'r1'), r1), 'PUT r1');
      await ok(erin.put(ruleUrl('override', 'r2') + '?before=r1', { conditions: [], actions: [] }), 'PUT r2 before r1');
      await ok(erin.put(ruleUrl('override', 'r3') + `?after=r1`, { conditions: [{ kind: 'event_match', key: 'type', pattern: 'org.example.x' }], actions: ['notify'] }), 'PUT r3 after r1');
      const ids = (await rules(erin)).global.override.map((r: any) => r.rule_id);
      assert.deepEqual(ids.slice(0, 5), ['.m.rule.master', 'r2', 'r1', 'r3', '.m.rule.suppress_notices'], JSON.stringify(ids));

      const got = await ok(erin.get(ruleUrl('override', 'r1')), 'GET r1');
      assert.deepEqual(got, { rule_id: 'r1', default: false, enabled: true, conditions: r1.conditions, actions: ['notify'] });

      await ok(erin.put(ruleUrl('content', 'cheese'), { pattern: 'cheese', actions: ['notify', { set_tweak: 'highlight' }] }), 'PUT content rule');
      const c = await ok(erin.get(ruleUrl('content', 'cheese')), 'GET content rule');
      assert.equal(c.pattern, 'cheese');
      assert.equal(c.default, false);
      const contentIds = (await rules(erin)).global.content.map((r: any) => r.rule_id);
      assert.deepEqual(contentIds, ['cheese', '.m.rule.contains_user_name'], 'user content rules come before the default one');
      // Other users are unaffected.
      assert.ok(!(await rules(bob)).global.override.some((r: any) => r.rule_id === 'r1'));
    });

    it('PUT /enabled and /actions, GET them back; they work on default rules too', async () => {
      await ok(erin.put(ruleUrl('override', 'r1', '/enabled'), { enabled: false }), 'disable');
      assert.deepEqual(await ok(erin.get(ruleUrl('override', 'r1', '/enabled')), 'GET enabled'), { enabled: false });
      await ok(erin.put(ruleUrl('override', 'r1', '/actions'), { actions: ['notify', { set_tweak: 'sound', value: 'bell' }] }), 'actions');
      assert.deepEqual(await ok(erin.get(ruleUrl('override', 'r1', '/actions')), 'GET actions'), { actions: ['notify', { set_tweak: 'sound', value: 'bell' }] });
      const r = await ok(erin.get(ruleUrl('override', 'r1')), 'GET r1');
      assert.equal(r.enabled, false);

      await ok(erin.put(ruleUrl('underride', '.m.rule.call', '/enabled'), { enabled: false }), 'disable a default');
      assert.deepEqual(await ok(erin.get(ruleUrl('underride', '.m.rule.call', '/enabled')), 'GET'), { enabled: false });
      const call = (await rules(erin)).global.underride.find((x: any) => x.rule_id === '.m.rule.call');
      assert.equal(call.enabled, false);
      assert.equal(call.default, true);
      await ok(erin.put(ruleUrl('underride', '.m.rule.call', '/enabled'), { enabled: true }), 're-enable');
    });

    it('DELETE removes a user rule (then 404); errors for bad requests', async () => {
      await ok(erin.req('DELETE', ruleUrl('override', 'r2')), 'DELETE r2');
      const gone = await erin.get(ruleUrl('override', 'r2'));
      assert.equal(gone.status, 404, JSON.stringify(gone.body));
      assert.equal(gone.body.errcode, 'M_NOT_FOUND');
      assert.ok(!(await rules(erin)).global.override.some((r: any) => r.rule_id === 'r2'));
      assert.equal((await erin.req('DELETE', ruleUrl('override', 'r2'))).status, 404, 'deleting twice');

      const before = await erin.put(ruleUrl('override', 'r4') + '?before=nonexistent', { conditions: [], actions: [] });
      assert.ok(before.status === 400 || before.status === 404, `before an unknown rule: ${before.status} ${JSON.stringify(before.body)}`);
      // Spec: "It is not possible to add a rule relative to a predefined server rule."
      const relDefault = await erin.put(ruleUrl('override', 'r7') + '?after=.m.rule.suppress_notices', { conditions: [], actions: [] });
      assert.ok(relDefault.status === 400 || relDefault.status === 404, `after a server-default rule: ${relDefault.status} ${JSON.stringify(relDefault.body)}`);
      assert.ok(!(await rules(erin)).global.override.some((r: any) => r.rule_id === 'r7'));
      const dotted = await erin.put(ruleUrl('override', '.m.rule.mine'), { conditions: [], actions: [] });
      assert.equal(dotted.status, 400, `a user rule_id starting with '.': ${dotted.status} ${JSON.stringify(dotted.body)}`);
      const kind = await erin.put(ruleUrl('bogus', 'x'), { actions: [] });
      assert.equal(kind.status, 400);
      const noActions = await erin.put(ruleUrl('override', 'r5'), { conditions: [] });
      assert.equal(noActions.status, 400, `a rule without actions: ${JSON.stringify(noActions.body)}`);
      const delDefault = await erin.req('DELETE', ruleUrl('override', '.m.rule.master'));
      assert.ok(delDefault.status >= 400 && delDefault.status < 500, `deleting a default rule: ${delDefault.status}`);
      assert.ok((await rules(erin)).global.override.some((r: any) => r.rule_id === '.m.rule.master'));
    });

    it('each change appears as m.push_rules account data in the next /sync', async () => {
      const since = (await sync(erin)).next_batch;
      await ok(erin.put(ruleUrl('override', 'r6'), { conditions: [{ kind: 'event_match', key: 'content.body', pattern: 'plugh' }], actions: [] }), 'PUT r6');
      const s1 = await sync(erin, { since });
      const pr1 = s1.account_data.events.filter((e: any) => e.type === 'm.push_rules');
      assert.equal(pr1.length, 1, JSON.stringify(s1.account_data));
      assert.deepEqual(pr1[0].content, await rules(erin), 'the account data is the current rule set');
      assert.ok(pr1[0].content.global.override.some((r: any) => r.rule_id === 'r6'));

      await ok(erin.put(ruleUrl('override', 'r6', '/enabled'), { enabled: false }), 'disable r6');
      const s2 = await sync(erin, { since: s1.next_batch });
      const r6 = s2.account_data.events.find((e: any) => e.type === 'm.push_rules')?.content.global.override.find((r: any) => r.rule_id === 'r6');
      assert.equal(r6?.enabled, false, JSON.stringify(s2.account_data));

      await ok(erin.req('DELETE', ruleUrl('override', 'r6')), 'DELETE r6');
      const s3 = await sync(erin, { since: s2.next_batch });
      const pr3 = s3.account_data.events.find((e: any) => e.type === 'm.push_rules');
      assert.ok(pr3 && !pr3.content.global.override.some((r: any) => r.rule_id === 'r6'), JSON.stringify(s3.account_data));
      // Internal bookkeeping never leaks into account data.
      assert.ok(s3.account_data.events.every((e: any) => e.type.startsWith('m.')), JSON.stringify(s3.account_data.events.map((e: any) => e.type)));
    });

    it('a user rule takes effect: a room rule with no actions mutes that room', async () => {
      const roomId = await makeRoom(alice, [erin]);
      await text(alice, roomId, 'before muting');
      assert.equal((await unread(erin, roomId)).notification_count, 1);
      await ok(erin.put(ruleUrl('room', roomId), { actions: [] }), 'PUT room rule');
      await text(alice, roomId, 'after muting');
      assert.equal((await unread(erin, roomId)).notification_count, 1, 'the muted message does not count');
    });
  });

  describe('unread_notifications', () => {
    it('a message in a 1:1 room gives the recipient notification_count 1; the sender\'s own messages never count for them', async () => {
      const roomId = await makeRoom(alice, [bob]);
      await text(alice, roomId, 'hello there');
      assert.deepEqual(await unread(bob, roomId), { notification_count: 1, highlight_count: 0 });
      assert.deepEqual(await unread(alice, roomId), { notification_count: 0, highlight_count: 0 });
    });

    it('an m.mentions.user_ids mention highlights; a group message notifies others without highlight', async () => {
      const roomId = await makeRoom(alice, [bob, carol]);
      await send(alice, roomId, { msgtype: 'm.text', body: 'look at this', 'm.mentions': { user_ids: [bob.userId] } });
      assert.deepEqual(await unread(bob, roomId), { notification_count: 1, highlight_count: 1 });
      assert.deepEqual(await unread(carol, roomId), { notification_count: 1, highlight_count: 0 });
      // An edit (m.replace) does not notify again.
      const orig = await text(alice, roomId, 'typo');
      await send(alice, roomId, { msgtype: 'm.text', body: '* fixed', 'm.new_content': { msgtype: 'm.text', body: 'fixed' }, 'm.relates_to': { rel_type: 'm.replace', event_id: orig } });
      assert.deepEqual(await unread(carol, roomId), { notification_count: 2, highlight_count: 0 }, 'the edit is suppressed by .m.rule.suppress_edits');
    });

    it('m.notice does not count; reactions and membership events do not count', async () => {
      const roomId = await makeRoom(alice, [bob]);
      const e = await send(alice, roomId, { msgtype: 'm.notice', body: 'bot says hi' });
      await send(alice, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: e, key: '👍' } }, 'm.reaction');
      assert.deepEqual(await unread(bob, roomId), { notification_count: 0, highlight_count: 0 });
    });

    it('a read receipt clears the count; the user\'s own later message clears it too', async () => {
      const roomId = await makeRoom(alice, [bob]);
      await text(alice, roomId, 'one');
      const two = await text(alice, roomId, 'two');
      assert.equal((await unread(bob, roomId)).notification_count, 2);
      await ok(bob.post(room(roomId, `receipt/m.read/${enc(two)}`), {}), 'receipt');
      assert.deepEqual(await unread(bob, roomId), { notification_count: 0, highlight_count: 0 });

      await text(alice, roomId, 'three');
      await text(alice, roomId, 'four');
      const s = await sync(bob);
      assert.equal(s.rooms.join[roomId].unread_notifications.notification_count, 2);
      await text(bob, roomId, 'my reply');
      const s2 = await sync(bob, { since: s.next_batch });
      assert.deepEqual(s2.rooms.join[roomId].unread_notifications, { notification_count: 0, highlight_count: 0 }, 'own message: the incremental sync carries 0');
    });

    it('a disabled .m.rule.message stops counting in a group room (only for that user)', async () => {
      const roomId = await makeRoom(alice, [carol, dave]);
      await ok(dave.put(ruleUrl('underride', '.m.rule.message', '/enabled'), { enabled: false }), 'disable .m.rule.message');
      await text(alice, roomId, 'group message');
      assert.deepEqual(await unread(dave, roomId), { notification_count: 0, highlight_count: 0 });
      assert.deepEqual(await unread(carol, roomId), { notification_count: 1, highlight_count: 0 });
      // A mention still gets through (override rules come first).
      await send(alice, roomId, { msgtype: 'm.text', body: 'ping', 'm.mentions': { user_ids: [dave.userId] } });
      assert.deepEqual(await unread(dave, roomId), { notification_count: 1, highlight_count: 1 });
    });

    it('unread_thread_notifications: a thread reply counts under its root, not in the main count', async () => {
      const roomId = await makeRoom(alice, [bob]);
      const root = await text(alice, roomId, 'thread root');
      const reply = await send(alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      const filter = { room: { timeline: { unread_thread_notifications: true } } };
      const r = await counts(bob, roomId, filter);
      assert.deepEqual(r.unread_notifications, { notification_count: 1, highlight_count: 0 }, 'main timeline: the root only');
      assert.deepEqual(r.unread_thread_notifications, { [root]: { notification_count: 1, highlight_count: 0 } });

      // A threaded receipt clears that thread only.
      await ok(bob.post(room(roomId, `receipt/m.read/${enc(reply)}`), { thread_id: root }), 'thread receipt');
      const r2 = await counts(bob, roomId, filter);
      assert.deepEqual(r2.unread_notifications, { notification_count: 1, highlight_count: 0 });
      assert.equal(r2.unread_thread_notifications?.[root], undefined, JSON.stringify(r2.unread_thread_notifications));
    });

    it('without unread_thread_notifications in the filter, unread_notifications counts all events of the room (threads included)', async () => {
      // Spec (v1.4+) /sync unread_notifications: only "if unread_thread_notifications was
      // specified as true … these counts will only be for the main timeline rather than all
      // events in the room".
      const roomId = await makeRoom(alice, [bob]);
      const root = await text(alice, roomId, 'thread root');
      await send(alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      const r = await counts(bob, roomId);
      assert.equal(r.unread_thread_notifications, undefined, 'not requested, not sent');
      assert.deepEqual(r.unread_notifications, { notification_count: 2, highlight_count: 0 });
    });
  });

  describe('GET /notifications', () => {
    it('lists notified events newest first with read flags; only=highlight; from/next_token pagination', async () => {
      const roomId = await makeRoom(alice, [carol]);
      const n1 = await text(alice, roomId, 'n one');
      const n2 = await send(alice, roomId, { msgtype: 'm.text', body: 'n two', 'm.mentions': { user_ids: [carol.userId] } });
      const n3 = await text(alice, roomId, 'n three');
      await send(alice, roomId, { msgtype: 'm.notice', body: 'not notified' });
      await ok(carol.post(room(roomId, `receipt/m.read/${enc(n1)}`), {}), 'receipt');

      const all = await ok(carol.get(`${V3}/notifications?limit=50`), 'GET /notifications');
      const inRoom = all.notifications.filter((n: any) => n.room_id === roomId);
      // The oldest is carol's invite (.m.rule.invite_for_me), covered by her receipt as well.
      const invite = inRoom[inRoom.length - 1];
      assert.equal(invite?.event.type, 'm.room.member', JSON.stringify(invite?.event));
      assert.equal(invite.event.state_key, carol.userId);
      assert.equal(invite.read, true);
      const here = inRoom.filter((n: any) => n.event.type === 'm.room.message');
      assert.deepEqual(here.map((n: any) => n.event.event_id), [n3, n2, n1], 'newest first, the notice left out');
      assert.deepEqual(here.map((n: any) => n.read), [false, false, true]);
      for (const n of here) {
        assert.equal(typeof n.ts, 'number');
        assert.ok('profile_tag' in n, 'profile_tag present');
        assert.ok(Array.isArray(n.actions) && n.actions.includes('notify'), JSON.stringify(n.actions));
        assert.equal(n.event.room_id, roomId);
        assert.equal(n.event.sender, alice.userId);
      }
      assert.ok(here[1].actions.some((a: any) => a?.set_tweak === 'highlight'), 'the mention carries the highlight tweak');

      const hi = await ok(carol.get(`${V3}/notifications?only=highlight`), 'only=highlight');
      assert.deepEqual(hi.notifications.map((n: any) => n.event.event_id), [n2]);

      const p1 = await ok(carol.get(`${V3}/notifications?limit=1`), 'page 1');
      assert.deepEqual(p1.notifications.map((n: any) => n.event.event_id), [n3]);
      assert.equal(typeof p1.next_token, 'string');
      const p2 = await ok(carol.get(`${V3}/notifications?limit=2&from=${enc(p1.next_token)}`), 'page 2');
      assert.deepEqual(p2.notifications.map((n: any) => n.event.event_id), [n2, n1]);

      // Alice sent them: she has none of them.
      const mine = await ok(alice.get(`${V3}/notifications`), 'alice');
      assert.ok(!mine.notifications.some((n: any) => [n1, n2, n3].includes(n.event.event_id)));
    });
  });
});
