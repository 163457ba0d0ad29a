// SQLite specifics of the DAG model: migration 7 converts rooms stored by the linear model, and
// state group storage stays bounded (delta chains capped, no copy of the state per event).

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate } from '../../src/store/sqlite/db.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations/index.js';
import { SNAPSHOT_MIN_DELTA } from '../../src/store/sqlite/state-groups.js';
import { FakeRoom, stateMap, userId, type BuiltEvent } from './fixtures.js';

const alice = userId('alice');
const bob = userId('bob');

describe('SqliteStore: DAG storage', function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-dag-'));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrates rooms stored by the linear model: edges, depth, state at each event, auth chains', async function () {
    const path = join(dir, 'v6.sqlite');
    const room = new FakeRoom();
    const evs: BuiltEvent[] = [];
    const state = new Map<string, string>();
    const add = (ev: BuiltEvent): BuiltEvent => {
      room.input(ev); // advances the fake room's head and state
      evs.push(ev);
      return ev;
    };
    const create = add(room.build('m.room.create', alice, { room_version: '11' }, ''));
    const join1 = add(room.build('m.room.member', alice, { membership: 'join' }, alice));
    const pl = add(room.build('m.room.power_levels', alice, { users: { [alice]: 100 } }, ''));
    const topic = add(room.build('m.room.topic', alice, { topic: 'old' }, ''));
    const msg = add(room.build('m.room.message', alice, { body: 'hi' }));
    const join2 = add(room.build('m.room.member', bob, { membership: 'join' }, bob));
    const raw = new Database(path);
    try {
      migrate(raw, MIGRATIONS.filter((m) => m.version < 7));
      raw.prepare("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, '11', ?, 1)").run(room.roomId, alice);
      const ins = raw.prepare('INSERT INTO events (stream, event_id, room_id, type, state_key, sender, pdu_json) VALUES (?, ?, ?, ?, ?, ?, ?)');
      const hist = raw.prepare('INSERT INTO state_history (room_id, type, state_key, stream, event_id) VALUES (?, ?, ?, ?, ?)');
      const cur = raw.prepare(
        'INSERT INTO current_state (room_id, type, state_key, event_id, stream) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET event_id = excluded.event_id, stream = excluded.stream',
      );
      evs.forEach((ev, i) => {
        ins.run(i + 1, ev.eventId, room.roomId, ev.pdu.type, ev.pdu.state_key ?? null, ev.pdu.sender, JSON.stringify(ev.pdu));
        if (ev.pdu.state_key !== undefined) {
          hist.run(room.roomId, ev.pdu.type, ev.pdu.state_key, i + 1, ev.eventId);
          cur.run(room.roomId, ev.pdu.type, ev.pdu.state_key, ev.eventId, i + 1);
          state.set(`${ev.pdu.type}|${ev.pdu.state_key}`, ev.eventId);
        }
      });
      raw.prepare('INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)').run(room.roomId, join2.eventId);
      raw.prepare('UPDATE stream_meta SET max_reserved = ?').run(evs.length);
    } finally {
      raw.close();
    }

    const store = await openSqliteStore({ path });
    try {
      assert.ok(store.appliedMigrations.includes(7) && store.appliedMigrations.every((v) => v >= 7), 'the DAG migration (7) and only later ones ran');
      // The search migration (0009) indexes what was already stored.
      const found = await store.search.searchEvents({ words: ['hi'], roomIds: [room.roomId], keys: ['content.body', 'content.topic'], order: 'recent', limit: 10 });
      assert.deepEqual(found.map((h) => h.event.eventId), [msg.eventId]);
      const topics = await store.search.searchEvents({ words: ['old'], roomIds: [room.roomId], keys: ['content.topic'], order: 'recent', limit: 10 });
      assert.deepEqual(topics.map((h) => h.event.eventId), [topic.eventId]);
      assert.deepEqual(await store.rooms.getPrevEvents([msg.eventId]), new Map([[msg.eventId, [topic.eventId]]]));
      assert.deepEqual(await store.rooms.getPrevEvents([join1.eventId]), new Map([[join1.eventId, [create.eventId]]]));
      const beforeMsg = stateMap((await store.rooms.getStateAtEvent(msg.eventId, 'before')) ?? []);
      assert.equal(beforeMsg.get('m.room.topic|'), topic.eventId);
      assert.equal(beforeMsg.get(`m.room.member|${bob}`), undefined);
      assert.equal(stateMap((await store.rooms.getStateAtEvent(topic.eventId, 'before')) ?? []).get('m.room.topic|'), undefined);
      assert.deepEqual(stateMap((await store.rooms.getStateAtEvent(join2.eventId, 'after')) ?? []), state);
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, 3)), new Map([...state].filter(([, id]) => [create, join1, pl].some((e) => e.eventId === id))));
      const group = await store.rooms.getCurrentStateGroup(room.roomId);
      assert.ok(group !== null);
      assert.deepEqual(stateMap(await store.rooms.getStateGroup(group)), state);
      // The auth chain index covers the old events: bob's join and the topic differ by their own chains.
      const diff = await store.rooms.getAuthChainDifference(room.roomId, [[topic.eventId], [join2.eventId]]);
      assert.ok(!diff.has(create.eventId), 'the create event is in both auth chains');
      const pos = await store.rooms.getTopologicalPositions([msg.eventId]);
      assert.deepEqual(pos.get(msg.eventId), { depth: msg.pdu.depth, stream: 5 });
      // And the room carries on.
      const next = await room.message(store, bob, 'after migration');
      assert.equal(stateMap((await store.rooms.getStateAtEvent(next.eventId, 'before')) ?? []).get(`m.room.member|${bob}`), join2.eventId);
    } finally {
      await store.close();
    }
  });

  it('drops event_edges (migration 23) and still answers getPrevEvents from the PDUs', async function () {
    const path = join(dir, 'edges.sqlite');
    const raw = new Database(path);
    try {
      migrate(raw, MIGRATIONS.filter((m) => m.version < 23));
      const edgeObjects = () => (raw.prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'event_edges' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      assert.deepEqual(edgeObjects(), ['event_edges', 'event_edges_prev'], 'migration 7 created them');
      migrate(raw, MIGRATIONS);
      assert.deepEqual(edgeObjects(), []);
    } finally {
      raw.close();
    }
    const store = await openSqliteStore({ path });
    try {
      const room = new FakeRoom();
      const [create, join1] = await room.create(store, alice);
      assert.deepEqual(await store.rooms.getPrevEvents([join1.eventId, create.eventId, '$unknown']), new Map([[join1.eventId, [create.eventId]], [create.eventId, []]]));
    } finally {
      await store.close();
    }
  });

  it('bounds reads by the size of the state and keeps storage linear in the number of changes', async function () {
    this.timeout(60_000);
    const path = join(dir, 'bounded.sqlite');
    const store = await openSqliteStore({ path, synchronous: 'normal' });
    const room = new FakeRoom();
    const members = 400;
    const changes = 800;
    let last = '';
    try {
      await room.create(store, alice);
      for (let i = 0; i < members; i++) await room.member(store, userId(`u${i}`), userId(`u${i}`), 'join');
      for (let i = 0; i < changes; i++) {
        // Membership churn and topic changes: the state keeps its size, the history grows.
        const u = userId(`u${i % members}`);
        await room.member(store, u, u, i % 2 ? 'join' : 'leave');
        last = (await room.send(store, 'm.room.topic', alice, { topic: `t${i}` }, '')).eventId;
        await room.message(store, alice, `m${i}`);
      }
      const state = await store.rooms.getStateAtEvent(last, 'after');
      assert.equal(state?.length, 5 + members + 1);
    } finally {
      await store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      // Every group reads one snapshot plus at most max(min, snapshot / 2) delta rows.
      const worst = db
        .prepare('SELECT COUNT(*) AS n FROM state_groups WHERE delta_rows > MAX(?, snapshot_size / 2.0)')
        .get(SNAPSHOT_MIN_DELTA) as { n: number };
      assert.equal(worst.n, 0);
      const stateEvents = 5 + members + 2 * changes;
      const entries = (db.prepare('SELECT COUNT(*) AS n FROM state_group_entries').get() as { n: number }).n;
      // One delta row per state event, snapshots paid for by the deltas before them: O(changes).
      // A copy per 100 groups (about 400 rows each here) would be ~8,000 rows more.
      assert.ok(entries <= 3 * stateEvents + 10, `${entries} entries for ${stateEvents} state events`);
      const groups = (db.prepare('SELECT COUNT(*) AS n FROM state_groups').get() as { n: number }).n;
      assert.ok(groups <= stateEvents + 2, `${groups} groups: messages must not create groups`);
    } finally {
      db.close();
    }
  });
});
