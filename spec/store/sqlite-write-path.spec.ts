// SQLite specifics of an event's write (session 9's send path). The search index: since
// migration 24 writeEvent adds an event's event_search row from the PDU object instead of a
// trigger reading pdu_json back; the rows must be exactly those the trigger made, so this
// compares the table with the trigger's own SQL (json_valid / json_type / json_extract over the
// stored events) for events of every kind and status, and checks the trigger is gone. The
// rejected-auth guard reads the partial index of migration 25 (the contract checks its answers).
// A committed batch completes its positions at once (StreamIdGenerator.finishAll).

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { searchText } from '../../src/store/sqlite/search-text.js';
import { FakeRoom, userId } from './fixtures.js';

const alice = userId('alice');
const bob = userId('bob');

/** Migration 9's insert trigger, as a query over the events table. */
const TRIGGER_ROWS = `
  SELECT stream AS rowid,
    CASE type WHEN 'm.room.message' THEN json_extract(pdu_json, '$.content.body')
      WHEN 'm.room.name' THEN json_extract(pdu_json, '$.content.name')
      WHEN 'm.room.topic' THEN json_extract(pdu_json, '$.content.topic') END AS body,
    room_id,
    CASE type WHEN 'm.room.message' THEN 'content.body' WHEN 'm.room.name' THEN 'content.name' ELSE 'content.topic' END AS key
  FROM events
  WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic')
    AND json_valid(pdu_json)
    AND json_type(pdu_json, CASE type WHEN 'm.room.message' THEN '$.content.body'
          WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END) = 'text'
  ORDER BY stream`;

