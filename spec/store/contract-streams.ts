// Contract: the global stream under concurrency, close(), and durability across reopen.

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, userId } from './fixtures.js';

interface TrackedWrite {
  roomIndex: number;
  eventId: string;
  pos: number | null;
}

export function describeStreamContract(ctx: ContractContext): void {
  const alice = userId('alice');

  describe('stream positions under concurrency', function () {
    it('gives concurrent writes from many rooms unique positions, increasing within each room', async function () {
      const rooms = Array.from({ length: 20 }, () => new FakeRoom());
      const perRoom = await Promise.all(
        rooms.map(async (room, r) => {
          const streams: number[] = [];
          for (let i = 0; i < 10; i++) streams.push((await room.message(ctx.store, userId(`u${r}`), `m${i}`)).stream);
          return streams;
        }),
      );
      const accountData = await Promise.all(Array.from({ length: 20 }, (_, i) => ctx.store.userData.setAccountData(alice, '', `t${i}`, { i })));
      const all = [...perRoom.flat(), ...accountData];
      assert.equal(new Set(all).size, all.length, 'positions are unique');
      for (const streams of perRoom) {
        for (let i = 1; i < streams.length; i++) assert.ok(streams[i] > streams[i - 1], 'increasing within a room');
      }
      assert.ok(ctx.store.currentPosition() >= Math.max(...all));
      for (const [r, room] of rooms.entries()) {
        const timeline = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, limit: 100 });
        assert.deepEqual(timeline.map((e) => e.stream), perRoom[r]);
      }
    });

    it('never lets currentPosition pass an unfinished write, and readers below it miss nothing', async function () {
      const rooms = Array.from({ length: 30 }, () => new FakeRoom());
      const writes: TrackedWrite[] = [];
      const unresolved = new Set<TrackedWrite>();
      const snapshots: { current: number; unresolved: TrackedWrite[] }[] = [];
      const readerViews: { current: number; seen: Set<string> }[] = [];
      let done = false;

      // Snapshots are taken synchronously in their own macrotask, so a write counts as unresolved
      // only if its promise has not settled by then.
      const sampler = new Promise<void>((resolve) => {
        const tick = () => {
          snapshots.push({ current: ctx.store.currentPosition(), unresolved: [...unresolved] });
          if (done) resolve();
          else setImmediate(tick);
        };
        setImmediate(tick);
      });
      const reader = (async () => {
        while (!done) {
          const current = ctx.store.currentPosition();
          const seen = new Set<string>();
          for (const room of rooms) {
            const evs = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, to: current, limit: 1000 });
            for (const e of evs) seen.add(e.eventId);
          }
          readerViews.push({ current, seen });
          await new Promise((r) => setImmediate(r));
        }
      })();

      await Promise.all(
        rooms.map(async (room, roomIndex) => {
          for (let i = 0; i < 10; i++) {
            const ev = room.build('m.room.message', userId(`u${roomIndex}`), { body: `${i}` });
            const w: TrackedWrite = { roomIndex, eventId: ev.eventId, pos: null };
            writes.push(w);
            unresolved.add(w);
            const { stream } = await ctx.store.rooms.persistEvent(room.input(ev));
            w.pos = stream;
            unresolved.delete(w);
            // Interleave another stream so positions are not all room events.
            if (i % 3 === 0) await ctx.store.userData.setAccountData(alice, '', `k${roomIndex}`, { i });
          }
        }),
      );
      done = true;
      await Promise.all([sampler, reader]);

      assert.ok(snapshots.length > 1 && readerViews.length > 0);
      let previous = 0;
      for (const s of snapshots) {
        assert.ok(s.current >= previous, 'currentPosition never goes backwards');
        previous = s.current;
        for (const w of s.unresolved) {
          assert.ok(w.pos !== null && w.pos > s.current, `write at ${w.pos} unresolved while currentPosition was ${s.current}`);
        }
      }
      for (const view of readerViews) {
        for (const w of writes) {
          if (w.pos !== null && w.pos <= view.current) {
            assert.ok(view.seen.has(w.eventId), `reader at ${view.current} missed the event at ${w.pos}`);
          }
        }
      }
    });
  });

  describe('close and reopen', function () {
    it('close() finishes in-flight writes, then further calls reject', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const before = ctx.store.currentPosition();
      const pending = [
        ...Array.from({ length: 10 }, (_, i) => room.message(ctx.store, alice, `m${i}`).then((e) => e.stream)),
        ctx.store.userData.setAccountData(alice, '', 'pending', { x: 1 }),
        ctx.store.accounts.createUser({ userId: alice, passwordHash: null, admin: false, createdTs: 1, displayname: null }).then(() => 0),
      ];
      const store = ctx.store;
      await store.close();
      const results = await Promise.allSettled(pending);
      assert.deepEqual(results.map((r) => r.status), results.map(() => 'fulfilled'));
      const positions = results.map((r) => (r.status === 'fulfilled' ? r.value : -1)).filter((p) => p > 0);
      assert.ok(Math.min(...positions) > before);
      assert.ok(store.currentPosition() >= Math.max(...positions));

      await assert.rejects(store.accounts.getUser(alice));
      await assert.rejects(store.rooms.getEvent('$x'));
      await assert.rejects(store.userData.setAccountData(alice, '', 'late', {}));
      await assert.rejects(room.message(store, alice, 'late'));
      await assert.rejects(store.devices.lookupAccessToken('t'));

      if (ctx.canReopen) {
        const reopened = await ctx.reopenClosed();
        assert.ok(await reopened.accounts.getUser(alice));
        assert.deepEqual(await reopened.userData.getAccountData(alice, '', 'pending'), { x: 1 });
        const timeline = await reopened.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: reopened.currentPosition(), limit: 100 });
        assert.equal(timeline.filter((e) => e.pdu.type === 'm.room.message').length, 10);
      }
    });

    it('keeps data and continues the stream after reopening', async function () {
      if (!ctx.canReopen) this.skip();
      const bob = userId('bob');
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h', admin: true, createdTs: 7, displayname: 'A' });
      await ctx.store.devices.upsertDevice({ userId: alice, deviceId: 'D', displayName: 'Phone', ts: 1, ip: null });
      await ctx.store.devices.addAccessToken('tok', { userId: alice, deviceId: 'D' }, 1);
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const invite = await room.member(ctx.store, alice, bob, 'invite');
      const msg = await room.message(ctx.store, alice, 'persisted', { txn: { userId: alice, deviceId: 'D', txnId: 'T1' } });
      const ad = await ctx.store.userData.setAccountData(alice, room.roomId, 'm.tag', { tags: {} });
      const filterJson = '{"room": {"timeline": {"limit": 5}}}';
      const filterId = await ctx.store.userData.createFilter(alice, filterJson);
      await ctx.store.rooms.createAlias('#room:hearth.test', room.roomId, alice);
      const positionBefore = ctx.store.currentPosition();
      const stateBefore = await ctx.store.rooms.getCurrentState(room.roomId);

      const store = await ctx.closeAndReopen();
      assert.ok(store.currentPosition() >= positionBefore, 'currentPosition does not go backwards across a restart');
      assert.equal((await store.accounts.getUser(alice))?.displayname, 'A');
      assert.equal((await store.devices.getDevice(alice, 'D'))?.displayName, 'Phone');
      assert.deepEqual(await store.devices.lookupAccessToken('tok'), { userId: alice, deviceId: 'D', isGuest: false });
      assert.deepEqual(await store.rooms.getEvent(msg.eventId), {
        eventId: msg.eventId,
        roomId: room.roomId,
        stream: msg.stream,
        pdu: msg.pdu,
        redactedBy: null,
        txn: { deviceId: 'D', txnId: 'T1' },
        outlier: false,
        softFailed: false,
        rejected: null,
      });
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 'T1'), msg.eventId);
      assert.deepEqual(await store.rooms.getCurrentState(room.roomId), stateBefore);
      assert.equal((await store.rooms.getStateAt(room.roomId, created[0].stream)).length, 1);
      assert.equal((await store.rooms.getMembership(room.roomId, bob))?.eventId, invite.eventId);
      assert.deepEqual(await store.rooms.getForwardExtremities(room.roomId), [msg.eventId]);
      assert.equal((await store.userData.getAllAccountData(alice))[0]?.stream, ad);
      assert.equal(await store.userData.getFilter(alice, filterId), filterJson);
      assert.equal((await store.rooms.getAlias('#room:hearth.test'))?.roomId, room.roomId);

      const next = await room.message(store, alice, 'after restart');
      const nextAd = await store.userData.setAccountData(alice, '', 'after', {});
      assert.ok(next.stream > positionBefore && nextAd > positionBefore, 'no position is reused after reopen');
      assert.ok(nextAd > next.stream);
      const page = await store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: store.currentPosition(), limit: 2 });
      assert.deepEqual(page.map((e) => e.eventId), [next.eventId, msg.eventId]);
    });
  });
}
