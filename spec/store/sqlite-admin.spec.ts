// SQLite specifics of AdminStore.deleteRoom: no row of the room survives anywhere, including the
// DAG tables that are not keyed by room_id (state group entries, auth chain links) and the
// search index, while another room's rows are untouched.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { FakeRoom, userId } from './fixtures.js';

describe('SqliteStore: admin room deletion', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-admin-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves no row of the deleted room in any table and keeps the other room whole', async function () {
    const path = join(dir, 'h.sqlite');
    const store = await openSqliteStore({ path });
    const alice = userId('alice');
    const doomed = new FakeRoom();
    const kept = new FakeRoom();
    try {
      for (const room of [doomed, kept]) {
        await room.create(store, alice);
        await room.member(store, alice, userId('bob'), 'invite');
        await room.message(store, alice, 'some words');
        await room.send(store, 'm.room.topic', alice, { topic: 'a topic' }, '');
      }
      assert.equal(await store.admin.deleteRoom(doomed.roomId), true);
    } finally {
      await store.close();
    }

    const db = new Database(path, { readonly: true });
    try {
      const count = (sql: string, ...args: unknown[]) => (db.prepare(sql).get(...args) as { n: number }).n;
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'").all() as { name: string }[])
        .map((t) => t.name)
        .filter((t) => count(`SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = 'room_id'`, t) > 0);
      assert.ok(tables.includes('events') && tables.includes('state_groups'), tables.join(', '));
      for (const t of tables) {
        assert.equal(count(`SELECT COUNT(*) AS n FROM "${t}" WHERE room_id = ?`, doomed.roomId), 0, `${t} still holds the deleted room`);
      }
      assert.ok(count('SELECT COUNT(*) AS n FROM events WHERE room_id = ?', kept.roomId) >= 8, 'the other room keeps its events');
      // Rows keyed by group or chain must all belong to a surviving room.
      assert.equal(count('SELECT COUNT(*) AS n FROM state_group_entries WHERE group_id NOT IN (SELECT id FROM state_groups)'), 0);
      assert.ok(count('SELECT COUNT(*) AS n FROM state_group_entries') > 0);
      assert.equal(
        count('SELECT COUNT(*) AS n FROM auth_chain_links WHERE origin_chain NOT IN (SELECT chain_id FROM events WHERE chain_id IS NOT NULL)'),
        0,
      );
      assert.equal(count("SELECT COUNT(*) AS n FROM event_search WHERE event_search MATCH 'words'"), 1, 'only the other room is searchable');
    } finally {
      db.close();
    }
  });

  // Migration 20: events_room_state holds only the events that changed the room's state group,
  // so getStateAt reads through them; a purge must keep such an event even without a state key.
  it('getStateAt through plain messages, and after a purge, with only group-changing events indexed', async function () {
    const path = join(dir, 'h.sqlite');
    const store = await openSqliteStore({ path });
    const alice = userId('alice');
    const room = new FakeRoom();
    const stateMap = (entries: { type: string; stateKey: string; eventId: string }[]) => new Map(entries.map((e) => [`${e.type}|${e.stateKey}`, e.eventId]));
    let resolving!: { eventId: string; stream: number };
    let lastPlain!: { eventId: string; stream: number };
    let plainBefore!: { eventId: string; stream: number };
    let withTopic!: Map<string, string>;
    try {
      await room.create(store, alice);
      const topic = await room.send(store, 'm.room.topic', alice, { topic: 'first' }, '');
      plainBefore = await room.message(store, alice, 'before the resolution');
      withTopic = stateMap(await store.rooms.getStateAt(room.roomId, topic.stream));
      assert.equal(withTopic.get('m.room.topic|'), topic.eventId);
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, plainBefore.stream)), withTopic);
      // A message that changes the room's group without a state key of its own (a fork's resolution).
      resolving = await room.message(store, alice, 'resolves', { stateDelta: [], stateRemoved: [{ type: 'm.room.topic', stateKey: '' }] });
      for (let i = 0; i < 3; i++) lastPlain = await room.message(store, alice, `after ${i}`);
      const resolved = stateMap(await store.rooms.getStateAt(room.roomId, lastPlain.stream));
      assert.equal(resolved.get('m.room.topic|'), undefined);
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, resolving.stream - 1)), withTopic);

      // Purging up to the last plain message keeps the resolving message (and the extremity).
      const purged = await store.admin.purgeHistory(room.roomId, lastPlain.stream - 1, { includeLocal: true, serverName: 'localhost' });
      assert.equal(purged, 3, 'the plain messages before the last one');
      assert.ok(await store.rooms.getEvent(resolving.eventId), 'the group-changing message stays');
      assert.equal(await store.rooms.getEvent(plainBefore.eventId), null);
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, lastPlain.stream)), resolved);
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, resolving.stream - 1)), withTopic);
    } finally {
      await store.close();
    }

    const db = new Database(path, { readonly: true });
    try {
      // Indexed: the five initial state events, the topic and the resolution; no plain message.
      const indexed = db
        .prepare('SELECT event_id FROM events INDEXED BY events_room_state WHERE room_id = ? AND room_state IS NOT NULL AND room_state IS NOT state_before')
        .all(room.roomId) as { event_id: string }[];
      assert.equal(indexed.length, 7, JSON.stringify(indexed));
      assert.ok(indexed.some((r) => r.event_id === resolving.eventId));
      assert.ok(!indexed.some((r) => r.event_id === lastPlain.eventId));
      // Every plain message still carries its group, equal to its state before.
      const plain = db.prepare('SELECT room_state, state_before FROM events WHERE event_id = ?').get(lastPlain.eventId) as { room_state: number; state_before: number };
      assert.ok(plain.room_state !== null && plain.room_state === plain.state_before);
    } finally {
      db.close();
    }
  });
});
