// Contract: the admin store (AdminStore in src/store/admin-types.ts).

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, SERVER, userId } from './fixtures.js';

export function describeAdminContract(ctx: ContractContext): void {
  const newUser = (local: string, displayname: string | null = null) =>
    ctx.store.accounts.createUser({ userId: userId(local), passwordHash: null, admin: false, createdTs: 1, displayname });

  describe('admin', function () {
    it('lists users in ID order with offset, limit, name filter and deactivated ones on request', async function () {
      await newUser('carol', 'Carol');
      await newUser('alice', 'Alice Smith');
      await newUser('bob', '100%_sure');
      await ctx.store.accounts.deactivateUser(userId('carol'));
      const active = await ctx.store.admin.listUsers({ from: 0, limit: 10, deactivated: false });
      assert.deepEqual(active.users.map((u) => u.userId), [userId('alice'), userId('bob')]);
      assert.equal(active.total, 2);
      const all = await ctx.store.admin.listUsers({ from: 1, limit: 1, deactivated: true });
      assert.deepEqual(all.users.map((u) => u.userId), [userId('bob')]);
      assert.equal(all.total, 3);
      const bySmith = await ctx.store.admin.listUsers({ from: 0, limit: 10, deactivated: true, name: 'smith' });
      assert.deepEqual(bySmith.users.map((u) => u.userId), [userId('alice')]);
      const literal = await ctx.store.admin.listUsers({ from: 0, limit: 10, deactivated: true, name: '%_' });
      assert.deepEqual(literal.users.map((u) => u.userId), [userId('bob')], '% and _ are literal');

      await ctx.store.admin.setAdmin(userId('bob'), true);
      assert.equal((await ctx.store.accounts.getUser(userId('bob')))?.admin, true);
      await ctx.store.admin.reactivateUser(userId('carol'));
      assert.equal((await ctx.store.accounts.getUser(userId('carol')))?.deactivated, false);
    });

    it('deletes a room completely, keeps its block, and leaves other rooms alone', async function () {
      const alice = userId('alice');
      const room = new FakeRoom();
      const other = new FakeRoom();
      await room.create(ctx.store, alice);
      await other.create(ctx.store, alice);
      await room.message(ctx.store, alice, 'doomed words');
      const kept = await other.message(ctx.store, alice, 'kept words');
      await ctx.store.rooms.createAlias(`#doomed:${SERVER}`, room.roomId, alice);
      await ctx.store.userData.setAccountData(alice, room.roomId, 'm.tag', { tags: {} });
      await ctx.store.admin.setRoomBlocked(room.roomId, true);
      assert.deepEqual((await ctx.store.admin.listRooms()).map((r) => r.roomId).sort(), [room.roomId, other.roomId].sort());

      assert.equal(await ctx.store.admin.deleteRoom(room.roomId), true);
      assert.equal(await ctx.store.rooms.getRoom(room.roomId), null);
      assert.deepEqual(await ctx.store.rooms.getCurrentState(room.roomId), []);
      assert.equal(await ctx.store.rooms.getMembership(room.roomId, alice), null);
      assert.equal(await ctx.store.rooms.getAlias(`#doomed:${SERVER}`), null);
      assert.equal(await ctx.store.userData.getAccountData(alice, room.roomId, 'm.tag'), null);
      assert.deepEqual(await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 10 }), []);
      const q = { words: ['words'], roomIds: [room.roomId, other.roomId], keys: ['content.body' as const], order: 'recent' as const, limit: 10 };
      assert.deepEqual((await ctx.store.search.searchEvents(q)).map((h) => h.event.eventId), [kept.eventId]);
      assert.equal(await ctx.store.admin.isRoomBlocked(room.roomId), true);
      assert.deepEqual((await ctx.store.admin.listRooms()).map((r) => r.roomId), [other.roomId]);
      assert.equal(await ctx.store.admin.deleteRoom(room.roomId), false);
      await ctx.store.admin.setRoomBlocked(room.roomId, false);
      assert.equal(await ctx.store.admin.isRoomBlocked(room.roomId), false);
    });

    it('purges message history up to a position, keeping state, the latest event and (unless asked) local senders', async function () {
      const alice = userId('alice');
      const remote = '@zed:remote.example';
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const m1 = await room.message(ctx.store, alice, 'local old');
      const m2 = await room.message(ctx.store, remote, 'remote old');
      const cut = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'state stays' }, '');
      const m3 = await room.message(ctx.store, remote, 'remote new');
      assert.equal(await ctx.store.admin.purgeHistory(room.roomId, cut.stream, { includeLocal: false, serverName: SERVER }), 1);
      const ids = async () =>
        (await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, to: ctx.store.currentPosition(), limit: 50 })).map((e) => e.eventId);
      let left = await ids();
      assert.ok(left.includes(m1.eventId) && !left.includes(m2.eventId) && left.includes(cut.eventId) && left.includes(m3.eventId));
      assert.equal(await ctx.store.admin.purgeHistory(room.roomId, m3.stream, { includeLocal: true, serverName: SERVER }), 1);
      left = await ids();
      assert.ok(!left.includes(m1.eventId), 'local events go when asked');
      assert.ok(left.includes(m3.eventId), 'the forward extremity stays');
      assert.equal((await ctx.store.rooms.getCurrentState(room.roomId)).length, 6, 'all state stays');
    });
  });
}
