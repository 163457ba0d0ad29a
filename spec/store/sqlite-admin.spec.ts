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
});
