// Contract: push actions written with events, unread counts and the notification list
// (NotificationStore in src/store/chat-types.ts).

import { assert } from '../helpers/assert.js';
import type { JsonObject } from '../../src/protocol/types.js';
import type { PushActionInput, PushBulkInput, ReceiptThread, ReceiptType, RoomUnreadCounts } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { assertConflict, FakeRoom, userId, type SentEvent } from './fixtures.js';

export function describeNotificationContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');
  const dave = userId('dave');
  const erin = userId('erin');

  function action(user: string, o: { highlight?: boolean; notify?: boolean; threadId?: string | null } = {}): PushActionInput {
    const highlight = o.highlight ?? false;
    return {
      userId: user,
      notify: o.notify ?? true,
      highlight,
      threadId: o.threadId ?? null,
      // The contract types actions as all-strings or all-objects (see chat-types.ts).
      actions: highlight ? [{ set_tweak: 'highlight' }, { set_tweak: 'sound', value: 'default' }] : ['notify'],
    };
  }

  let room: FakeRoom;

  async function setup(): Promise<void> {
    room = new FakeRoom();
    await room.create(ctx.store, alice);
    await room.member(ctx.store, bob, bob, 'join');
  }

  /** A message from bob that notifies alice (and whoever else is listed). */
  const notify = (body: string, o: { highlight?: boolean; threadId?: string; users?: string[] } = {}): Promise<SentEvent> => {
    const content: JsonObject = o.threadId === undefined ? { body } : { body, 'm.relates_to': { rel_type: 'm.thread', event_id: o.threadId } };
    const pushActions = (o.users ?? [alice]).map((u) => action(u, { highlight: o.highlight, threadId: o.threadId }));
    return room.send(ctx.store, 'm.room.message', bob, content, undefined, { pushActions });
  };

  const receipt = (user: string, ev: SentEvent, type: ReceiptType = 'm.read', threadId: ReceiptThread = null) =>
    ctx.store.receipts.putReceipt({ roomId: room.roomId, userId: user, type, threadId, eventId: ev.eventId, eventStream: ev.stream, ts: 1 });

  async function counts(user = alice, upTo = ctx.store.currentPosition()): Promise<RoomUnreadCounts> {
    const all = await ctx.store.notifications.getUnreadCounts(user, [room.roomId], upTo);
    const c = all.get(room.roomId);
    assert.ok(c, 'every requested room is present');
    return c;
  }
  const main = async (user = alice, upTo?: number) => {
    const c = await counts(user, upTo);
    return [c.main.notification_count, c.main.highlight_count];
  };
  const threads = async (user = alice) => {
    const c = await counts(user);
    return Object.fromEntries([...c.threads].map(([k, v]) => [k, [v.notification_count, v.highlight_count]]));
  };

  describe('unread counts', function () {
    it('counts the actions of each user in each room', async function () {
      await setup();
      await notify('one');
      await notify('two', { highlight: true, users: [alice, carol] });
      await notify('three');
      await room.message(ctx.store, bob, 'no actions');
      await room.send(ctx.store, 'm.room.message', bob, { body: 'silent' }, undefined, { pushActions: [action(alice, { notify: false })] });
      assert.deepEqual(await main(), [3, 1]);
      assert.deepEqual(await threads(), {});
      assert.deepEqual(await main(carol), [1, 1]);
      assert.deepEqual(await main(bob), [0, 0]);

      const quiet = new FakeRoom();
      await quiet.create(ctx.store, bob);
      const all = await ctx.store.notifications.getUnreadCounts(alice, [room.roomId, quiet.roomId], ctx.store.currentPosition());
      assert.deepEqual(all.get(quiet.roomId), { main: { notification_count: 0, highlight_count: 0 }, threads: new Map() });
      assert.equal((await ctx.store.notifications.getUnreadCounts(alice, [], ctx.store.currentPosition())).size, 0);
    });

    it('stops counting actions at or below a public or private read receipt', async function () {
      await setup();
      const m1 = await notify('one', { highlight: true });
      const m2 = await notify('two');
      const m3 = await notify('three', { highlight: true });
      await receipt(alice, m1);
      assert.deepEqual(await main(), [2, 1], 'a receipt covers the event it points at');
      await receipt(alice, m2, 'm.read.private');
      assert.deepEqual(await main(), [1, 1], 'private receipts count too');
      const later = await room.message(ctx.store, bob, 'not notifying');
      await receipt(alice, later);
      assert.deepEqual(await main(), [0, 0], 'a receipt past the action covers it');
      assert.ok(m3.stream < later.stream);
      assert.deepEqual(await main(carol), [0, 0]);
    });

    it('ignores other users\' receipts', async function () {
      await setup();
      const m1 = await notify('one', { users: [alice, carol] });
      await receipt(carol, m1);
      assert.deepEqual(await main(), [1, 0]);
      assert.deepEqual(await main(carol), [0, 0]);
    });

    it('stops counting actions before the user\'s own latest event', async function () {
      await setup();
      await notify('one');
      await notify('two', { highlight: true });
      await room.message(ctx.store, alice, 'I am here');
      assert.deepEqual(await main(), [0, 0]);
      await notify('three');
      assert.deepEqual(await main(), [1, 0]);
    });

    it('counts thread actions per thread, cleared by the thread\'s or an unthreaded receipt', async function () {
      await setup();
      const root = await notify('root');
      const t1 = await notify('t1', { threadId: root.eventId });
      const t2 = await notify('t2', { threadId: root.eventId, highlight: true });
      const other = await notify('other root');
      const u1 = await notify('u1', { threadId: other.eventId });
      const m = await notify('main again');
      assert.deepEqual(await main(), [3, 0]);
      assert.deepEqual(await threads(), { [root.eventId]: [2, 1], [other.eventId]: [1, 0] });

      // The main-timeline receipt, even past every thread event, leaves threads alone.
      await receipt(alice, m, 'm.read', 'main');
      assert.deepEqual(await main(), [0, 0]);
      assert.deepEqual(await threads(), { [root.eventId]: [2, 1], [other.eventId]: [1, 0] });

      // A thread receipt clears only its own thread, up to its event.
      await receipt(alice, t1, 'm.read.private', root.eventId);
      assert.deepEqual(await threads(), { [root.eventId]: [1, 1], [other.eventId]: [1, 0] });
      await receipt(alice, u1, 'm.read', other.eventId);
      assert.deepEqual(await threads(), { [root.eventId]: [1, 1] }, 'threads with nothing unread are absent');

      // An unthreaded receipt covers every timeline up to its event.
      await receipt(alice, t2, 'm.read', null);
      assert.deepEqual(await threads(), {});
      assert.deepEqual(await main(), [0, 0]);
    });

    it('a thread receipt does not clear the main timeline', async function () {
      await setup();
      const root = await notify('root');
      const t1 = await notify('t1', { threadId: root.eventId });
      await receipt(alice, t1, 'm.read', root.eventId);
      assert.deepEqual(await main(), [1, 0]);
      assert.deepEqual(await threads(), {});
    });

    it('ignores actions above upTo', async function () {
      await setup();
      await notify('one');
      const m2 = await notify('two', { highlight: true });
      const root = await notify('three');
      await notify('t', { threadId: root.eventId });
      assert.deepEqual(await main(alice, m2.stream), [2, 1]);
      assert.deepEqual(await main(alice, m2.stream - 1), [1, 0]);
      assert.equal((await counts(alice, root.stream)).threads.size, 0);
      assert.deepEqual(await main(alice, 0), [0, 0]);
    });

    it('writes push actions atomically with the event', async function () {
      await setup();
      const ev = room.build('m.room.message', bob, { body: 'once' });
      await ctx.store.rooms.persistEvent(room.input(ev, { pushActions: [action(alice)] }));
      // A second persist of the same event ID fails as a whole: no second set of actions.
      await assertConflict(ctx.store.rooms.persistEvent(room.input(ev, { pushActions: [action(alice), action(carol)] })));
      assert.deepEqual(await main(), [1, 0]);
      assert.deepEqual(await main(carol), [0, 0]);
      // A reused transaction ID likewise writes none of the event's actions.
      const txn = { userId: bob, deviceId: 'D', txnId: 't' };
      await room.message(ctx.store, bob, 'first', { txn });
      const dup = room.build('m.room.message', bob, { body: 'dup' });
      await assertConflict(ctx.store.rooms.persistEvent(room.input(dup, { txn, pushActions: [action(carol)] })));
      assert.deepEqual(await main(carol), [0, 0]);
      assert.deepEqual(await ctx.store.notifications.getNotifications(carol, { limit: 10, onlyHighlight: false }), []);
    });
  });

  describe('notifications', function () {
    it('lists notifications newest first with actions and read state', async function () {
      await setup();
      const m1 = await notify('one');
      const m2 = await notify('two', { highlight: true });
      const m3 = await notify('three');
      const m4 = await notify('four', { highlight: true });
      await receipt(alice, m2);

      const list = await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false });
      assert.deepEqual(list.map((n) => n.eventId), [m4, m3, m2, m1].map((m) => m.eventId));
      assert.deepEqual(list.map((n) => n.read), [false, false, true, true]);
      assert.deepEqual(list.map((n) => n.highlight), [true, false, true, false]);
      assert.deepEqual(list.map((n) => n.stream), [m4, m3, m2, m1].map((m) => m.stream));
      assert.ok(list.every((n) => n.roomId === room.roomId && typeof n.ts === 'number'));
      assert.deepEqual(list[0].actions, action(alice, { highlight: true }).actions);
      assert.deepEqual(list[1].actions, ['notify']);

      assert.deepEqual(
        (await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: true })).map((n) => n.eventId),
        [m4.eventId, m2.eventId],
      );
      assert.deepEqual(await ctx.store.notifications.getNotifications(bob, { limit: 10, onlyHighlight: false }), []);
    });

    it('pages with an exclusive `before` bound and a limit', async function () {
      await setup();
      const sent: SentEvent[] = [];
      for (let i = 0; i < 5; i++) sent.push(await notify(`m${i}`, { highlight: i % 2 === 0 }));
      const ids = (ns: { eventId: string }[]) => ns.map((n) => n.eventId);
      const page1 = await ctx.store.notifications.getNotifications(alice, { limit: 2, onlyHighlight: false });
      assert.deepEqual(ids(page1), ids([sent[4], sent[3]]));
      const page2 = await ctx.store.notifications.getNotifications(alice, { before: page1[1].stream, limit: 2, onlyHighlight: false });
      assert.deepEqual(ids(page2), ids([sent[2], sent[1]]));
      const hl = await ctx.store.notifications.getNotifications(alice, { before: sent[4].stream, limit: 5, onlyHighlight: true });
      assert.deepEqual(ids(hl), ids([sent[2], sent[0]]));
      assert.deepEqual(await ctx.store.notifications.getNotifications(alice, { limit: 0, onlyHighlight: false }), []);
    });

    it('marks notifications read by own later events and per timeline', async function () {
      const other = new FakeRoom();
      await setup();
      await other.create(ctx.store, bob);
      await other.member(ctx.store, alice, alice, 'join');
      const root = await notify('root');
      const t1 = await notify('t1', { threadId: root.eventId });
      const m = await notify('main');
      const o1 = await other.send(ctx.store, 'm.room.message', bob, { body: 'o1' }, undefined, { pushActions: [action(alice)] });
      await receipt(alice, m, 'm.read', 'main');
      await other.message(ctx.store, alice, 'own event in the other room');
      const o2 = await other.send(ctx.store, 'm.room.message', bob, { body: 'o2' }, undefined, { pushActions: [action(alice)] });

      const list = await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false });
      const read = new Map(list.map((n) => [n.eventId, n.read]));
      assert.deepEqual(Object.fromEntries(read), {
        [root.eventId]: true,
        [t1.eventId]: false,
        [m.eventId]: true,
        [o1.eventId]: true,
        [o2.eventId]: false,
      });
      assert.equal(list.find((n) => n.eventId === o1.eventId)?.roomId, other.roomId);
    });
  });

  // PersistEventInput.pushBulk: one stored result for every user joined just before the event,
  // but the sender and `except`; it must count and list exactly as a row per covered user would.
  describe('bulk results', function () {
    function bulk(o: { highlight?: boolean; notify?: boolean; threadId?: string | null; except?: string[] } = {}): PushBulkInput {
      const a = action('', o);
      return { notify: a.notify, highlight: a.highlight, threadId: a.threadId, actions: a.actions, except: o.except ?? [] };
    }

    /** alice (creator), bob, carol and dave joined. */
    async function bigSetup(): Promise<void> {
      await setup();
      await room.member(ctx.store, carol, carol, 'join');
      await room.member(ctx.store, dave, dave, 'join');
    }

    /** A message from `sender` with a bulk result and optional per-user rows. */
    const bulkSend = (
      body: string,
      o: { sender?: string; highlight?: boolean; threadId?: string; except?: string[]; rows?: PushActionInput[] } = {},
    ): Promise<SentEvent> => {
      const content: JsonObject = o.threadId === undefined ? { body } : { body, 'm.relates_to': { rel_type: 'm.thread', event_id: o.threadId } };
      return room.send(ctx.store, 'm.room.message', o.sender ?? bob, content, undefined, {
        pushBulk: bulk({ highlight: o.highlight, threadId: o.threadId ?? null, except: o.except }),
        pushActions: o.rows ?? [],
      });
    };

    it('counts for every joined member but the sender and the excepted ones', async function () {
      await bigSetup();
      await bulkSend('one', { except: [dave] });
      assert.deepEqual(await main(alice), [1, 0]);
      assert.deepEqual(await main(carol), [1, 0]);
      assert.deepEqual(await main(bob), [0, 0], 'not the sender');
      assert.deepEqual(await main(dave), [0, 0], 'not an excepted member');
      assert.deepEqual(await main(erin), [0, 0], 'not a user who never joined');

      await room.member(ctx.store, erin, erin, 'join');
      assert.deepEqual(await main(erin), [0, 0], 'not a member who joined after the event');
      await bulkSend('two', { sender: alice, highlight: true, except: [carol] });
      assert.deepEqual(await main(alice), [0, 0], 'own event: earlier ones read, own not counted');
      assert.deepEqual(await main(bob), [1, 1]);
      assert.deepEqual(await main(carol), [1, 0]);
      assert.deepEqual(await main(dave), [1, 1]);
      assert.deepEqual(await main(erin), [1, 1]);
    });

    it('counts with per-user rows of the excepted members, each once', async function () {
      await bigSetup();
      await bulkSend('one', { except: [alice, dave], rows: [action(alice, { highlight: true }), action(dave, { notify: false })] });
      await bulkSend('two', { except: [carol], rows: [action(carol, { highlight: true })] });
      await bulkSend('three');
      assert.deepEqual(await main(alice), [3, 1]);
      assert.deepEqual(await main(carol), [3, 1]);
      assert.deepEqual(await main(dave), [2, 0]);
      assert.deepEqual(await main(bob), [0, 0]);
    });

    it('an except list matches whole user IDs only', async function () {
      await bigSetup();
      const odd = userId('we"ird\\one');
      await room.member(ctx.store, odd, odd, 'join');
      await bulkSend('one', { except: [userId('alice2'), `x${alice}`, `${alice}x`, odd] });
      assert.deepEqual(await main(alice), [1, 0]);
      assert.deepEqual(await main(odd), [0, 0]);
      await bulkSend('two', { except: [alice] });
      assert.deepEqual(await main(alice), [1, 0]);
      assert.deepEqual(await main(odd), [1, 0]);
    });

    it('covers a member for the events of their join intervals only, the leave event included', async function () {
      await bigSetup();
      const joined = await bulkSend('while joined');
      const kick = await room.send(ctx.store, 'm.room.member', alice, { membership: 'leave' }, carol, { pushBulk: bulk() });
      await bulkSend('after leaving');
      assert.deepEqual(await main(carol), [2, 0], 'the kick notified the kicked member, who was joined until then');
      await room.member(ctx.store, alice, carol, 'invite');
      await bulkSend('while invited');
      await room.member(ctx.store, carol, carol, 'join');
      const rejoined = await bulkSend('after rejoining');
      await room.send(ctx.store, 'm.room.member', carol, { membership: 'join', displayname: 'Carol' }, carol);
      const last = await bulkSend('after the profile change');
      assert.deepEqual(await main(carol), [1, 0], 'own (member) events read everything before them');
      const listed = await ctx.store.notifications.getNotifications(carol, { limit: 10, onlyHighlight: false });
      assert.deepEqual(listed.map((n) => [n.eventId, n.read]), [[last.eventId, false], [rejoined.eventId, true], [kick.eventId, true], [joined.eventId, true]]);
      // Without own events in between: a ban ends the interval too.
      assert.deepEqual(await main(dave), [6, 0]);
      await room.member(ctx.store, alice, dave, 'ban');
      await bulkSend('after the ban');
      assert.deepEqual(await main(dave), [6, 0]);
      assert.deepEqual(await main(alice), [1, 0], 'alice sent the kick, the invite and the ban');
    });

    it('counts thread results per thread, cleared by the thread\'s or an unthreaded receipt', async function () {
      await bigSetup();
      const root = await bulkSend('root');
      const t1 = await bulkSend('t1', { threadId: root.eventId });
      const t2 = await bulkSend('t2', { threadId: root.eventId, highlight: true });
      const m = await bulkSend('main again');
      assert.deepEqual(await main(), [2, 0]);
      assert.deepEqual(await threads(), { [root.eventId]: [2, 1] });
      assert.deepEqual(await threads(carol), { [root.eventId]: [2, 1] });

      await receipt(alice, m, 'm.read', 'main');
      assert.deepEqual(await main(), [0, 0]);
      assert.deepEqual(await threads(), { [root.eventId]: [2, 1] }, 'a main receipt leaves threads alone');
      await receipt(alice, t1, 'm.read.private', root.eventId);
      assert.deepEqual(await threads(), { [root.eventId]: [1, 1] });
      await receipt(alice, t2, 'm.read', null);
      assert.deepEqual(await threads(), {});
      assert.deepEqual(await threads(carol), { [root.eventId]: [2, 1] }, 'other users\' receipts do not count');

      const t3 = await bulkSend('t3', { threadId: root.eventId, except: [alice], rows: [action(alice, { threadId: root.eventId, highlight: true })] });
      assert.deepEqual(await threads(), { [root.eventId]: [1, 1] });
      await receipt(carol, t3, 'm.read', root.eventId);
      assert.deepEqual(await threads(carol), {});
      assert.deepEqual(await main(carol), [2, 0]);
    });

    it('stops counting at read receipts and own events, and ignores results above upTo', async function () {
      await bigSetup();
      const m1 = await bulkSend('one', { highlight: true });
      const m2 = await bulkSend('two');
      const m3 = await bulkSend('three', { highlight: true });
      assert.deepEqual(await main(), [3, 2]);
      assert.deepEqual(await main(alice, m2.stream), [2, 1]);
      assert.deepEqual(await main(alice, m1.stream - 1), [0, 0]);
      await receipt(alice, m1);
      assert.deepEqual(await main(), [2, 1]);
      await receipt(alice, m2, 'm.read.private');
      assert.deepEqual(await main(), [1, 1]);
      await room.message(ctx.store, carol, 'I am here');
      assert.deepEqual(await main(carol), [0, 0]);
      assert.ok(m3.stream > m2.stream);
      await bulkSend('four');
      assert.deepEqual(await main(carol), [1, 0]);
      assert.deepEqual(await main(dave), [4, 2]);
    });

    it('sums rooms separately', async function () {
      await bigSetup();
      const other = new FakeRoom();
      await other.create(ctx.store, bob);
      await other.member(ctx.store, alice, alice, 'join');
      await bulkSend('one');
      await other.send(ctx.store, 'm.room.message', bob, { body: 'o' }, undefined, { pushBulk: bulk({ highlight: true }) });
      await other.send(ctx.store, 'm.room.message', bob, { body: 'o' }, undefined, { pushBulk: bulk() });
      const all = await ctx.store.notifications.getUnreadCounts(alice, [room.roomId, other.roomId, room.roomId], ctx.store.currentPosition());
      assert.deepEqual(all.get(room.roomId)?.main, { notification_count: 1, highlight_count: 0 });
      assert.deepEqual(all.get(other.roomId)?.main, { notification_count: 2, highlight_count: 1 });
      assert.deepEqual(await main(carol), [1, 0], 'carol is not in the other room');
    });

    it('stores nothing for a result that neither notifies nor highlights', async function () {
      await bigSetup();
      await room.send(ctx.store, 'm.room.message', bob, { body: 'quiet' }, undefined, { pushBulk: bulk({ notify: false }) });
      assert.deepEqual(await main(), [0, 0]);
      assert.deepEqual(await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false }), []);
    });

    it('writes the bulk result atomically with the event', async function () {
      await bigSetup();
      const ev = room.build('m.room.message', bob, { body: 'once' });
      await ctx.store.rooms.persistEvent(room.input(ev, { pushBulk: bulk() }));
      await assertConflict(ctx.store.rooms.persistEvent(room.input(ev, { pushBulk: bulk({ highlight: true }) })));
      assert.deepEqual(await main(), [1, 0]);
      const txn = { userId: bob, deviceId: 'D', txnId: 't' };
      await room.message(ctx.store, bob, 'first', { txn });
      const dup = room.build('m.room.message', bob, { body: 'dup' });
      await assertConflict(ctx.store.rooms.persistEvent(room.input(dup, { txn, pushBulk: bulk() })));
      assert.deepEqual(await main(), [1, 0]);
      assert.deepEqual((await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false })).length, 1);
    });

    it('lists bulk results with per-user rows newest first, with actions and read state', async function () {
      await bigSetup();
      const m1 = await bulkSend('one');
      const m2 = await bulkSend('two', { except: [alice], rows: [action(alice, { highlight: true })] });
      const m3 = await bulkSend('three', { highlight: true });
      const m4 = await notify('four');
      const m5 = await bulkSend('five', { except: [alice] });
      const m6 = await bulkSend('six');
      await receipt(alice, m3);

      const list = await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false });
      assert.deepEqual(list.map((n) => n.eventId), [m6, m4, m3, m2, m1].map((m) => m.eventId));
      assert.deepEqual(list.map((n) => n.stream), [m6, m4, m3, m2, m1].map((m) => m.stream));
      assert.deepEqual(list.map((n) => n.read), [false, false, true, true, true]);
      assert.deepEqual(list.map((n) => n.highlight), [false, false, true, true, false]);
      assert.deepEqual(list[0].actions, ['notify']);
      assert.deepEqual(list[2].actions, action(alice, { highlight: true }).actions);
      assert.deepEqual(list.map((n) => n.ts), [m6, m4, m3, m2, m1].map((m) => m.pdu.origin_server_ts));
      assert.ok(list.every((n) => n.roomId === room.roomId));

      assert.deepEqual(
        (await ctx.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: true })).map((n) => n.eventId),
        [m3.eventId, m2.eventId],
      );
      assert.deepEqual(await ctx.store.notifications.getNotifications(bob, { limit: 10, onlyHighlight: false }), [], 'not the sender');
      assert.deepEqual(
        (await ctx.store.notifications.getNotifications(carol, { limit: 10, onlyHighlight: false })).map((n) => n.eventId),
        [m6, m5, m3, m2, m1].map((m) => m.eventId),
      );
      const ids = (ns: { eventId: string }[]) => ns.map((n) => n.eventId);
      const page1 = await ctx.store.notifications.getNotifications(alice, { limit: 2, onlyHighlight: false });
      assert.deepEqual(ids(page1), ids([m6, m4]));
      const page2 = await ctx.store.notifications.getNotifications(alice, { before: page1[1].stream, limit: 2, onlyHighlight: false });
      assert.deepEqual(ids(page2), ids([m3, m2]));
      const page3 = await ctx.store.notifications.getNotifications(alice, { before: page2[1].stream, limit: 2, onlyHighlight: false });
      assert.deepEqual(ids(page3), ids([m1]));
    });

    it('lists results of rooms left since and of every join interval, not those in between', async function () {
      await bigSetup();
      const other = new FakeRoom();
      await other.create(ctx.store, bob);
      await other.member(ctx.store, carol, carol, 'join');
      const otherBulk = (body: string) => other.send(ctx.store, 'm.room.message', bob, { body }, undefined, { pushBulk: bulk() });
      const a = await bulkSend('a');
      const o1 = await otherBulk('o1');
      await room.member(ctx.store, carol, carol, 'leave');
      await bulkSend('while away');
      const o2 = await otherBulk('o2');
      await room.member(ctx.store, carol, carol, 'join');
      const b = await bulkSend('b');
      await other.member(ctx.store, carol, carol, 'leave');
      await otherBulk('o3, after leaving');
      const c = await bulkSend('c');

      const list = await ctx.store.notifications.getNotifications(carol, { limit: 10, onlyHighlight: false });
      assert.deepEqual(list.map((n) => n.eventId), [c, b, o2, o1, a].map((m) => m.eventId));
      assert.deepEqual(list.map((n) => n.roomId), [room, room, other, other, room].map((r) => r.roomId));
      assert.deepEqual(list.map((n) => n.read), [false, false, true, true, true], 'own leave events read what came before');
      const page = await ctx.store.notifications.getNotifications(carol, { before: b.stream, limit: 2, onlyHighlight: false });
      assert.deepEqual(page.map((n) => n.eventId), [o2, o1].map((m) => m.eventId));
    });
  });
}
