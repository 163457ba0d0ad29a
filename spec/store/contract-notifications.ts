// Contract: push actions written with events, unread counts and the notification list
// (NotificationStore in src/store/chat-types.ts).

import assert from 'node:assert/strict';
import type { JsonObject } from '../../src/protocol/types.js';
import type { PushActionInput, ReceiptThread, ReceiptType, RoomUnreadCounts } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { assertConflict, FakeRoom, userId, type SentEvent } from './fixtures.js';

export function describeNotificationContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');

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
}
