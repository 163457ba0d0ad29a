// Contract: EventExpiryStore (src/store/expiry-types.ts): self-destructing messages' due times
// and the prune that rewrites the stored copy.

import { assert } from '../helpers/assert.js';
import type { UnpositionedChange } from '../../src/store/change-types.js';
import type { StoreBackend } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, redact, userId } from './fixtures.js';

const T0 = 1_700_000_000_000;

export function describeEventExpiryContract(ctx: ContractContext): void {
  describe('event expiry (self-destructing messages)', function () {
    const alice = userId('alice');

    it('lists rows soonest first; a second schedule keeps the earlier time', async function () {
      const s = ctx.store.eventExpiry;
      assert.deepEqual(await s.nextDue(10), []);
      await s.schedule({ eventId: '$b', roomId: '!r:x', expiresTs: T0 + 20 });
      await s.schedule({ eventId: '$a', roomId: '!r:x', expiresTs: T0 + 30 });
      await s.schedule({ eventId: '$c', roomId: '!q:x', expiresTs: T0 + 10 });
      await s.schedule({ eventId: '$a', roomId: '!r:x', expiresTs: T0 + 5 });
      await s.schedule({ eventId: '$b', roomId: '!r:x', expiresTs: T0 + 50 });
      assert.deepEqual(await s.nextDue(10), [
        { eventId: '$a', roomId: '!r:x', expiresTs: T0 + 5 },
        { eventId: '$c', roomId: '!q:x', expiresTs: T0 + 10 },
        { eventId: '$b', roomId: '!r:x', expiresTs: T0 + 20 },
      ]);
      assert.deepEqual((await s.nextDue(1)).map((r) => r.eventId), ['$a']);
    });

    it('prune rewrites the stored copy without redactedBy, drops the row and reports event_pruned', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const msg = await room.message(ctx.store, alice, 'goes away');
      const keep = await room.message(ctx.store, alice, 'stays');
      const row = { eventId: msg.eventId, roomId: room.roomId, expiresTs: T0 };
      await ctx.store.eventExpiry.schedule(row);
      await ctx.store.eventExpiry.schedule({ eventId: keep.eventId, roomId: room.roomId, expiresTs: T0 + 1000 });
      const seen: UnpositionedChange[] = [];
      // Every backend is a StoreBackend; the contract's harness types it as the domain Store.
      (ctx.store as StoreBackend).onUnpositionedChanges((changes) => seen.push(...changes));
      assert.equal(await ctx.store.eventExpiry.prune(row, redact(msg.pdu)), true);
      const stored = await ctx.store.rooms.getEvent(msg.eventId);
      assert.deepEqual(stored?.pdu.content, {});
      assert.equal(stored?.redactedBy, null);
      assert.equal((await ctx.store.rooms.getEvent(keep.eventId))?.pdu.content.body, 'stays');
      assert.deepEqual((await ctx.store.eventExpiry.nextDue(10)).map((r) => r.eventId), [keep.eventId]);
      assert.deepEqual(seen, [{ kind: 'event_pruned', roomId: room.roomId, eventId: msg.eventId }]);
    });

    it('prune leaves a redacted event, another room and an unknown event alone but drops their rows', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const msg = await room.message(ctx.store, alice, 'redacted first');
      const redaction = await room.send(ctx.store, 'm.room.redaction', alice, { redacts: msg.eventId }, undefined, {
        redaction: { targetEventId: msg.eventId, redactedPdu: redact(msg.pdu) },
      });
      const other = await room.message(ctx.store, alice, 'wrong room named');
      const rows = [
        { eventId: msg.eventId, roomId: room.roomId, expiresTs: T0 },
        { eventId: other.eventId, roomId: '!elsewhere:x', expiresTs: T0 + 1 },
        { eventId: '$unknown', roomId: room.roomId, expiresTs: T0 + 2 },
      ];
      for (const r of rows) await ctx.store.eventExpiry.schedule(r);
      assert.equal(await ctx.store.eventExpiry.prune(rows[0]!, { ...msg.pdu, content: { tampered: true } }), false);
      assert.equal(await ctx.store.eventExpiry.prune(rows[1]!, redact(other.pdu)), false);
      assert.equal(await ctx.store.eventExpiry.prune(rows[2]!, null), false);
      const stored = await ctx.store.rooms.getEvent(msg.eventId);
      assert.deepEqual(stored?.pdu.content, {});
      assert.equal(stored?.redactedBy, redaction.eventId);
      assert.equal((await ctx.store.rooms.getEvent(other.eventId))?.pdu.content.body, 'wrong room named');
      assert.deepEqual(await ctx.store.eventExpiry.nextDue(10), []);
    });

    it("persistEvent writes an accepted event's selfDestructAt row in the event's own write; not for one not accepted", async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const key = 'org.matrix.self_destruct_after';
      const msg = await room.message(ctx.store, alice, 'x');
      const asks = await room.send(ctx.store, 'm.room.message', alice, { msgtype: 'm.text', body: 'bye', [key]: T0 + 40 }, undefined, { selfDestructAt: T0 + 40 });
      const soft = room.build('m.room.message', alice, { msgtype: 'm.text', body: 'soft', [key]: T0 + 41 });
      await ctx.store.rooms.persistEvent({ eventId: soft.eventId, pdu: soft.pdu, stateDelta: [], forwardExtremities: [], softFailed: true, selfDestructAt: T0 + 41 });
      const out = room.build('m.room.message', alice, { msgtype: 'm.text', body: 'outlier', [key]: T0 + 42 });
      await ctx.store.rooms.persistEvent({ eventId: out.eventId, pdu: out.pdu, stateDelta: [], forwardExtremities: [], outlier: true, selfDestructAt: T0 + 42 });
      // Written with the event, not by a listener afterwards: there before any other write.
      assert.deepEqual(await ctx.store.eventExpiry.nextDue(10), [{ eventId: asks.eventId, roomId: room.roomId, expiresTs: T0 + 40 }]);
      assert.notEqual(msg.eventId, asks.eventId);
      assert.equal(await ctx.store.eventExpiry.prune({ eventId: asks.eventId, roomId: room.roomId, expiresTs: T0 + 40 }, redact(asks.pdu)), true);
      assert.deepEqual(await ctx.store.eventExpiry.nextDue(10), []);
    });

    it('rows survive a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      await ctx.store.eventExpiry.schedule({ eventId: '$later', roomId: '!r:x', expiresTs: T0 + 7 });
      const reopened = await ctx.closeAndReopen();
      assert.deepEqual(await reopened.eventExpiry.nextDue(10), [{ eventId: '$later', roomId: '!r:x', expiresTs: T0 + 7 }]);
    });
  });
}
