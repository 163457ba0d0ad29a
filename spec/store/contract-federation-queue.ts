// Contract: FederationQueueStore (src/store/federation-types.ts).

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import type { OutboundItem } from '../../src/store/types.js';
import type { JsonObject } from '../../src/protocol/types.js';
import { assertConflict, FakeRoom, redact, userId } from './fixtures.js';

const alice = userId('alice');

const pdu = (roomId: string, n: number): OutboundItem => ({ kind: 'pdu', roomId, pdu: { room_id: roomId, type: 'm.room.message', content: { body: `m${n}` } } });
const edu = (n: number): OutboundItem => ({ kind: 'edu', edu: { edu_type: 'm.direct_to_device', content: { message_id: `t${n}` } } });

export function describeFederationQueueContract(ctx: ContractContext): void {
  describe('federation queue', function () {
    it('an unknown destination reads as empty, never sent, no transaction', async function () {
      const q = ctx.store.federationQueue;
      assert.deepEqual(await q.getDestinationQueue('nowhere.test'), { destination: 'nowhere.test', sentUpto: 0, queuedUpto: 0, txn: null });
      assert.deepEqual(await q.outboundAfter('nowhere.test', 0, Number.MAX_SAFE_INTEGER, 10), []);
    });

    it('appends each item for every destination at one rising position, read back in order within bounds', async function () {
      const q = ctx.store.federationQueue;
      const p1 = await q.enqueueOutbound(['a.test', 'b.test', 'a.test'], pdu('!r:x', 1));
      const p2 = await q.enqueueOutbound(['a.test'], edu(2));
      const p3 = await q.enqueueOutbound(['b.test', 'a.test'], pdu('!s:x', 3));
      assert.ok(p1 < p2 && p2 < p3, 'positions rise');
      assert.ok(ctx.store.currentPosition() >= p3, 'the watermark passed the entries once enqueued');
      const a = await q.outboundAfter('a.test', 0, ctx.store.currentPosition(), 10);
      assert.deepEqual(a.map((e) => e.pos), [p1, p2, p3], 'one entry per position for a (listed twice)');
      assert.deepEqual(a[0]!.item, pdu('!r:x', 1));
      assert.deepEqual(a[1]!.item, edu(2));
      const b = await q.outboundAfter('b.test', 0, ctx.store.currentPosition(), 10);
      assert.deepEqual(b.map((e) => e.pos), [p1, p3]);
      assert.deepEqual((await q.outboundAfter('a.test', p1, p3 - 1, 10)).map((e) => e.pos), [p2], '(after, upto] bounds');
      assert.deepEqual((await q.outboundAfter('a.test', 0, p3, 2)).map((e) => e.pos), [p1, p2], 'limit');
      const sa = await q.getDestinationQueue('a.test');
      assert.equal(sa.queuedUpto, p3);
      assert.equal(sa.sentUpto, 0);
      const list = await q.listDestinationQueues();
      assert.deepEqual(list.map((s) => [s.destination, s.queuedUpto]), [['a.test', p3], ['b.test', p3]]);
    });

    it('a transaction is recorded, completed (sentUpto rises, never falls) and a late completion leaves a newer one', async function () {
      const q = ctx.store.federationQueue;
      const p1 = await q.enqueueOutbound(['a.test'], pdu('!r:x', 1));
      const p2 = await q.enqueueOutbound(['a.test'], pdu('!r:x', 2));
      const t1 = { txnId: 'T1', upto: p1, catchUp: false };
      await q.beginTxn('a.test', t1);
      assert.deepEqual((await q.getDestinationQueue('a.test')).txn, t1);
      await q.completeTxn('a.test', t1);
      let s = await q.getDestinationQueue('a.test');
      assert.equal(s.sentUpto, p1);
      assert.equal(s.txn, null);
      const t2 = { txnId: 'T2', upto: p2, catchUp: true };
      await q.beginTxn('a.test', t2);
      await q.completeTxn('a.test', t1); // a previous holder's late acknowledgement
      s = await q.getDestinationQueue('a.test');
      assert.deepEqual(s.txn, t2, 'the newer transaction stays');
      assert.equal(s.sentUpto, p1);
      await q.completeTxn('a.test', t2);
      await q.completeTxn('a.test', t1);
      s = await q.getDestinationQueue('a.test');
      assert.equal(s.sentUpto, p2, 'never moves back');
      assert.equal(s.txn, null);
      assert.deepEqual(await q.outboundAfter('a.test', s.sentUpto, ctx.store.currentPosition(), 10), []);
    });

    it("persistEvent's outbound: the event's PDU is queued at the event's own position, in room order, among other entries", async function () {
      const q = ctx.store.federationQueue;
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const before = await q.enqueueOutbound(['o1.test'], edu(1));
      const m1 = r.build('m.room.message', alice, { body: 'one' });
      const m2 = r.build('m.room.message', alice, { body: 'two' });
      // Pipelined as the room writer does: both queued before either is durable.
      const [w1, w2] = await Promise.all([
        ctx.store.rooms.persistEvent(r.input(m1, { outbound: { destinations: ['o1.test', 'o2.test', 'o1.test'], pdu: m1.pdu as unknown as JsonObject } })),
        ctx.store.rooms.persistEvent(r.input(m2, { dependsOn: m1.eventId, outbound: { destinations: ['o1.test'], pdu: m2.pdu as unknown as JsonObject } })),
      ]);
      const after = await q.enqueueOutbound(['o1.test'], edu(2));
      assert.ok(before < w1.stream && w1.stream < w2.stream && w2.stream < after);
      const o1 = await q.outboundAfter('o1.test', 0, ctx.store.currentPosition(), 10);
      assert.deepEqual(o1.map((e) => e.pos), [before, w1.stream, w2.stream, after], "the PDUs at their events' positions, once each");
      assert.deepEqual(o1[1]!.item, { kind: 'pdu', roomId: r.roomId, pdu: m1.pdu as unknown as JsonObject });
      assert.deepEqual(o1[2]!.item, { kind: 'pdu', roomId: r.roomId, pdu: m2.pdu as unknown as JsonObject });
      assert.deepEqual((await q.outboundAfter('o2.test', 0, ctx.store.currentPosition(), 10)).map((e) => e.pos), [w1.stream]);
      assert.equal((await q.getDestinationQueue('o1.test')).queuedUpto, after);
      assert.equal((await q.getDestinationQueue('o2.test')).queuedUpto, w1.stream);
      // Delivery works on them as on any entry.
      await q.completeTxn('o2.test', { txnId: 'T', upto: w1.stream, catchUp: false });
      const s2 = await q.getDestinationQueue('o2.test');
      assert.equal(s2.sentUpto, w1.stream);
      assert.deepEqual(await q.outboundAfter('o2.test', s2.sentUpto, ctx.store.currentPosition(), 10), []);
    });

    it("persistEvent's outbound: a 60 KB event queued for 40 servers is written (one copy per server would pass a backend's batch limit)", async function () {
      const q = ctx.store.federationQueue;
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const big = r.build('m.room.message', alice, { body: 'x'.repeat(60_000) });
      const destinations = Array.from({ length: 40 }, (_, i) => `big${i}.test`);
      const { stream } = await ctx.store.rooms.persistEvent(r.input(big, { outbound: { destinations, pdu: big.pdu as unknown as JsonObject } }));
      for (const d of [destinations[0]!, destinations[39]!]) {
        const got = await q.outboundAfter(d, 0, ctx.store.currentPosition(), 10);
        assert.deepEqual(got.map((e) => e.pos), [stream]);
        assert.deepEqual(got[0]!.item, { kind: 'pdu', roomId: r.roomId, pdu: big.pdu as unknown as JsonObject });
      }
    });

    it("persistEvent's outbound: an event redacted before its PDU is sent still goes out as it was (the receiver redacts it when the redaction arrives)", async function () {
      const q = ctx.store.federationQueue;
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const out = (ev: { pdu: unknown }) => ({ destinations: ['red.test'], pdu: ev.pdu as JsonObject });
      const secret = r.build('m.room.message', alice, { msgtype: 'm.text', body: 'secret' });
      const w = await ctx.store.rooms.persistEvent(r.input(secret, { outbound: out(secret) }));
      const redactedPdu = redact(secret.pdu);
      const first = r.build('m.room.redaction', alice, { redacts: secret.eventId });
      const w1 = await ctx.store.rooms.persistEvent(r.input(first, { redaction: { targetEventId: secret.eventId, redactedPdu }, outbound: out(first) }));
      // A second redaction of the same event (allowed in the DAG) must not replace what is kept.
      const second = r.build('m.room.redaction', alice, { redacts: secret.eventId });
      await ctx.store.rooms.persistEvent(r.input(second, { redaction: { targetEventId: secret.eventId, redactedPdu }, outbound: out(second) }));
      assert.deepEqual((await ctx.store.rooms.getEvent(secret.eventId))?.pdu, redactedPdu, 'clients see it redacted');
      const got = await q.outboundAfter('red.test', 0, ctx.store.currentPosition(), 10);
      assert.deepEqual(got.map((e) => e.pos).slice(0, 2), [w.stream, w1.stream]);
      assert.deepEqual(got[0]!.item, { kind: 'pdu', roomId: r.roomId, pdu: secret.pdu as unknown as JsonObject }, 'the original, with its content');
      assert.deepEqual(got[1]!.item, { kind: 'pdu', roomId: r.roomId, pdu: first.pdu as unknown as JsonObject });
    });

    it("persistEvent's outbound: an event pruned by its MSC2228 expiry before its PDU is sent still goes out as it was, also after a second prune and a redaction", async function () {
      const q = ctx.store.federationQueue;
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const out = (ev: { pdu: unknown }) => ({ destinations: ['expiry.test'], pdu: ev.pdu as JsonObject });
      const at = 1_700_000_000_000;
      const secret = r.build('m.room.message', alice, { msgtype: 'm.text', body: 'self-destructs', 'org.matrix.self_destruct_after': at });
      const w = await ctx.store.rooms.persistEvent(r.input(secret, { outbound: out(secret), selfDestructAt: at }));
      const row = { eventId: secret.eventId, roomId: r.roomId, expiresTs: at };
      assert.equal(await ctx.store.eventExpiry.prune(row, redact(secret.pdu)), true);
      assert.deepEqual((await ctx.store.rooms.getEvent(secret.eventId))?.pdu.content, {}, 'clients see it pruned');
      const sent = async () => (await q.outboundAfter('expiry.test', 0, ctx.store.currentPosition(), 10))[0]!;
      const whole = { kind: 'pdu', roomId: r.roomId, pdu: secret.pdu as unknown as JsonObject };
      assert.deepEqual((await sent()).pos, w.stream);
      assert.deepEqual((await sent()).item, whole, 'the original, with its content');
      // Several room writers' timers may ask for the same row: the second finds the pruned copy.
      await ctx.store.eventExpiry.prune(row, redact(secret.pdu));
      assert.deepEqual((await sent()).item, whole, 'after a second prune');
      const redaction = r.build('m.room.redaction', alice, { redacts: secret.eventId });
      await ctx.store.rooms.persistEvent(r.input(redaction, { redaction: { targetEventId: secret.eventId, redactedPdu: redact(secret.pdu) } }));
      assert.deepEqual((await sent()).item, whole, 'after a redaction of the pruned event');
    });

    it("persistEvent's outbound: nothing is queued when the event is not written, nor for an event not accepted", async function () {
      const q = ctx.store.federationQueue;
      const r = new FakeRoom();
      await r.create(ctx.store, alice);
      const txn = { userId: alice, deviceId: 'D', txnId: 'dup' };
      await r.message(ctx.store, alice, 'first', { txn });
      const dup = r.build('m.room.message', alice, { body: 'again' });
      const out = (ev: { pdu: unknown }) => ({ destinations: ['f.test'], pdu: ev.pdu as JsonObject });
      await assertConflict(ctx.store.rooms.persistEvent(r.input(dup, { txn, outbound: out(dup) })));
      const orphan = r.build('m.room.message', alice, { body: 'orphan' });
      await assertConflict(ctx.store.rooms.persistEvent(r.input(orphan, { dependsOn: dup.eventId, outbound: out(orphan) })));
      const soft = r.build('m.room.message', alice, { body: 'soft' });
      await ctx.store.rooms.persistEvent({ eventId: soft.eventId, pdu: soft.pdu, stateDelta: [], forwardExtremities: [], softFailed: true, outbound: out(soft) });
      const none = r.build('m.room.message', alice, { body: 'none' });
      await ctx.store.rooms.persistEvent(r.input(none, { outbound: { destinations: [], pdu: none.pdu as unknown as JsonObject } }));
      assert.deepEqual(await q.outboundAfter('f.test', 0, ctx.store.currentPosition(), 10), []);
      assert.deepEqual(await q.getDestinationQueue('f.test'), { destination: 'f.test', sentUpto: 0, queuedUpto: 0, txn: null });
      assert.deepEqual((await q.listDestinationQueues()).filter((s) => s.destination === 'f.test'), []);
    });

    it('keeps entries and positions across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const q = ctx.store.federationQueue;
      const p1 = await q.enqueueOutbound(['a.test'], edu(1));
      await q.beginTxn('a.test', { txnId: 'T9', upto: p1, catchUp: false });
      const store = await ctx.closeAndReopen();
      assert.deepEqual((await store.federationQueue.getDestinationQueue('a.test')).txn, { txnId: 'T9', upto: p1, catchUp: false });
      assert.deepEqual((await store.federationQueue.outboundAfter('a.test', 0, store.currentPosition(), 10)).map((e) => e.item), [edu(1)]);
    });

    it('a cursor reads null until set, only ever rises, and is kept per name', async function () {
      const q = ctx.store.federationQueue;
      const name = `device_lists-${Math.random().toString(36).slice(2)}`;
      assert.equal(await q.getCursor(name), null);
      await q.advanceCursor(name, 40);
      assert.equal(await q.getCursor(name), 40);
      await q.advanceCursor(name, 12);
      assert.equal(await q.getCursor(name), 40, 'never lowered');
      await q.advanceCursor(name, 41);
      assert.equal(await q.getCursor(name), 41);
      assert.equal(await q.getCursor(`${name}-other`), null, 'per name');
      // Raced: the highest wins whatever order the writes land in.
      await Promise.all([q.advanceCursor(name, 90), q.advanceCursor(name, 70), q.advanceCursor(name, 80)]);
      assert.equal(await q.getCursor(name), 90);
    });

    it('keeps a cursor across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      await ctx.store.federationQueue.advanceCursor('kept', 77);
      const store = await ctx.closeAndReopen();
      assert.equal(await store.federationQueue.getCursor('kept'), 77);
    });
  });
}
