// Contract: full-text search over room events (SearchStore in src/store/search-types.ts).

import { assert } from '../helpers/assert.js';
import type { SearchQuery } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, redact, userId } from './fixtures.js';

export function describeSearchContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');

  const query = (room: FakeRoom | FakeRoom[], words: string[], extra: Partial<SearchQuery> = {}): SearchQuery => ({
    words,
    roomIds: (Array.isArray(room) ? room : [room]).map((r) => r.roomId),
    keys: ['content.body', 'content.name', 'content.topic'],
    order: 'recent',
    limit: 10,
    ...extra,
  });
  const bodies = async (q: SearchQuery) => (await ctx.store.search.searchEvents(q)).map((h) => h.event.pdu.content.body ?? h.event.pdu.content.name ?? h.event.pdu.content.topic);

  describe('search', function () {
    it('finds words by prefix in bodies, names and topics, newest first, only in the given rooms and keys', async function () {
      const room = new FakeRoom();
      const other = new FakeRoom();
      await room.create(ctx.store, alice);
      await other.create(ctx.store, bob);
      await room.message(ctx.store, alice, 'The quick brown fox');
      await room.message(ctx.store, alice, 'a lazy dog');
      await other.message(ctx.store, bob, 'another fox elsewhere');
      await room.send(ctx.store, 'm.room.name', alice, { name: 'Foxhole' }, '');
      await room.send(ctx.store, 'm.room.topic', alice, { topic: 'all about FOXES' }, '');
      await room.send(ctx.store, 'm.room.encrypted', alice, { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'fox' });

      assert.deepEqual(await bodies(query(room, ['fox'])), ['all about FOXES', 'Foxhole', 'The quick brown fox']);
      assert.deepEqual(await bodies(query(room, ['fox'], { keys: ['content.body'] })), ['The quick brown fox']);
      assert.deepEqual(await bodies(query([room, other], ['fox'], { keys: ['content.body'] })), ['another fox elsewhere', 'The quick brown fox']);
      assert.deepEqual(await bodies(query(room, ['quick', 'fox'])), ['The quick brown fox'], 'all words must occur');
      assert.deepEqual(await bodies(query(room, ['quick', 'dog'])), []);
      assert.equal(await ctx.store.search.countEvents(query(room, ['fox'])), 3);
      assert.equal(await ctx.store.search.countEvents(query(room, [])), 0);
    });

    it('pages by position (recent) and by offset (rank), and applies sender and type filters', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push(await room.message(ctx.store, i % 2 ? bob : alice, `cat number ${i}`));
      const page1 = await ctx.store.search.searchEvents(query(room, ['cat'], { limit: 2 }));
      assert.deepEqual(page1.map((h) => h.event.eventId), [sent[4].eventId, sent[3].eventId]);
      const page2 = await ctx.store.search.searchEvents(query(room, ['cat'], { limit: 2, before: page1[1].event.stream }));
      assert.deepEqual(page2.map((h) => h.event.eventId), [sent[2].eventId, sent[1].eventId]);
      assert.deepEqual(await bodies(query(room, ['cat'], { senders: [bob] })), ['cat number 3', 'cat number 1']);
      assert.deepEqual(await bodies(query(room, ['cat'], { notSenders: [bob], limit: 1 })), ['cat number 4']);
      assert.deepEqual(await bodies(query(room, ['cat'], { types: ['m.room.name'] })), []);
      assert.deepEqual(await bodies(query(room, ['cat'], { notTypes: ['m.room.*'] })), []);
      assert.equal((await bodies(query(room, ['cat'], { types: ['m.room.*'] }))).length, 5);

      await room.message(ctx.store, alice, 'cat cat cat cat');
      const ranked = await ctx.store.search.searchEvents(query(room, ['cat'], { order: 'rank', limit: 3 }));
      assert.equal(ranked[0].event.pdu.content.body, 'cat cat cat cat', 'the densest match ranks first');
      assert.ok(ranked[0].rank >= ranked[1].rank && ranked[1].rank >= ranked[2].rank, 'rank descends');
      const rest = await ctx.store.search.searchEvents(query(room, ['cat'], { order: 'rank', limit: 10, offset: 3 }));
      assert.equal(rest.length, 3);
      const seen = new Set([...ranked, ...rest].map((h) => h.event.eventId));
      assert.equal(seen.size, 6, 'rank pages do not overlap');
    });

    it('treats query syntax as text and forgets redacted events', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const secret = await room.message(ctx.store, alice, 'the password is hunter2');
      await room.message(ctx.store, alice, 'say "hello" NEAR(x) OR * -');
      assert.deepEqual(await bodies(query(room, ['"hello"', 'NEAR(x)', 'OR'])), ['say "hello" NEAR(x) OR * -']);
      assert.deepEqual(await bodies(query(room, ['*'])), []);
      assert.deepEqual(await bodies(query(room, ['hunter2'])), ['the password is hunter2']);
      await room.send(ctx.store, 'm.room.redaction', alice, { redacts: secret.eventId }, undefined, {
        redaction: { targetEventId: secret.eventId, redactedPdu: redact(secret.pdu) },
      });
      assert.deepEqual(await bodies(query(room, ['hunter2'])), []);
      assert.equal(await ctx.store.search.countEvents(query(room, ['password'])), 0);
    });

    it('finds accepted events only: not soft-failed or rejected ones', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      await room.message(ctx.store, alice, 'ghost accepted');
      const head = await ctx.store.rooms.getForwardExtremities(room.roomId);
      await ctx.store.rooms.persistEvent({ ...room.input(room.build('m.room.message', bob, { body: 'ghost soft' }), { forwardExtremities: head }), softFailed: true });
      await ctx.store.rooms.persistEvent({ ...room.input(room.build('m.room.message', bob, { body: 'ghost rejected' }), { forwardExtremities: head }), rejected: 'not allowed' });
      assert.deepEqual(await bodies(query(room, ['ghost'])), ['ghost accepted']);
      assert.equal(await ctx.store.search.countEvents(query(room, ['ghost'])), 1);
    });

    it('keeps the index across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      await room.message(ctx.store, alice, 'durable words');
      const store = await ctx.closeAndReopen();
      const hits = await store.search.searchEvents(query(room, ['durable']));
      assert.deepEqual(hits.map((h) => h.event.pdu.content.body), ['durable words']);
    });
  });
}
