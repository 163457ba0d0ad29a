// Contract: resolved state (current, at a position, changes, history) and memberships.

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, SERVER, sortedState, stateMap, userId } from './fixtures.js';

export function describeStateContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');

  describe('room state', function () {
    it('tracks current state, latest value per key', async function () {
      const room = new FakeRoom();
      const [create, join, pl, jr, hv] = await room.create(ctx.store, alice);
      const topic1 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'one' }, '');
      await room.message(ctx.store, alice, 'not state');
      const topic2 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'two' }, '');
      const state = stateMap(await ctx.store.rooms.getCurrentState(room.roomId));
      assert.deepEqual(
        state,
        new Map([
          ['m.room.create|', create.eventId],
          [`m.room.member|${alice}`, join.eventId],
          ['m.room.power_levels|', pl.eventId],
          ['m.room.join_rules|', jr.eventId],
          ['m.room.history_visibility|', hv.eventId],
          ['m.room.topic|', topic2.eventId],
        ]),
      );
      assert.notEqual(state.get('m.room.topic|'), topic1.eventId);
      assert.deepEqual(await ctx.store.rooms.getCurrentState(`!empty:${SERVER}`), []);
    });

    it('answers state as it was right after a past stream position', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const t1 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'one' }, '');
      const bobJoin = await room.member(ctx.store, bob, bob, 'join');
      const msg = await room.message(ctx.store, bob, 'hi');
      const t2 = await room.send(ctx.store, 'm.room.topic', bob, { topic: 'two' }, '');
      const bobLeave = await room.member(ctx.store, bob, bob, 'leave');
      // Another room's activity in between must not leak in.
      const other = new FakeRoom();
      await other.create(ctx.store, carol);

      assert.deepEqual(await ctx.store.rooms.getStateAt(room.roomId, created[0].stream - 1), []);
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateAt(room.roomId, created[0].stream)), new Map([['m.room.create|', created[0].eventId]]));

      const atMsg = stateMap(await ctx.store.rooms.getStateAt(room.roomId, msg.stream));
      assert.equal(atMsg.get('m.room.topic|'), t1.eventId);
      assert.equal(atMsg.get(`m.room.member|${bob}`), bobJoin.eventId);
      assert.equal(atMsg.size, 7);

      const atT2 = stateMap(await ctx.store.rooms.getStateAt(room.roomId, t2.stream));
      assert.equal(atT2.get('m.room.topic|'), t2.eventId);
      assert.equal(atT2.get(`m.room.member|${bob}`), bobJoin.eventId);

      const latest = await ctx.store.rooms.getStateAt(room.roomId, ctx.store.currentPosition());
      assert.deepEqual(sortedState(latest), sortedState(await ctx.store.rooms.getCurrentState(room.roomId)));
      assert.equal(stateMap(latest).get(`m.room.member|${bob}`), bobLeave.eventId);
    });

    it('applies state deltas that differ from the event (state resolution)', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const t1 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'one' }, '');
      const t2 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'two' }, '');
      // A message whose arrival made state resolution go back to t1 and pick a new name.
      const name = room.build('m.room.name', bob, { name: 'forked' }, '');
      await ctx.store.rooms.persistEvent(room.input(name, { stateDelta: [] }));
      const msg = await room.message(ctx.store, alice, 'merge', {
        stateDelta: [
          { type: 'm.room.topic', stateKey: '', eventId: t1.eventId },
          { type: 'm.room.name', stateKey: '', eventId: name.eventId },
        ],
      });
      const state = stateMap(await ctx.store.rooms.getCurrentState(room.roomId));
      assert.equal(state.get('m.room.topic|'), t1.eventId);
      assert.equal(state.get('m.room.name|'), name.eventId);
      assert.equal(stateMap(await ctx.store.rooms.getStateAt(room.roomId, msg.stream - 1)).get('m.room.topic|'), t2.eventId);
      assert.deepEqual(
        await ctx.store.rooms.getStateHistory(room.roomId, 'm.room.topic', ''),
        [
          { stream: t1.stream, eventId: t1.eventId },
          { stream: t2.stream, eventId: t2.eventId },
          { stream: msg.stream, eventId: t1.eventId },
        ],
      );
    });

    it('reports state changes in (from, to], latest value per key', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const base = created[created.length - 1].stream;
      const t1 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'one' }, '');
      const bobJoin = await room.member(ctx.store, bob, bob, 'join');
      const t2 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'two' }, '');
      await room.message(ctx.store, alice, 'x');
      const t3 = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'three' }, '');

      assert.deepEqual(
        stateMap(await ctx.store.rooms.getStateChanges(room.roomId, base, t2.stream)),
        new Map([
          ['m.room.topic|', t2.eventId],
          [`m.room.member|${bob}`, bobJoin.eventId],
        ]),
      );
      // Exclusive lower bound, inclusive upper bound.
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateChanges(room.roomId, t1.stream, t1.stream)), new Map());
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateChanges(room.roomId, t1.stream - 1, t1.stream)), new Map([['m.room.topic|', t1.eventId]]));
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateChanges(room.roomId, t2.stream, t3.stream)), new Map([['m.room.topic|', t3.eventId]]));
      assert.equal((await ctx.store.rooms.getStateChanges(room.roomId, 0, ctx.store.currentPosition())).length, 7);
      assert.deepEqual(await ctx.store.rooms.getStateChanges(room.roomId, t3.stream, ctx.store.currentPosition()), []);
    });

    it('lists the history of one state key, oldest first', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const j = await room.member(ctx.store, bob, bob, 'join');
      const l = await room.member(ctx.store, bob, bob, 'leave');
      const j2 = await room.member(ctx.store, bob, bob, 'join');
      assert.deepEqual(await ctx.store.rooms.getStateHistory(room.roomId, 'm.room.member', bob), [
        { stream: j.stream, eventId: j.eventId },
        { stream: l.stream, eventId: l.eventId },
        { stream: j2.stream, eventId: j2.eventId },
      ]);
      assert.deepEqual(await ctx.store.rooms.getStateHistory(room.roomId, 'm.room.member', carol), []);
      assert.equal((await ctx.store.rooms.getStateHistory(room.roomId, 'm.room.history_visibility', '')).length, 1);
    });
  });

  describe('memberships', function () {
    it('derives memberships from member events in the state delta', async function () {
      const room = new FakeRoom();
      const [, aliceJoin] = await room.create(ctx.store, alice);
      const invite = await room.member(ctx.store, alice, bob, 'invite');
      assert.deepEqual(await ctx.store.rooms.getMembership(room.roomId, bob), {
        roomId: room.roomId,
        userId: bob,
        membership: 'invite',
        eventId: invite.eventId,
        stream: invite.stream,
      });
      assert.equal((await ctx.store.rooms.getMembership(room.roomId, alice))?.eventId, aliceJoin.eventId);
      assert.equal(await ctx.store.rooms.getMembership(room.roomId, carol), null);

      const bobJoin = await room.member(ctx.store, bob, bob, 'join');
      await room.member(ctx.store, alice, carol, 'ban');
      assert.deepEqual((await ctx.store.rooms.getRoomMembers(room.roomId)).map((m) => m.userId).sort(), [alice, bob].sort());
      assert.deepEqual((await ctx.store.rooms.getRoomMembers(room.roomId, ['ban'])).map((m) => m.userId), [carol]);
      assert.equal((await ctx.store.rooms.getRoomMembers(room.roomId, ['join', 'ban'])).length, 3);
      assert.equal((await ctx.store.rooms.getMembership(room.roomId, bob))?.eventId, bobJoin.eventId);
    });

    it('lists a user\'s rooms, optionally by membership', async function () {
      const r1 = new FakeRoom();
      const r2 = new FakeRoom();
      const r3 = new FakeRoom();
      await r1.create(ctx.store, alice);
      await r2.create(ctx.store, bob);
      await r3.create(ctx.store, bob);
      await r2.member(ctx.store, bob, alice, 'invite');
      await r3.member(ctx.store, alice, alice, 'join');
      await r3.member(ctx.store, alice, alice, 'leave');
      const all = await ctx.store.rooms.getRoomsForUser(alice);
      assert.deepEqual(
        new Map(all.map((m) => [m.roomId, m.membership])),
        new Map([
          [r1.roomId, 'join'],
          [r2.roomId, 'invite'],
          [r3.roomId, 'leave'],
        ]),
      );
      assert.deepEqual((await ctx.store.rooms.getRoomsForUser(alice, ['join'])).map((m) => m.roomId), [r1.roomId]);
      assert.deepEqual((await ctx.store.rooms.getRoomsForUser(alice, ['invite', 'leave'])).map((m) => m.roomId).sort(), [r2.roomId, r3.roomId].sort());
      assert.deepEqual(await ctx.store.rooms.getRoomsForUser(carol), []);
    });

    it('takes the membership from a previously stored event named by the delta', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const join = await room.member(ctx.store, bob, bob, 'join');
      const leave = await room.member(ctx.store, bob, bob, 'leave');
      assert.equal((await ctx.store.rooms.getMembership(room.roomId, bob))?.membership, 'leave');
      // State resolution restores the older join event via an unrelated event's delta.
      const msg = await room.message(ctx.store, alice, 'resolve', {
        stateDelta: [{ type: 'm.room.member', stateKey: bob, eventId: join.eventId }],
      });
      const m = await ctx.store.rooms.getMembership(room.roomId, bob);
      assert.equal(m?.membership, 'join');
      assert.equal(m?.eventId, join.eventId);
      assert.equal(m?.stream, msg.stream, 'stream is where the membership took effect');
      assert.ok(leave.stream < msg.stream);
      assert.deepEqual((await ctx.store.rooms.getRoomMembers(room.roomId)).map((r) => r.userId).sort(), [alice, bob].sort());
    });

    it('reports a user\'s membership changes in (from, to], latest per room', async function () {
      const r1 = new FakeRoom();
      const r2 = new FakeRoom();
      await r1.create(ctx.store, alice);
      await r2.create(ctx.store, alice);
      const start = ctx.store.currentPosition();
      const inv1 = await r1.member(ctx.store, alice, bob, 'invite');
      const join1 = await r1.member(ctx.store, bob, bob, 'join');
      const inv2 = await r2.member(ctx.store, alice, bob, 'invite');
      const mid = ctx.store.currentPosition();
      await r1.message(ctx.store, bob, 'noise');
      await r1.member(ctx.store, alice, carol, 'invite');
      const leave1 = await r1.member(ctx.store, bob, bob, 'leave');

      const changes = await ctx.store.rooms.getMembershipChanges(bob, start, mid);
      assert.deepEqual(
        new Map(changes.map((c) => [c.roomId, [c.membership, c.eventId, c.stream]])),
        new Map([
          [r1.roomId, ['join', join1.eventId, join1.stream]],
          [r2.roomId, ['invite', inv2.eventId, inv2.stream]],
        ]),
      );
      assert.ok(changes.every((c) => c.userId === bob));
      const later = await ctx.store.rooms.getMembershipChanges(bob, mid, ctx.store.currentPosition());
      assert.deepEqual(later.map((c) => [c.roomId, c.membership, c.eventId]), [[r1.roomId, 'leave', leave1.eventId]]);
      const exact = await ctx.store.rooms.getMembershipChanges(bob, inv1.stream - 1, inv1.stream);
      assert.deepEqual(exact.map((c) => c.membership), ['invite']);
      assert.deepEqual(await ctx.store.rooms.getMembershipChanges(bob, inv1.stream, inv1.stream), []);
      assert.deepEqual(await ctx.store.rooms.getMembershipChanges(carol, start, mid), []);
    });
  });
}
