// Contract: ReceiptStore (src/store/chat-types.ts).

import { assert } from '../helpers/assert.js';
import type { ReceiptRecord, ReceiptThread, ReceiptType } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, userId, type SentEvent } from './fixtures.js';

export function describeReceiptContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');

  const put = (room: FakeRoom, user: string, ev: SentEvent, type: ReceiptType = 'm.read', threadId: ReceiptThread = null, ts = 1000) =>
    ctx.store.receipts.putReceipt({ roomId: room.roomId, userId: user, type, threadId, eventId: ev.eventId, eventStream: ev.stream, ts });

  /** `type|thread -> eventId`, for comparing a user's receipts regardless of order. */
  const summary = (rs: ReceiptRecord[]) => new Map(rs.map((r) => [`${r.userId}|${r.type}|${r.threadId ?? '(none)'}`, r.eventId]));

  async function roomWithMessages(n: number): Promise<{ room: FakeRoom; msgs: SentEvent[] }> {
    const room = new FakeRoom();
    await room.create(ctx.store, alice);
    const msgs: SentEvent[] = [];
    for (let i = 0; i < n; i++) msgs.push(await room.message(ctx.store, i % 2 === 0 ? alice : bob, `m${i}`));
    return { room, msgs };
  }

  describe('receipts', function () {
    it('stores a receipt at a new, completed stream position and returns the record', async function () {
      const { room, msgs } = await roomWithMessages(2);
      const before = ctx.store.currentPosition();
      const rec = await put(room, bob, msgs[1], 'm.read', null, 4242);
      assert.ok(rec);
      assert.ok(rec.stream > before && ctx.store.currentPosition() >= rec.stream);
      assert.deepEqual(rec, {
        roomId: room.roomId,
        userId: bob,
        type: 'm.read',
        threadId: null,
        eventId: msgs[1].eventId,
        eventStream: msgs[1].stream,
        ts: 4242,
        stream: rec.stream,
      });
      assert.deepEqual(await ctx.store.receipts.getUserReceipts(room.roomId, bob), [rec]);
      assert.deepEqual(await ctx.store.receipts.getUserReceipts(room.roomId, alice), []);
    });

    it('never moves a receipt backwards (or sideways to the same event)', async function () {
      const { room, msgs } = await roomWithMessages(3);
      const first = await put(room, bob, msgs[1]);
      assert.ok(first);
      const positionBefore = ctx.store.currentPosition();
      assert.equal(await put(room, bob, msgs[0]), null, 'older event');
      assert.equal(await put(room, bob, msgs[1], 'm.read', null, 9999), null, 'same event');
      assert.deepEqual(await ctx.store.receipts.getUserReceipts(room.roomId, bob), [first]);
      assert.deepEqual(await ctx.store.receipts.getReceiptChanges([room.roomId], positionBefore, ctx.store.currentPosition()), []);
      const next = await put(room, bob, msgs[2]);
      assert.ok(next && next.stream > first.stream);
      assert.equal((await ctx.store.receipts.getUserReceipts(room.roomId, bob))[0]?.eventId, msgs[2].eventId);
    });

    it('never moves backwards under concurrent puts for the same key', async function () {
      const { room, msgs } = await roomWithMessages(6);
      const results = await Promise.all([msgs[3], msgs[5], msgs[1], msgs[4]].map((m) => put(room, bob, m)));
      // Whatever order the backend applies them in, the newest event wins and is reported.
      assert.ok(results[1], 'the newest event always moves the receipt');
      assert.equal((await ctx.store.receipts.getUserReceipts(room.roomId, bob))[0]?.eventId, msgs[5].eventId);
    });

    it('keeps public and private receipts separate', async function () {
      const { room, msgs } = await roomWithMessages(3);
      assert.ok(await put(room, bob, msgs[2], 'm.read.private'));
      // A private receipt further on does not block the public one, and vice versa.
      assert.ok(await put(room, bob, msgs[0], 'm.read'));
      assert.ok(await put(room, bob, msgs[1], 'm.read'));
      assert.equal(await put(room, bob, msgs[1], 'm.read.private'), null);
      assert.deepEqual(
        summary(await ctx.store.receipts.getUserReceipts(room.roomId, bob)),
        new Map([
          [`${bob}|m.read|(none)`, msgs[1].eventId],
          [`${bob}|m.read.private|(none)`, msgs[2].eventId],
        ]),
      );
    });

    it('keeps unthreaded, main-timeline and per-thread receipts separate', async function () {
      const { room, msgs } = await roomWithMessages(4);
      const root = msgs[0].eventId;
      assert.ok(await put(room, bob, msgs[3], 'm.read', null));
      assert.ok(await put(room, bob, msgs[2], 'm.read', 'main'));
      assert.ok(await put(room, bob, msgs[1], 'm.read', root));
      assert.ok(await put(room, bob, msgs[2], 'm.read', root), 'a thread receipt moves on its own');
      assert.equal(await put(room, bob, msgs[1], 'm.read', 'main'), null);
      const mine = await ctx.store.receipts.getUserReceipts(room.roomId, bob);
      assert.equal(mine.length, 3);
      assert.deepEqual(
        summary(mine),
        new Map([
          [`${bob}|m.read|(none)`, msgs[3].eventId],
          [`${bob}|m.read|main`, msgs[2].eventId],
          [`${bob}|m.read|${root}`, msgs[2].eventId],
        ]),
      );
      assert.ok(mine.some((r) => r.threadId === null), 'unthreaded comes back as null');
    });

    it('lists the current receipts of the given rooms only', async function () {
      const a = await roomWithMessages(2);
      const b = await roomWithMessages(2);
      const c = await roomWithMessages(1);
      await put(a.room, alice, a.msgs[0]);
      await put(a.room, alice, a.msgs[1]);
      await put(a.room, bob, a.msgs[0], 'm.read.private');
      await put(b.room, bob, b.msgs[1]);
      await put(c.room, bob, c.msgs[0]);
      const got = await ctx.store.receipts.getRoomReceipts([a.room.roomId, b.room.roomId]);
      assert.equal(got.length, 3);
      const key = (r: ReceiptRecord) => `${r.roomId}|${r.userId}|${r.type}|${r.eventId}`;
      assert.deepEqual(
        got.map(key).sort(),
        [
          `${a.room.roomId}|${alice}|m.read|${a.msgs[1].eventId}`,
          `${a.room.roomId}|${bob}|m.read.private|${a.msgs[0].eventId}`,
          `${b.room.roomId}|${bob}|m.read|${b.msgs[1].eventId}`,
        ].sort(),
      );
      assert.deepEqual(await ctx.store.receipts.getRoomReceipts([]), []);
    });

    it('reports receipt changes in (from, to], latest per key', async function () {
      const a = await roomWithMessages(3);
      const b = await roomWithMessages(2);
      const s0 = ctx.store.currentPosition();
      const r1 = (await put(a.room, bob, a.msgs[0]))!;
      const r2 = (await put(b.room, bob, b.msgs[0]))!;
      const r3 = (await put(a.room, alice, a.msgs[1], 'm.read.private'))!;
      const streams = (rs: ReceiptRecord[]) => rs.map((r) => r.stream).sort((x, y) => x - y);
      assert.deepEqual(streams(await ctx.store.receipts.getReceiptChanges([a.room.roomId], s0, r3.stream)), [r1.stream, r3.stream]);
      assert.deepEqual(streams(await ctx.store.receipts.getReceiptChanges([a.room.roomId, b.room.roomId], r1.stream, r3.stream)), [r2.stream, r3.stream]);
      assert.deepEqual(await ctx.store.receipts.getReceiptChanges([a.room.roomId], r3.stream, ctx.store.currentPosition()), []);
      assert.deepEqual(await ctx.store.receipts.getReceiptChanges([], s0, ctx.store.currentPosition()), []);

      // Moving a receipt on moves its key to the new position.
      const r4 = (await put(a.room, bob, a.msgs[2]))!;
      const changes = await ctx.store.receipts.getReceiptChanges([a.room.roomId], r3.stream, r4.stream);
      assert.deepEqual(changes, [r4]);
    });

    it('shares the global stream with events and account data', async function () {
      const { room, msgs } = await roomWithMessages(1);
      const [rec, ev, ad] = await Promise.all([
        put(room, bob, msgs[0]),
        room.message(ctx.store, alice, 'concurrent'),
        ctx.store.userData.setAccountData(alice, '', 'x', {}),
      ]);
      assert.ok(rec);
      assert.equal(new Set([rec.stream, ev.stream, ad]).size, 3);
      assert.ok(ctx.store.currentPosition() >= Math.max(rec.stream, ev.stream, ad));
    });

    it('keeps receipts across a reopen and continues from them', async function () {
      if (!ctx.canReopen) this.skip();
      const { room, msgs } = await roomWithMessages(3);
      const pub = (await put(room, bob, msgs[1]))!;
      const priv = (await put(room, bob, msgs[2], 'm.read.private', msgs[0].eventId))!;
      const positionBefore = ctx.store.currentPosition();

      const store = await ctx.closeAndReopen();
      assert.ok(store.currentPosition() >= positionBefore);
      const got = await store.receipts.getUserReceipts(room.roomId, bob);
      const byType = (rs: ReceiptRecord[]) => [...rs].sort((x, y) => (x.type < y.type ? -1 : 1));
      assert.deepEqual(byType(got), byType([pub, priv]));
      assert.equal(await put(room, bob, msgs[0]), null, 'still never moves backwards');
      const next = (await put(room, bob, msgs[2]))!;
      assert.ok(next.stream > positionBefore, 'no position is reused after reopen');
    });

    it("queues an outbound EDU with the receipt, at the receipt's position, and none for a receipt that did not move", async function () {
      const { room, msgs } = await roomWithMessages(3);
      const dests = [`r1-${room.roomId.slice(1, 9)}.test`, `r2-${room.roomId.slice(1, 9)}.test`];
      const edu = (eventId: string) => ({ edu_type: 'm.receipt', content: { [room.roomId]: { 'm.read': { [bob]: { event_ids: [eventId], data: { ts: 1 } } } } } });
      const q = ctx.store.federationQueue;
      const rec = await ctx.store.receipts.putReceipt(
        { roomId: room.roomId, userId: bob, type: 'm.read', threadId: null, eventId: msgs[1].eventId, eventStream: msgs[1].stream, ts: 1 },
        { destinations: [...dests, dests[0]!], edu: edu(msgs[1].eventId) },
      );
      assert.ok(rec);
      for (const d of dests) {
        const entries = await q.outboundAfter(d, 0, ctx.store.currentPosition(), 10);
        assert.deepEqual(entries, [{ pos: rec.stream, item: { kind: 'edu', edu: edu(msgs[1].eventId) } }], d);
        const state = await q.getDestinationQueue(d);
        assert.equal(state.queuedUpto, rec.stream);
      }
      // Not newer: no receipt, so no EDU either (never sent for a write that did not happen).
      assert.equal(
        await ctx.store.receipts.putReceipt(
          { roomId: room.roomId, userId: bob, type: 'm.read', threadId: null, eventId: msgs[0].eventId, eventStream: msgs[0].stream, ts: 2 },
          { destinations: dests, edu: edu(msgs[0].eventId) },
        ),
        null,
      );
      for (const d of dests) assert.equal((await q.outboundAfter(d, 0, ctx.store.currentPosition(), 10)).length, 1, d);
      // No destinations: the receipt is stored, nothing queued anywhere.
      const plain = await ctx.store.receipts.putReceipt(
        { roomId: room.roomId, userId: bob, type: 'm.read', threadId: null, eventId: msgs[2].eventId, eventStream: msgs[2].stream, ts: 3 },
        { destinations: [], edu: edu(msgs[2].eventId) },
      );
      assert.ok(plain);
      for (const d of dests) assert.equal((await q.outboundAfter(d, 0, ctx.store.currentPosition(), 10)).length, 1, d);
    });
  });
}