describe('SqliteStore: write path', function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-search-index-'));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the rows the insert trigger wrote, for every kind and status of event, and the trigger is gone', async function () {
    const path = join(dir, 'hearth.sqlite');
    const store = await openSqliteStore({ path, synchronous: 'normal' });
    const room = new FakeRoom();
    try {
      await room.create(store, alice);
      await room.message(store, alice, 'plain words');
      await room.message(store, alice, 'with a txn', { txn: { userId: alice, deviceId: 'D', txnId: 't1' } });
      await room.send(store, 'm.room.message', alice, { msgtype: 'm.text', body: 42 });
      await room.send(store, 'm.room.message', alice, { msgtype: 'm.text', formatted_body: '<b>no body</b>' });
      await room.send(store, 'm.room.message', alice, { msgtype: 'm.text', body: { nested: 'object' } });
      await room.send(store, 'm.room.message', alice, { msgtype: 'm.text', body: '' });
      await room.send(store, 'm.room.message', alice, { msgtype: 'm.text', body: 'unicode: ünïcødé 🦊 \u0000 nul' });
      await room.send(store, 'm.room.name', alice, { name: 'A name' }, '');
      await room.send(store, 'm.room.name', alice, { name: null }, '');
      await room.send(store, 'm.room.topic', alice, { topic: 'A topic', body: 'not the key' }, '');
      await room.send(store, 'm.room.encrypted', alice, { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'x', body: 'not searchable' });
      await room.send(store, 'm.room.member', alice, { membership: 'join', name: 'member name', body: 'no' }, bob);
      const head = await store.rooms.getForwardExtremities(room.roomId);
      await store.rooms.persistEvent({ ...room.input(room.build('m.room.message', bob, { body: 'soft failed' }), { forwardExtremities: head }), softFailed: true });
      await store.rooms.persistEvent({ ...room.input(room.build('m.room.message', bob, { body: 'rejected' }), { forwardExtremities: head }), rejected: 'not allowed' });
      await store.rooms.persistEvent({ ...room.input(room.build('m.room.topic', bob, { topic: 'outlier topic' }, ''), { forwardExtremities: head }), outlier: true });
      // A duplicate is refused before anything is indexed twice.
      const dup = room.build('m.room.message', alice, { msgtype: 'm.text', body: 'only once' });
      await store.rooms.persistEvent(room.input(dup));
      await assert.rejects(store.rooms.persistEvent(room.input(dup, { forwardExtremities: [dup.eventId] })));
    } finally {
      await store.close();
    }

    const raw = new Database(path, { readonly: true });
    try {
      const expected = raw.prepare(TRIGGER_ROWS).all() as { rowid: number; body: string; room_id: string; key: string }[];
      const actual = raw.prepare('SELECT rowid, body, room_id, key FROM event_search ORDER BY rowid').all();
      assert.deepEqual(actual, expected);
      // The case list above is not vacuous: what the trigger's SQL indexes, by body.
      assert.deepEqual(
        expected.map((r) => r.body),
        ['plain words', 'with a txn', '', 'unicode: ünïcødé 🦊 \u0000 nul', 'A name', 'A topic', 'soft failed', 'rejected', 'outlier topic', 'only once'],
      );
      assert.equal(raw.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND name = 'event_search_insert'").pluck().get(), 0);
      assert.equal(raw.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'event_search_%'").pluck().get(), 2, 'redact and delete triggers stay');
    } finally {
      raw.close();
    }
  });

  it('looks up rejected auth events in the partial index, which holds the rejected events only', async function () {
    const path = join(dir, 'hearth.sqlite');
    const store = await openSqliteStore({ path, synchronous: 'normal' });
    const room = new FakeRoom();
    let rejectedId: string;
    try {
      await room.create(store, alice);
      await room.message(store, alice, 'fine');
      const head = await store.rooms.getForwardExtremities(room.roomId);
      const bad = room.build('m.room.message', bob, { body: 'refused' });
      await store.rooms.persistEvent({ ...room.input(bad, { forwardExtremities: head }), rejected: 'not allowed' });
      rejectedId = bad.eventId;
    } finally {
      await store.close();
    }
    const raw = new Database(path, { readonly: true });
    try {
      assert.deepEqual(raw.prepare('SELECT event_id FROM events INDEXED BY events_rejected WHERE rejected IS NOT NULL').pluck().all(), [rejectedId]);
      const plan = raw
        .prepare('EXPLAIN QUERY PLAN SELECT event_id FROM events INDEXED BY events_rejected WHERE event_id IN (?, ?) AND rejected IS NOT NULL LIMIT 1')
        .all('a', 'b') as { detail: string }[];
      assert.match(plan.map((r) => r.detail).join('\n'), /USING COVERING INDEX events_rejected|USING INDEX events_rejected/);
    } finally {
      raw.close();
    }
  });

  it('completes a committed batch at once: the completion listeners run once with its records in order', async function () {
    const store = await openSqliteStore({ path: join(dir, 'hearth.sqlite'), synchronous: 'full' });
    const room = new FakeRoom();
    try {
      await room.create(store, alice);
      const calls: Array<{ streams: number[]; current: number }> = [];
      const off = store.onChanges((changes, current) => calls.push({ streams: changes.map((c) => c.stream), current }));
      const before = store.writeStats().transactions;
      // Queued in one turn: one transaction, one fsync, one completion.
      const sent = await Promise.all(Array.from({ length: 5 }, (_, i) => room.message(store, alice, `batched ${i}`)));
      off();
      assert.equal(store.writeStats().transactions - before, 1);
      const streams = sent.map((e) => e.stream);
      assert.deepEqual(calls, [{ streams, current: streams[4] }]);
      assert.equal(store.currentPosition(), streams[4]);
    } finally {
      await store.close();
    }
  });

  it('searchText takes own string properties only', function () {
    const pdu = (type: string, content: object) => ({ type, content }) as unknown as Parameters<typeof searchText>[0];
    assert.deepEqual(searchText(pdu('m.room.message', { body: 'hi' })), { body: 'hi', key: 'content.body' });
    assert.deepEqual(searchText(pdu('m.room.topic', { topic: 't' })), { body: 't', key: 'content.topic' });
    assert.equal(searchText(pdu('m.room.message', Object.create({ body: 'inherited' }) as object)), null);
    assert.equal(searchText(pdu('m.room.message', { body: ['a'] })), null);
    assert.equal(searchText(pdu('m.room.create', { body: 'x' })), null);
  });
});
