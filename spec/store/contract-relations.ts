// Contract: relations derived from m.relates_to, threads and bundled aggregations
// (RelationStore in src/store/chat-types.ts).

import { assert } from '../helpers/assert.js';
import type { JsonObject } from '../../src/protocol/types.js';
import type { RelationQuery } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, redact, userId, type SentEvent } from './fixtures.js';

export function describeRelationContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');

  let room: FakeRoom;
  let root: SentEvent;

  async function setup(): Promise<void> {
    room = new FakeRoom();
    await room.create(ctx.store, alice);
    root = await room.message(ctx.store, alice, 'root');
  }

  const rel = (relType: string, target: string, extra: JsonObject = {}): JsonObject => ({
    ...extra,
    'm.relates_to': { rel_type: relType, event_id: target },
  });
  const react = (sender: string, key: string, target = root) =>
    room.send(ctx.store, 'm.reaction', sender, { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.eventId, key } });
  const reply = (sender: string, body: string, target = root) =>
    room.send(ctx.store, 'm.room.message', sender, rel('m.thread', target.eventId, { body }));
  const edit = (sender: string, body: string, type = 'm.room.message', target = root) =>
    room.send(ctx.store, type, sender, rel('m.replace', target.eventId, { body: `* ${body}`, 'm.new_content': { body } }));
  const reference = (sender: string, target = root) =>
    room.send(ctx.store, 'm.key.verification.done', sender, rel('m.reference', target.eventId));
  const redactEvent = (target: SentEvent) =>
    room.send(ctx.store, 'm.room.redaction', alice, { redacts: target.eventId }, undefined, {
      redaction: { targetEventId: target.eventId, redactedPdu: redact(target.pdu) },
    });

  const relations = (q: Partial<RelationQuery> = {}) =>
    ctx.store.relations.getRelations({ roomId: room.roomId, eventId: root.eventId, dir: 'b', limit: 50, ...q });
  const ids = (xs: { eventId: string }[]) => xs.map((x) => x.eventId);

  describe('relations', function () {
    it('derives relations from m.relates_to and pages them in both directions', async function () {
      await setup();
      const sent: SentEvent[] = [];
      for (let i = 0; i < 5; i++) sent.push(await react(i % 2 ? bob : carol, `k${i}`));
      await room.message(ctx.store, bob, 'unrelated');

      const all = await relations();
      assert.deepEqual(ids(all), ids([...sent].reverse()));
      assert.deepEqual(all.map((r) => r.stream), [...sent].reverse().map((s) => s.stream));

      const b1 = await relations({ limit: 2 });
      assert.deepEqual(ids(b1), ids([sent[4], sent[3]]));
      const b2 = await relations({ limit: 2, from: b1[1].stream });
      assert.deepEqual(ids(b2), ids([sent[2], sent[1]]), '`from` is exclusive going backwards');
      const b3 = await relations({ limit: 2, from: b2[1].stream });
      assert.deepEqual(ids(b3), ids([sent[0]]));

      const f1 = await relations({ dir: 'f', limit: 3 });
      assert.deepEqual(ids(f1), ids(sent.slice(0, 3)));
      const f2 = await relations({ dir: 'f', limit: 3, from: f1[2].stream });
      assert.deepEqual(ids(f2), ids(sent.slice(3)), '`from` is exclusive going forwards');
      assert.deepEqual(await relations({ dir: 'f', from: sent[4].stream }), []);
      assert.deepEqual(await relations({ limit: 0 }), []);
    });

    it('filters by relation type and event type', async function () {
      await setup();
      const r1 = await react(bob, '👍');
      const t1 = await reply(bob, 'in thread');
      const e1 = await edit(alice, 'fixed');
      const ref = await reference(bob);
      const t2 = await room.send(ctx.store, 'm.sticker', carol, rel('m.thread', root.eventId, { body: 'sticker' }));
      assert.deepEqual(ids(await relations({ relType: 'm.thread' })), ids([t2, t1]));
      assert.deepEqual(ids(await relations({ relType: 'm.thread', eventType: 'm.room.message' })), ids([t1]));
      assert.deepEqual(ids(await relations({ eventType: 'm.room.message' })), ids([e1, t1]));
      assert.deepEqual(ids(await relations({ relType: 'm.annotation', eventType: 'm.reaction' })), ids([r1]));
      assert.deepEqual(ids(await relations({ relType: 'm.reference', dir: 'f' })), ids([ref]));
      assert.deepEqual(await relations({ relType: 'm.nothing' }), []);
    });

    it('ignores malformed relations and relations from other rooms', async function () {
      await setup();
      await room.send(ctx.store, 'm.reaction', bob, { 'm.relates_to': { rel_type: 5, event_id: root.eventId } });
      await room.send(ctx.store, 'm.reaction', bob, { 'm.relates_to': { rel_type: 'm.annotation', event_id: ['$x'] } });
      await room.send(ctx.store, 'm.reaction', bob, { 'm.relates_to': 'nope' });
      await room.send(ctx.store, 'm.room.message', bob, { body: 'x', 'm.relates_to': { 'm.in_reply_to': { event_id: root.eventId } } });
      const elsewhere = new FakeRoom();
      await elsewhere.create(ctx.store, bob);
      await elsewhere.send(ctx.store, 'm.room.message', bob, rel('m.thread', root.eventId, { body: 'sneaky' }));
      await elsewhere.send(ctx.store, 'm.room.message', alice, rel('m.replace', root.eventId, { body: 'sneaky edit' }));
      assert.deepEqual(await relations(), []);
      assert.deepEqual(await ctx.store.relations.getThreads(room.roomId, { limit: 10 }), []);
      assert.equal((await ctx.store.relations.getAggregations([root.eventId])).size, 0);
    });

    it('drops redacted relating events from relations', async function () {
      await setup();
      const r1 = await react(bob, 'a');
      const r2 = await react(carol, 'b');
      await redactEvent(r1);
      assert.deepEqual(ids(await relations()), ids([r2]));
      assert.deepEqual(ids(await relations({ relType: 'm.annotation', dir: 'f' })), ids([r2]));
    });
  });

  describe('threads', function () {
    it('summarises a thread: count, participants, latest event', async function () {
      await setup();
      const t1 = await reply(bob, 'one');
      await react(carol, 'x', t1);
      const t2 = await reply(carol, 'two');
      const t3 = await reply(bob, 'three');
      const [summary] = await ctx.store.relations.getThreads(room.roomId, { limit: 10 });
      assert.deepEqual({ ...summary, participants: [...summary.participants].sort() }, {
        rootEventId: root.eventId,
        latestEventId: t3.eventId,
        count: 3,
        participants: [alice, bob, carol].sort(),
        latestStream: t3.stream,
      });
      assert.ok(t2.stream < t3.stream);
    });

    it('lists threads most recently active first, with a `before` bound', async function () {
      await setup();
      const root2 = await room.message(ctx.store, bob, 'root 2');
      const root3 = await room.message(ctx.store, carol, 'root 3');
      await reply(bob, 'a1');
      await reply(alice, 'b1', root2);
      const c1 = await reply(alice, 'c1', root3);
      const a2 = await reply(carol, 'a2');
      const list = await ctx.store.relations.getThreads(room.roomId, { limit: 10 });
      assert.deepEqual(list.map((t) => t.rootEventId), [root.eventId, root3.eventId, root2.eventId]);
      assert.deepEqual(list.map((t) => t.latestStream), [a2.stream, c1.stream, list[2].latestStream]);
      const page = await ctx.store.relations.getThreads(room.roomId, { limit: 1, before: list[0].latestStream });
      assert.deepEqual(page.map((t) => t.rootEventId), [root3.eventId]);
      const rest = await ctx.store.relations.getThreads(room.roomId, { limit: 5, before: page[0].latestStream });
      assert.deepEqual(rest.map((t) => t.rootEventId), [root2.eventId]);
      const other = new FakeRoom();
      await other.create(ctx.store, alice);
      assert.deepEqual(await ctx.store.relations.getThreads(other.roomId, { limit: 10 }), []);
    });

    it('filters threads by participant (root sender or replier)', async function () {
      await setup();
      const root2 = await room.message(ctx.store, bob, 'bob root');
      const root3 = await room.message(ctx.store, bob, 'bob root 2');
      await reply(bob, 'bob in alice thread');
      await reply(bob, 'bob in own thread', root2);
      await reply(carol, 'carol in bob thread', root3);
      const roots = async (participant: string) =>
        (await ctx.store.relations.getThreads(room.roomId, { participant, limit: 10 })).map((t) => t.rootEventId);
      assert.deepEqual(await roots(alice), [root.eventId]);
      assert.deepEqual(await roots(bob), [root3.eventId, root2.eventId, root.eventId]);
      assert.deepEqual(await roots(carol), [root3.eventId]);
      assert.deepEqual(await roots(userId('nobody')), []);
      const limited = await ctx.store.relations.getThreads(room.roomId, { participant: bob, limit: 2 });
      assert.deepEqual(limited.map((t) => t.rootEventId), [root3.eventId, root2.eventId]);
    });

    it('updates thread summaries when thread events are redacted', async function () {
      await setup();
      const t1 = await reply(bob, 'one');
      const t2 = await reply(carol, 'two');
      await redactEvent(t2);
      let [summary] = await ctx.store.relations.getThreads(room.roomId, { limit: 10 });
      assert.equal(summary.count, 1);
      assert.equal(summary.latestEventId, t1.eventId);
      assert.equal(summary.latestStream, t1.stream);
      assert.deepEqual([...summary.participants].sort(), [alice, bob].sort());
      assert.deepEqual((await ctx.store.relations.getThreads(room.roomId, { participant: carol, limit: 10 })).length, 0);

      await redactEvent(t1);
      assert.deepEqual(await ctx.store.relations.getThreads(room.roomId, { limit: 10 }), [], 'an emptied thread disappears');
      assert.equal((await ctx.store.relations.getAggregations([root.eventId])).size, 0);
      const t3 = await reply(carol, 'three');
      [summary] = await ctx.store.relations.getThreads(room.roomId, { limit: 10 });
      assert.equal(summary.count, 1);
      assert.equal(summary.latestEventId, t3.eventId);
    });
  });

  describe('aggregations', function () {
    it('bundles thread summary, latest valid edit and references', async function () {
      await setup();
      const plain = await room.message(ctx.store, bob, 'nothing relates to me');
      const t1 = await reply(bob, 'reply');
      const ref1 = await reference(bob);
      const e1 = await edit(alice, 'first fix');
      const e2 = await edit(alice, 'second fix');
      const ref2 = await reference(carol);
      await react(bob, '👍');

      const aggs = await ctx.store.relations.getAggregations([root.eventId, plain.eventId, '$unknown', root.eventId]);
      assert.deepEqual([...aggs.keys()], [root.eventId]);
      const a = aggs.get(root.eventId)!;
      assert.equal(a.replaceEventId, e2.eventId);
      assert.deepEqual(a.references, [ref1.eventId, ref2.eventId]);
      assert.ok(a.thread);
      assert.equal(a.thread.rootEventId, root.eventId);
      assert.equal(a.thread.count, 1);
      assert.equal(a.thread.latestEventId, t1.eventId);
      assert.deepEqual([...a.thread.participants].sort(), [alice, bob].sort());
      assert.ok(e1.stream < e2.stream);
      assert.equal((await ctx.store.relations.getAggregations([])).size, 0);
    });

    it('ignores edits by another sender or with another event type', async function () {
      await setup();
      const good = await edit(alice, 'valid');
      await edit(bob, 'not the sender');
      await edit(alice, 'wrong type', 'm.sticker');
      const a = (await ctx.store.relations.getAggregations([root.eventId])).get(root.eventId);
      assert.equal(a?.replaceEventId, good.eventId);
      assert.deepEqual(a?.references, []);
      assert.equal(a?.thread, undefined);

      const bobsMsg = await room.message(ctx.store, bob, 'bob original');
      await edit(alice, 'alice edits bob', 'm.room.message', bobsMsg);
      assert.equal((await ctx.store.relations.getAggregations([bobsMsg.eventId])).size, 0, 'only invalid edits: no aggregation');
    });

    it('drops redacted edits and references from aggregations', async function () {
      await setup();
      const e1 = await edit(alice, 'one');
      const e2 = await edit(alice, 'two');
      const ref1 = await reference(bob);
      const ref2 = await reference(bob);
      await redactEvent(e2);
      await redactEvent(ref1);
      let a = (await ctx.store.relations.getAggregations([root.eventId])).get(root.eventId);
      assert.equal(a?.replaceEventId, e1.eventId, 'falls back to the previous valid edit');
      assert.deepEqual(a?.references, [ref2.eventId]);
      await redactEvent(e1);
      await redactEvent(ref2);
      a = (await ctx.store.relations.getAggregations([root.eventId])).get(root.eventId);
      assert.equal(a, undefined);
    });
  });
}
