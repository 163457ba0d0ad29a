// Contract: timeline paging (getRoomEvents) and per-room stream heads.

import { assert } from '../helpers/assert.js';
import type { RoomEventsQuery } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, SERVER, userId, type SentEvent } from './fixtures.js';

export function describeTimelineContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');

  describe('persistEvent dependsOn (pipelined writers)', function () {
    it('writes an event whose dependency is stored, queued in the same tick', async function () {
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const a = r.build('m.room.message', alice, { body: 'a' });
      const b = r.build('m.room.message', alice, { body: 'b' });
      const [ra, rb] = await Promise.all([
        ctx.store.rooms.persistEvent(r.input(a)),
        ctx.store.rooms.persistEvent(r.input(b, { dependsOn: a.eventId })),
      ]);
      assert.ok(rb.stream > ra.stream);
      assert.ok(await ctx.store.rooms.getEvent(b.eventId));
    });

    it('refuses, writing nothing, an event whose dependency failed to be written', async function () {
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const txn = { userId: alice, deviceId: 'D', txnId: 'dup' };
      await r.message(ctx.store, alice, 'first', { txn });
      const a = r.build('m.room.message', alice, { body: 'a' });
      const b = r.build('m.room.message', alice, { body: 'b' });
      const [ra, rb] = await Promise.allSettled([
        ctx.store.rooms.persistEvent(r.input(a, { txn })),
        ctx.store.rooms.persistEvent(r.input(b, { dependsOn: a.eventId })),
      ]);
      assert.equal(ra.status, 'rejected');
      assert.ok(rb.status === 'rejected' && (rb.reason as Error).name === 'StoreConflictError', String((rb as PromiseRejectedResult).reason));
      assert.equal(await ctx.store.rooms.getEvent(b.eventId), null);
    });
  });

  describe('timeline', function () {
    let room: FakeRoom;
    let events: SentEvent[];

    /** A room with 5 state events then 10 mixed events, interleaved with another room's events. */
    async function seed(): Promise<void> {
      room = new FakeRoom();
      const other = new FakeRoom();
      events = await room.create(ctx.store, alice);
      await other.create(ctx.store, bob);
      events.push(await room.member(ctx.store, bob, bob, 'join'));
      for (let i = 0; i < 10; i++) {
        const sender = i % 2 === 0 ? alice : bob;
        if (i % 3 === 0) events.push(await room.send(ctx.store, 'm.reaction', sender, { i }));
        else if (i === 7) events.push(await room.send(ctx.store, 'm.room.topic', sender, { topic: `t${i}` }, ''));
        else events.push(await room.message(ctx.store, sender, `msg ${i}`));
        await other.message(ctx.store, bob, `other ${i}`);
      }
    }

    const ids = (evs: { eventId: string }[]) => evs.map((e) => e.eventId);
    const query = (q: Partial<RoomEventsQuery>) =>
      ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 100, ...q });

    it('pages backwards from a position, newest first', async function () {
      await seed();
      const newestFirst = [...events].reverse();
      assert.deepEqual(ids(await query({ limit: 4 })), ids(newestFirst.slice(0, 4)));
      // `from` is inclusive going backwards.
      const from = newestFirst[3].stream;
      assert.deepEqual(ids(await query({ from, limit: 3 })), ids(newestFirst.slice(3, 6)));
      assert.deepEqual(ids(await query({})), ids(newestFirst));
      const page = await query({ limit: 1 });
      assert.deepEqual(page[0].pdu, events[events.length - 1].pdu);
      assert.equal(page[0].stream, events[events.length - 1].stream);
    });

    it('pages forwards from a position, oldest first', async function () {
      await seed();
      assert.deepEqual(ids(await query({ dir: 'f', from: 0, limit: 3 })), ids(events.slice(0, 3)));
      // `from` is exclusive going forwards.
      assert.deepEqual(ids(await query({ dir: 'f', from: events[2].stream, limit: 2 })), ids(events.slice(3, 5)));
      assert.deepEqual(ids(await query({ dir: 'f', from: 0 })), ids(events));
      assert.deepEqual(await query({ dir: 'f', from: events[events.length - 1].stream }), []);
    });

    it('honours the `to` bound in both directions', async function () {
      await seed();
      const [a, b, c, d] = [events[3], events[6], events[9], events[12]];
      // Backwards: stream <= from and stream > to.
      assert.deepEqual(ids(await query({ from: c.stream, to: a.stream })), ids(events.slice(4, 10).reverse()));
      assert.deepEqual(ids(await query({ from: c.stream, to: b.stream, limit: 2 })), ids([events[9], events[8]]));
      // Forwards: stream > from and stream <= to.
      assert.deepEqual(ids(await query({ dir: 'f', from: b.stream, to: d.stream })), ids(events.slice(7, 13)));
      assert.deepEqual(await query({ dir: 'f', from: b.stream, to: b.stream }), []);
      assert.deepEqual(await query({ from: b.stream, to: b.stream }), []);
    });

    it('filters by type, with a trailing * wildcard, and by excluded types', async function () {
      await seed();
      const ofType = (pred: (t: string) => boolean) => ids(events.filter((e) => pred(e.pdu.type)).reverse());
      assert.deepEqual(ids(await query({ types: ['m.room.message'] })), ofType((t) => t === 'm.room.message'));
      assert.deepEqual(ids(await query({ types: ['m.room.*'] })), ofType((t) => t.startsWith('m.room.')));
      assert.deepEqual(ids(await query({ types: ['m.reaction', 'm.room.topic'] })), ofType((t) => t === 'm.reaction' || t === 'm.room.topic'));
      assert.deepEqual(ids(await query({ notTypes: ['m.room.*'] })), ofType((t) => !t.startsWith('m.room.')));
      assert.deepEqual(ids(await query({ types: ['m.room.*'], notTypes: ['m.room.member', 'm.room.message'] })), ofType((t) => t.startsWith('m.room.') && t !== 'm.room.member' && t !== 'm.room.message'));
      assert.deepEqual(ids(await query({ types: ['*'] })), ofType(() => true));
      assert.deepEqual(await query({ types: [] }), [], 'an empty allow-list matches nothing');
      assert.deepEqual(ids(await query({ notTypes: [] })), ofType(() => true));
      // Wildcards are not regex or SQL patterns.
      assert.deepEqual(await query({ types: ['m.room._essage'] }), []);
      assert.deepEqual(await query({ types: ['m.room.%'] }), []);
      assert.deepEqual(await query({ types: ['M.ROOM.*'] }), [], 'type matching is case-sensitive');
    });

    it('filters by senders and excluded senders, combined with limit', async function () {
      await seed();
      const bySender = (s: string) => events.filter((e) => e.pdu.sender === s).reverse();
      assert.deepEqual(ids(await query({ senders: [bob] })), ids(bySender(bob)));
      assert.deepEqual(ids(await query({ notSenders: [bob] })), ids(bySender(alice)));
      assert.deepEqual(ids(await query({ senders: [alice, bob], notSenders: [alice] })), ids(bySender(bob)));
      assert.deepEqual(await query({ senders: [] }), []);
      const bobMessages = events.filter((e) => e.pdu.sender === bob && e.pdu.type === 'm.room.message');
      assert.deepEqual(ids(await query({ dir: 'f', from: 0, senders: [bob], types: ['m.room.message'], limit: 2 })), ids(bobMessages.slice(0, 2)));
    });

    it('returns nothing for unknown rooms or a zero limit', async function () {
      await seed();
      assert.deepEqual(await ctx.store.rooms.getRoomEvents({ roomId: `!none:${SERVER}`, dir: 'b', from: ctx.store.currentPosition(), limit: 10 }), []);
      assert.deepEqual(await query({ limit: 0 }), []);
    });

    it('reports the highest stream per room, omitting rooms without events', async function () {
      await seed();
      const other = new FakeRoom();
      await other.create(ctx.store, bob);
      const last = await other.message(ctx.store, bob, 'last');
      const max = await ctx.store.rooms.getRoomsMaxStream([room.roomId, other.roomId, `!none:${SERVER}`]);
      assert.deepEqual(
        max,
        new Map([
          [room.roomId, events[events.length - 1].stream],
          [other.roomId, last.stream],
        ]),
      );
      assert.equal((await ctx.store.rooms.getRoomsMaxStream([])).size, 0);
    });
  });
}
