// Contract: room records, event persistence, idempotency, redaction, aliases, directory, forget.

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import { assertConflict, FakeRoom, redact, SERVER, userId } from './fixtures.js';

export function describeRoomContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');

  describe('rooms and events', function () {
    it('records rooms and rejects a second createRoom', async function () {
      const record = { roomId: `!r1:${SERVER}`, roomVersion: '11' as const, creator: alice, createdTs: 42 };
      await ctx.store.rooms.createRoom(record);
      assert.deepEqual(await ctx.store.rooms.getRoom(record.roomId), record);
      await assertConflict(ctx.store.rooms.createRoom({ ...record, creator: bob, roomVersion: '10' }));
      assert.deepEqual(await ctx.store.rooms.getRoom(record.roomId), record);
      assert.equal(await ctx.store.rooms.getRoom(`!nope:${SERVER}`), null);
    });

    it('writes the room record with the room\'s first event (createsRoom), and neither when the room exists', async function () {
      const room = new FakeRoom();
      const record = { roomId: room.roomId, roomVersion: '11' as const, creator: alice, createdTs: 7 };
      const create = room.build('m.room.create', alice, { room_version: '11' }, '');
      const join = room.build('m.room.member', alice, { membership: 'join' }, alice);
      // Queued together, as createRoom does: the member event depends on the create event.
      const [c, j] = await Promise.all([
        ctx.store.rooms.persistEvent(room.input(create, { createsRoom: record })),
        ctx.store.rooms.persistEvent(room.input(join, { dependsOn: create.eventId })),
      ]);
      assert.ok(j.stream > c.stream);
      assert.deepEqual(await ctx.store.rooms.getRoom(room.roomId), record);
      assert.equal((await ctx.store.rooms.getEvent(join.eventId))?.roomId, room.roomId);

      // Again with the same room ID: conflict, and nothing of either event is stored.
      const again = new FakeRoom(room.roomId);
      const create2 = again.build('m.room.create', bob, { room_version: '11' }, '');
      const join2 = again.build('m.room.member', bob, { membership: 'join' }, bob);
      const [c2, j2] = await Promise.allSettled([
        ctx.store.rooms.persistEvent(again.input(create2, { createsRoom: { ...record, creator: bob } })),
        ctx.store.rooms.persistEvent(again.input(join2, { dependsOn: create2.eventId })),
      ]);
      await assertConflict(c2.status === 'rejected' ? Promise.reject(c2.reason) : Promise.resolve());
      await assertConflict(j2.status === 'rejected' ? Promise.reject(j2.reason) : Promise.resolve());
      assert.equal(await ctx.store.rooms.getEvent(create2.eventId), null);
      assert.equal(await ctx.store.rooms.getEvent(join2.eventId), null);
      assert.deepEqual(await ctx.store.rooms.getRoom(room.roomId), record);
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [join.eventId]);
    });

    it('persists events and reads them back verbatim with their stream positions', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const msg = await room.message(ctx.store, alice, 'hello');
      const streams = [...created, msg].map((e) => e.stream);
      for (let i = 1; i < streams.length; i++) assert.ok(streams[i] > streams[i - 1], 'positions increase');
      assert.ok(ctx.store.currentPosition() >= msg.stream);

      const got = await ctx.store.rooms.getEvent(msg.eventId);
      assert.deepEqual(got, { eventId: msg.eventId, roomId: room.roomId, stream: msg.stream, pdu: msg.pdu, redactedBy: null, txn: null, outlier: false, softFailed: false, rejected: null });
      assert.equal(await ctx.store.rooms.getEvent('$missing'), null);

      const many = await ctx.store.rooms.getEvents([created[0].eventId, '$missing', msg.eventId]);
      assert.deepEqual([...many.keys()].sort(), [created[0].eventId, msg.eventId].sort());
      assert.deepEqual(many.get(created[0].eventId)?.pdu, created[0].pdu);
      assert.equal((await ctx.store.rooms.getEvents([])).size, 0);
    });

    it('hands out PDUs the caller owns and is unaffected by later mutation of the input', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const ev = room.build('m.room.message', alice, { body: 'original' });
      const input = room.input(ev);
      const pending = ctx.store.rooms.persistEvent(input);
      ev.pdu.content.body = 'mutated-after-call';
      await pending;
      const first = await ctx.store.rooms.getEvent(ev.eventId);
      assert.equal(first?.pdu.content.body, 'original');
      first!.pdu.content.body = 'mutated-after-read';
      assert.equal((await ctx.store.rooms.getEvent(ev.eventId))?.pdu.content.body, 'original');
    });

    it('replaces forward extremities with each event', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const a = await room.message(ctx.store, alice, 'a');
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [a.eventId]);
      const b = room.build('m.room.message', bob, { body: 'b' });
      await ctx.store.rooms.persistEvent(room.input(b, { forwardExtremities: [a.eventId, b.eventId] }));
      assert.deepEqual((await ctx.store.rooms.getForwardExtremities(room.roomId)).sort(), [a.eventId, b.eventId].sort());
      const c = await room.message(ctx.store, alice, 'c');
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [c.eventId]);
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(`!other:${SERVER}`), []);
    });

    it('records transaction IDs with the event', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const txn = { userId: alice, deviceId: 'DEV', txnId: 'txn-1' };
      const sent = await room.message(ctx.store, alice, 'once', { txn });
      assert.equal(await ctx.store.rooms.getEventIdForTxn(room.roomId, alice, 'DEV', 'txn-1'), sent.eventId);
      assert.deepEqual((await ctx.store.rooms.getEvent(sent.eventId))?.txn, { deviceId: 'DEV', txnId: 'txn-1' });
      assert.equal(await ctx.store.rooms.getEventIdForTxn(room.roomId, alice, 'OTHER', 'txn-1'), null);
      assert.equal(await ctx.store.rooms.getEventIdForTxn(`!other:${SERVER}`, alice, 'DEV', 'txn-1'), null);
      // The same transaction ID from another device, or in another room, is a different request.
      await room.message(ctx.store, alice, 'other device', { txn: { ...txn, deviceId: 'DEV2' } });
      const other = new FakeRoom();
      await other.create(ctx.store, alice);
      await other.message(ctx.store, alice, 'other room', { txn });
    });

    it('rejects a reused transaction ID with StoreConflictError and writes nothing', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const txn = { userId: alice, deviceId: 'DEV', txnId: 'dup' };
      const first = await room.message(ctx.store, alice, 'first', { txn });
      const stateBefore = await ctx.store.rooms.getCurrentState(room.roomId);

      // A state event, so a partial write would also show up in state, membership and extremities.
      const dup = room.build('m.room.member', alice, { membership: 'leave' }, alice);
      await assertConflict(
        ctx.store.rooms.persistEvent({ eventId: dup.eventId, pdu: dup.pdu, stateDelta: [{ type: 'm.room.member', stateKey: alice, eventId: dup.eventId }], forwardExtremities: [dup.eventId], txn }),
      );
      assert.equal(await ctx.store.rooms.getEvent(dup.eventId), null);
      assert.equal(await ctx.store.rooms.getEventIdForTxn(room.roomId, alice, 'DEV', 'dup'), first.eventId);
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [first.eventId]);
      assert.deepEqual(await ctx.store.rooms.getCurrentState(room.roomId), stateBefore);
      assert.equal((await ctx.store.rooms.getMembership(room.roomId, alice))?.membership, 'join');
      const timeline = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 100 });
      assert.ok(!timeline.some((e) => e.eventId === dup.eventId));

      // The store keeps working and positions keep increasing.
      const next = await room.message(ctx.store, alice, 'after');
      assert.ok(next.stream > first.stream);
      assert.ok(ctx.store.currentPosition() >= next.stream);
    });

    it('a conflicting write does not fail concurrent writes', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const txn = { userId: alice, deviceId: 'DEV', txnId: 't' };
      await room.message(ctx.store, alice, 'first', { txn });
      const others = Array.from({ length: 5 }, () => new FakeRoom());
      await Promise.all(others.map((r) => ctx.store.rooms.createRoom({ roomId: r.roomId, roomVersion: '11', creator: bob, createdTs: 1 })));
      const dup = room.build('m.room.message', alice, { body: 'dup' });
      const results = await Promise.allSettled([
        ...others.map((r) => r.message(ctx.store, bob, 'concurrent')),
        ctx.store.rooms.persistEvent(room.input(dup, { txn })),
        ...others.map((r) => r.message(ctx.store, bob, 'concurrent 2')),
      ]);
      assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
      assert.equal(results[5].status, 'rejected');
      const maxes = await ctx.store.rooms.getRoomsMaxStream(others.map((r) => r.roomId));
      assert.equal(maxes.size, others.length);
    });

    it('applies a redaction atomically: target PDU replaced, redactedBy set', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const target = await room.message(ctx.store, bob, 'secret');
      const redactedPdu = redact(target.pdu);
      const redaction = await room.send(ctx.store, 'm.room.redaction', alice, { redacts: target.eventId, reason: 'spam' }, undefined, {
        redaction: { targetEventId: target.eventId, redactedPdu },
      });
      const got = await ctx.store.rooms.getEvent(target.eventId);
      assert.deepEqual(got?.pdu, redactedPdu);
      assert.equal(got?.redactedBy, redaction.eventId);
      assert.equal(got?.stream, target.stream, 'redaction keeps the original position');
      const r = await ctx.store.rooms.getEvent(redaction.eventId);
      assert.deepEqual(r?.pdu.content, { redacts: target.eventId, reason: 'spam' });
      assert.equal(r?.redactedBy, null);
      const page = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 2 });
      assert.deepEqual(page.map((e) => e.eventId), [redaction.eventId, target.eventId]);
      assert.deepEqual(page[1].pdu.content, {});
    });

    it('stores a redaction without a storage effect as a plain event', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const target = await room.message(ctx.store, bob, 'kept');
      await room.send(ctx.store, 'm.room.redaction', bob, { redacts: '$unknown' });
      assert.equal((await ctx.store.rooms.getEvent(target.eventId))?.redactedBy, null);
      assert.equal((await ctx.store.rooms.getEvent(target.eventId))?.pdu.content.body, 'kept');
    });
  });

  describe('aliases, directory, forgotten rooms', function () {
    const roomId = `!aliased:${SERVER}`;

    it('creates, resolves, lists and deletes aliases', async function () {
      await ctx.store.rooms.createAlias(`#a:${SERVER}`, roomId, alice);
      await ctx.store.rooms.createAlias(`#b:${SERVER}`, roomId, bob);
      await ctx.store.rooms.createAlias(`#c:${SERVER}`, `!other:${SERVER}`, bob);
      assert.deepEqual(await ctx.store.rooms.getAlias(`#a:${SERVER}`), { roomId, creator: alice });
      assert.equal(await ctx.store.rooms.getAlias(`#zz:${SERVER}`), null);
      assert.deepEqual((await ctx.store.rooms.getAliasesForRoom(roomId)).sort(), [`#a:${SERVER}`, `#b:${SERVER}`]);
      assert.equal(await ctx.store.rooms.deleteAlias(`#a:${SERVER}`), true);
      assert.equal(await ctx.store.rooms.deleteAlias(`#a:${SERVER}`), false);
      assert.equal(await ctx.store.rooms.getAlias(`#a:${SERVER}`), null);
      assert.deepEqual(await ctx.store.rooms.getAliasesForRoom(roomId), [`#b:${SERVER}`]);
      assert.deepEqual(await ctx.store.rooms.getAliasesForRoom(`!none:${SERVER}`), []);
    });

    // Not spelled out in types.ts; the API layer maps it to M_ROOM_IN_USE-style 409s.
    it('rejects an alias that is taken with StoreConflictError', async function () {
      await ctx.store.rooms.createAlias(`#a:${SERVER}`, roomId, alice);
      await assertConflict(ctx.store.rooms.createAlias(`#a:${SERVER}`, `!other:${SERVER}`, bob));
      assert.deepEqual(await ctx.store.rooms.getAlias(`#a:${SERVER}`), { roomId, creator: alice });
    });

    it('keeps room directory visibility, private by default', async function () {
      const r2 = `!r2:${SERVER}`;
      assert.equal(await ctx.store.rooms.getRoomVisibility(roomId), 'private');
      assert.deepEqual(await ctx.store.rooms.listPublicRooms(), []);
      await ctx.store.rooms.setRoomVisibility(roomId, 'public');
      await ctx.store.rooms.setRoomVisibility(r2, 'public');
      assert.equal(await ctx.store.rooms.getRoomVisibility(roomId), 'public');
      assert.deepEqual((await ctx.store.rooms.listPublicRooms()).sort(), [roomId, r2].sort());
      await ctx.store.rooms.setRoomVisibility(roomId, 'private');
      assert.equal(await ctx.store.rooms.getRoomVisibility(roomId), 'private');
      assert.deepEqual(await ctx.store.rooms.listPublicRooms(), [r2]);
    });

    it('forgets rooms per user', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      await room.member(ctx.store, alice, alice, 'leave');
      assert.equal(await ctx.store.rooms.isRoomForgotten(alice, room.roomId), false);
      await ctx.store.rooms.forgetRoom(alice, room.roomId);
      await ctx.store.rooms.forgetRoom(alice, room.roomId);
      assert.equal(await ctx.store.rooms.isRoomForgotten(alice, room.roomId), true);
      assert.equal(await ctx.store.rooms.isRoomForgotten(bob, room.roomId), false);
    });

    // Inferred (Synapse semantics): forgetting applies to the membership it was made under.
    it('un-forgets a room when the user joins again', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      await room.member(ctx.store, alice, alice, 'leave');
      await ctx.store.rooms.forgetRoom(alice, room.roomId);
      await room.member(ctx.store, alice, alice, 'join');
      assert.equal(await ctx.store.rooms.isRoomForgotten(alice, room.roomId), false);
    });
  });
}
