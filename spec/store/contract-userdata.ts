// Contract: account data streams, filters, transaction-response cache.

import { assert } from '../helpers/assert.js';
import type { JsonObject } from '../../src/protocol/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, SERVER, userId } from './fixtures.js';

export function describeUserDataContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const roomA = `!a:${SERVER}`;

  describe('account data', function () {
    it('stores global and per-room account data at completed stream positions', async function () {
      const s1 = await ctx.store.userData.setAccountData(alice, '', 'm.push_rules', { global: { override: [] } });
      assert.ok(ctx.store.currentPosition() >= s1, 'position completed before resolve');
      const s2 = await ctx.store.userData.setAccountData(alice, roomA, 'm.tag', { tags: { 'm.favourite': { order: 0.5 } } });
      assert.ok(s2 > s1);
      assert.deepEqual(await ctx.store.userData.getAccountData(alice, '', 'm.push_rules'), { global: { override: [] } });
      assert.deepEqual(await ctx.store.userData.getAccountData(alice, roomA, 'm.tag'), { tags: { 'm.favourite': { order: 0.5 } } });
      // Global and room scopes, and users, are separate.
      assert.equal(await ctx.store.userData.getAccountData(alice, '', 'm.tag'), null);
      assert.equal(await ctx.store.userData.getAccountData(alice, roomA, 'm.push_rules'), null);
      assert.equal(await ctx.store.userData.getAccountData(bob, '', 'm.push_rules'), null);
    });

    it('shares the global stream with room events', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const [ad, ev, ad2] = await Promise.all([
        ctx.store.userData.setAccountData(alice, '', 'a', { n: 1 }),
        room.message(ctx.store, alice, 'x'),
        ctx.store.userData.setAccountData(bob, '', 'b', { n: 2 }),
      ]);
      const positions = [ad, ev.stream, ad2];
      assert.equal(new Set(positions).size, 3, 'no position is handed out twice');
    });

    it('overwrites and lists all account data of a user', async function () {
      await ctx.store.userData.setAccountData(alice, '', 'm.direct', { [bob]: [roomA] });
      await ctx.store.userData.setAccountData(alice, '', 'm.direct', { [bob]: [] });
      const last = await ctx.store.userData.setAccountData(alice, roomA, 'm.fully_read', { event_id: '$e' });
      await ctx.store.userData.setAccountData(bob, '', 'm.direct', { x: [] });
      const all = await ctx.store.userData.getAllAccountData(alice);
      assert.equal(all.length, 2);
      const byKey = new Map(all.map((r) => [`${r.roomId}|${r.type}`, r]));
      assert.deepEqual(byKey.get('|m.direct')?.content, { [bob]: [] });
      assert.deepEqual(byKey.get(`${roomA}|m.fully_read`), { roomId: roomA, type: 'm.fully_read', content: { event_id: '$e' }, stream: last });
      assert.deepEqual(await ctx.store.userData.getAllAccountData(userId('nobody')), []);
    });

    it('reports changes in (from, to]', async function () {
      const s1 = await ctx.store.userData.setAccountData(alice, '', 'one', { v: 1 });
      const s2 = await ctx.store.userData.setAccountData(alice, roomA, 'two', { v: 2 });
      await ctx.store.userData.setAccountData(bob, '', 'one', { v: 'bob' });
      const s3 = await ctx.store.userData.setAccountData(alice, '', 'three', { v: 3 });

      const summary = (rs: { roomId: string; type: string; stream: number }[]) => rs.map((r) => `${r.roomId}|${r.type}@${r.stream}`).sort();
      assert.deepEqual(summary(await ctx.store.userData.getAccountDataChanges(alice, s1 - 1, s2)), [`|one@${s1}`, `${roomA}|two@${s2}`].sort());
      assert.deepEqual(summary(await ctx.store.userData.getAccountDataChanges(alice, s1, s3)), [`${roomA}|two@${s2}`, `|three@${s3}`].sort());
      assert.deepEqual(await ctx.store.userData.getAccountDataChanges(alice, s3, ctx.store.currentPosition()), []);

      // A rewrite moves the key to its new position.
      const s4 = await ctx.store.userData.setAccountData(alice, '', 'one', { v: 11 });
      const changes = await ctx.store.userData.getAccountDataChanges(alice, s3, s4);
      assert.deepEqual(changes.map((c) => [c.type, c.content, c.stream]), [['one', { v: 11 }, s4]]);
    });

    it('keeps stored content independent of the caller\'s objects', async function () {
      const content: JsonObject = { list: [1, 2] };
      const pending = ctx.store.userData.setAccountData(alice, '', 'k', content);
      (content.list as number[]).push(3);
      await pending;
      const got = await ctx.store.userData.getAccountData(alice, '', 'k');
      assert.deepEqual(got, { list: [1, 2] });
      (got!.list as number[]).push(4);
      assert.deepEqual(await ctx.store.userData.getAccountData(alice, '', 'k'), { list: [1, 2] });
    });
  });

  describe('filters', function () {
    it('stores filter JSON byte for byte and returns fresh IDs', async function () {
      // Odd whitespace, key order, escapes and non-ASCII must all survive.
      const json = '{ "room":{"timeline" : {"limit":10, "types":["m.room.*"]}},\n\t"event_fields":["content.body"], "x":"\\u00e9 é 😀", "a":1.50 }';
      const id1 = await ctx.store.userData.createFilter(alice, json);
      const id2 = await ctx.store.userData.createFilter(alice, '{}');
      assert.equal(typeof id1, 'string');
      assert.ok(id1.length > 0 && !id1.startsWith('{'));
      assert.notEqual(id1, id2);
      assert.equal(await ctx.store.userData.getFilter(alice, id1), json);
      assert.equal(await ctx.store.userData.getFilter(alice, id2), '{}');
      assert.equal(await ctx.store.userData.getFilter(bob, id1), null, 'filters are per user');
      assert.equal(await ctx.store.userData.getFilter(alice, 'unknown'), null);
    });

    it('hands out distinct IDs under concurrency', async function () {
      const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => ctx.store.userData.createFilter(alice, `{"n":${i}}`)));
      assert.equal(new Set(ids).size, 50);
      for (let i = 0; i < 50; i++) assert.equal(await ctx.store.userData.getFilter(alice, ids[i]), `{"n":${i}}`);
    });
  });

  describe('transaction responses', function () {
    it('caches responses per user, device, scope and transaction ID', async function () {
      assert.equal(await ctx.store.userData.getTxnResponse(alice, 'D1', 'sendToDevice', 't1'), null);
      await ctx.store.userData.putTxnResponse(alice, 'D1', 'sendToDevice', 't1', { ok: true });
      assert.deepEqual(await ctx.store.userData.getTxnResponse(alice, 'D1', 'sendToDevice', 't1'), { ok: true });
      assert.equal(await ctx.store.userData.getTxnResponse(alice, 'D2', 'sendToDevice', 't1'), null);
      assert.equal(await ctx.store.userData.getTxnResponse(alice, 'D1', 'other', 't1'), null);
      assert.equal(await ctx.store.userData.getTxnResponse(bob, 'D1', 'sendToDevice', 't1'), null);
      assert.equal(await ctx.store.userData.getTxnResponse(alice, 'D1', 'sendToDevice', 't2'), null);
    });
  });
}
