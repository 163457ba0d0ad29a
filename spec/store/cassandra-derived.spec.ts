// Cassandra specifics of the derived-data modules (notifications, relations, search, admin):
// reads that cross bucket boundaries, two instances on one keyspace, and what room deletion and
// history purge leave behind in the tables themselves.

import type cassandra from 'cassandra-driver';
import Database from 'better-sqlite3';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { roomBucket, userBucket, USER_BUCKET_HOURS } from '../../src/store/cassandra/derived-common.js';
import { BUCKET_MS, positionAt, positionMs } from '../../src/store/cassandra/positions.js';
import { MAX_TERMS_PER_DOC } from '../../src/store/cassandra/search.js';
import type { PushActionInput, SearchQuery } from '../../src/store/types.js';
import { FakeRoom, SERVER, userId, type SentEvent } from './fixtures.js';

const keyspace = freshKeyspace('derived');
let addr = '';
let client: cassandra.Client | null = null;
let migrated = false;
const stores: CassandraStore[] = [];

async function open(workerId?: number): Promise<CassandraStore> {
  const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated, workerId });
  migrated = true;
  stores.push(s);
  return s;
}

const alice = userId('alice');
const bob = userId('bob');
const carol = userId('carol');

const notifyAlice = (o: { highlight?: boolean } = {}): PushActionInput[] => [
  { userId: alice, notify: true, highlight: o.highlight ?? false, threadId: null, actions: ['notify'] },
];

describe('Cassandra derived data', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    client = await cassandraClient(addr, undefined);
  });
  after(async function () {
    this.timeout(180_000);
    for (const s of stores.splice(0)) await s.close();
    if (client) {
      await dropKeyspace(client, keyspace);
      await client.shutdown();
    }
  });
  afterEach(async function () {
    for (const s of stores.splice(0)) await s.close();
    if (migrated) await truncateKeyspace(client!, keyspace);
  });

  /** Count of rows in `table` whose `column` is `value` (a filtering scan: fine for a test). */
  async function rowsWith(table: string, column: string, value: string): Promise<number> {
    const rs = await client!.execute(`SELECT COUNT(*) AS n FROM ${keyspace}.${table} WHERE ${column} = ? ALLOW FILTERING`, [value], { prepare: true });
    return Number(rs.first()!['n']);
  }

  it('reads notifications, counts and search matches across bucket boundaries', async function () {
    // The first store creates the schema. The second writes as a worker whose clock was left
    // (as by an earlier run) a few ticks below the next week boundary, which is also an hour
    // boundary: user buckets (weeks) and room buckets (hours) all roll over among the sends.
    const first = await open();
    await first.close();
    const worker = 7;
    const epoch = positionMs(0);
    const week = USER_BUCKET_HOURS * BUCKET_MS;
    const boundaryMs = epoch + (Math.floor((Date.now() - epoch) / week) + 1) * week;
    const boundary = positionAt(boundaryMs, 0);
    await client!.execute(`INSERT INTO ${keyspace}.worker_clock (id, high) VALUES (?, ?)`, [worker, positionAt(boundaryMs, worker, -12)], { prepare: true });
    const store = await open(worker);
    assert.equal(store.workerId, worker);

    const room = new FakeRoom();
    await room.create(store, bob);
    await room.member(store, alice, alice, 'join');
    const sent: SentEvent[] = [];
    for (let i = 0; i < 10; i++) {
      const highlight = i % 3 === 0;
      sent.push(
        await room.send(store, 'm.room.message', bob, { body: `walrus ${i}` }, undefined, {
          // Even messages notify alice by a per-user row, odd ones by a shared bulk result.
          ...(i % 2 === 0
            ? { pushActions: notifyAlice({ highlight }) }
            : { pushBulk: { notify: true, highlight, threadId: null, actions: ['notify'], except: [] } }),
        }),
      );
    }
    assert.ok(sent[0]!.stream < boundary && sent[9]!.stream >= boundary, `positions ${sent[0]!.stream}..${sent[9]!.stream} straddle ${boundary}`);
    assert.equal(userBucket(sent[9]!.stream), userBucket(sent[0]!.stream) + 1);
    assert.equal(roomBucket(sent[9]!.stream), roomBucket(sent[0]!.stream) + 1);

    const counts = (await store.notifications.getUnreadCounts(alice, [room.roomId], store.currentPosition())).get(room.roomId)!;
    assert.deepEqual(counts.main, { notification_count: 10, highlight_count: 4 });
    const upToBoundary = (await store.notifications.getUnreadCounts(alice, [room.roomId], boundary - 1)).get(room.roomId)!;
    assert.equal(upToBoundary.main.notification_count, sent.filter((s) => s.stream < boundary).length);

    const ids = (xs: { eventId: string }[]) => xs.map((x) => x.eventId);
    const newestFirst = [...sent].reverse();
    const pages: string[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await store.notifications.getNotifications(alice, { before, limit: 3, onlyHighlight: false });
      if (page.length === 0) break;
      pages.push(...ids(page));
      before = page[page.length - 1]!.stream;
    }
    assert.deepEqual(pages, ids(newestFirst), 'pages of 3 walk every notification once, newest first, across the boundary');

    const q: SearchQuery = { words: ['walr'], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 4 };
    assert.equal(await store.search.countEvents(q), 10);
    const p1 = await store.search.searchEvents(q);
    const p2 = await store.search.searchEvents({ ...q, before: p1[3]!.event.stream });
    const p3 = await store.search.searchEvents({ ...q, before: p2[3]!.event.stream });
    assert.deepEqual([...p1, ...p2, ...p3].map((h) => h.event.eventId), ids(newestFirst));
    const ranked = await store.search.searchEvents({ ...q, order: 'rank', limit: 20 });
    assert.deepEqual(new Set(ranked.map((h) => h.event.eventId)), new Set(ids(sent)));
  });

  it('indexes a 60 KB body with thousands of distinct words in the event\'s batch, up to the term cap', async function () {
    const store = await open();
    const room = new FakeRoom();
    await room.create(store, alice);
    const words = Array.from({ length: 10_000 }, (_, i) => `w${i}x`);
    const big = await room.message(store, alice, words.join(' '));
    assert.ok(words.join(' ').length > 60_000);
    const q: SearchQuery = { words: ['w7x'], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 5 };
    assert.deepEqual((await store.search.searchEvents(q)).map((h) => h.event.eventId), [big.eventId]);
    assert.deepEqual(await store.search.searchEvents({ ...q, words: [`w${MAX_TERMS_PER_DOC - 1}x`, 'w0x'] }).then((h) => h.length), 1);
    assert.equal(await store.search.countEvents({ ...q, words: [`w${MAX_TERMS_PER_DOC}x`] }), 0, 'words past the cap are not indexed');
  });

  it('matches query words exactly as the SQLite FTS5 index (unicode61, remove_diacritics 2) does', async function () {
    const texts = [
      'The quick brown fox', 'café au lait', 'e\u0301te', 'a+b=c', 'foo_bar baz', 'x🎉y', 'naïve Ärger', 'ǅemal straße',
      'Ωmega ΣΊΣΥΦΟΣ', '東京タワー に 行く', 'hello-world foo.bar', "don't stop", 'ＡＢＣ full width', 'İstanbul',
      'ﬁne ligature', '١٢٣ arabic digits', 'mañana ñ', 'Œuvre æsthetic',
    ];
    const queries = [
      'fox', 'cafe', 'ete', 'b', 'bar', 'y', 'arger', 'naive', 'strasse', 'straße', 'stra', 'dz', 'ǆemal', 'omega', 'σισυφος',
      'ΣΊΣ', '東京', 'タワー', '行く', 'world', 'don', 't', 'abc', 'ＡＢＣ', 'istanbul', 'fine', 'ﬁne', '١٢٣', 'manana',
      'oeuvre', 'œuvre', 'æsthetic', 'hello world', 'quick fox', 'brown fox', 'quick brown', '"', '*',
    ];
    const db = new Database(':memory:');
    db.exec(`CREATE VIRTUAL TABLE s USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')`);
    const store = await open();
    const room = new FakeRoom();
    await room.create(store, alice);
    const ids: string[] = [];
    for (const [i, t] of texts.entries()) {
      db.prepare('INSERT INTO s (rowid, body) VALUES (?, ?)').run(i, t);
      ids.push((await room.message(store, alice, t)).eventId);
    }
    for (const q of queries) {
      const fts = (db.prepare('SELECT rowid FROM s WHERE s MATCH ?').all(`"${q.replace(/"/g, '""')}"*`) as { rowid: number }[]).map((r) => ids[r.rowid]);
      const hits = await store.search.searchEvents({ words: [q], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 50 });
      assert.deepEqual(hits.map((h) => h.event.eventId).sort(), fts.sort(), `query ${JSON.stringify(q)}`);
    }
    db.close();
  });

  it('a second instance on the keyspace reads what the first wrote', async function () {
    const a = await open();
    const b = await open();
    const room = new FakeRoom();
    await room.create(a, alice);
    await room.member(a, bob, bob, 'join');
    const root = await room.send(a, 'm.room.message', bob, { body: 'otters everywhere' }, undefined, { pushActions: notifyAlice() });
    const reply = await room.send(a, 'm.room.message', carol, {
      body: 'in thread',
      'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId },
    });

    const counts = (await b.notifications.getUnreadCounts(alice, [room.roomId], a.currentPosition())).get(room.roomId)!;
    assert.deepEqual(counts.main, { notification_count: 1, highlight_count: 0 });
    assert.deepEqual((await b.notifications.getNotifications(alice, { limit: 5, onlyHighlight: false })).map((n) => n.eventId), [root.eventId]);
    const [thread] = await b.relations.getThreads(room.roomId, { limit: 5 });
    assert.equal(thread?.latestEventId, reply.eventId);
    assert.deepEqual(thread?.participants, [bob, carol].sort());
    const hits = await b.search.searchEvents({ words: ['otter'], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 5 });
    assert.deepEqual(hits.map((h) => h.event.eventId), [root.eventId]);
  });

  it('lists threads past a long run of replies to one thread, each thread once, at its latest reply', async function () {
    const store = await open();
    const room = new FakeRoom();
    await room.create(store, alice);
    const reply = (root: SentEvent, body: string) =>
      room.send(store, 'm.room.message', bob, { body, 'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId } });
    const quiet = await room.message(store, alice, 'quiet root');
    const busy = await room.message(store, alice, 'busy root');
    const quietReply = await reply(quiet, 'the only reply');
    // More replies than one page of the activity walk, all but the last superseded.
    let last: SentEvent | null = null;
    for (let i = 0; i < 130; i++) last = await reply(busy, `reply ${i}`);
    const list = await store.relations.getThreads(room.roomId, { limit: 10 });
    assert.deepEqual(list.map((t) => [t.rootEventId, t.latestEventId, t.count]), [
      [busy.eventId, last!.eventId, 130],
      [quiet.eventId, quietReply.eventId, 1],
    ]);
    const page = await store.relations.getThreads(room.roomId, { limit: 1, before: last!.stream });
    assert.deepEqual(page.map((t) => t.rootEventId), [quiet.eventId], 'a thread whose latest reply is at or above `before` is not listed');
  });

  it('deleting a room leaves no row naming it in any table, keeps its block and the other room', async function () {
    const store = await open();
    const doomed = new FakeRoom();
    const kept = new FakeRoom();
    for (const room of [doomed, kept]) {
      await room.create(store, bob);
      await room.member(store, alice, alice, 'join');
      const root = await room.send(store, 'm.room.message', bob, { body: 'some words' }, undefined, {
        pushActions: notifyAlice(),
        pushBulk: { notify: true, highlight: false, threadId: null, actions: ['notify'], except: [alice] },
      });
      await room.send(store, 'm.room.message', alice, { body: 'reply', 'm.relates_to': { rel_type: 'm.thread', event_id: root.eventId } });
      await room.send(store, 'm.room.topic', bob, { topic: 'a topic' }, '');
      await store.receipts.putReceipt({ roomId: room.roomId, userId: alice, type: 'm.read', threadId: null, eventId: root.eventId, eventStream: root.stream, ts: 1 });
      await store.rooms.createAlias(`#${room.roomId.slice(1, 8)}:${SERVER}`, room.roomId, bob);
    }
    await store.admin.setRoomBlocked(doomed.roomId, true);
    // Partitions keyed by the room's state groups and auth chains, not by its room_id.
    const idsOf = async (table: string, column: string, roomId: string) =>
      (await client!.execute(`SELECT ${column} FROM ${keyspace}.${table} WHERE room_id = ? ALLOW FILTERING`, [roomId], { prepare: true })).rows.map(
        (r) => r[column] as unknown,
      );
    const groups = await idsOf('state_groups', 'group_id', doomed.roomId);
    const chains = await idsOf('auth_chains', 'chain_id', doomed.roomId);
    assert.ok(groups.length > 0 && chains.length > 0);
    const keyedRows = async () => {
      let n = 0;
      for (const g of groups) n += (await client!.execute(`SELECT group_id FROM ${keyspace}.state_group_entries WHERE group_id = ?`, [g], { prepare: true })).rowLength;
      for (const c of chains) {
        n += (await client!.execute(`SELECT origin_chain FROM ${keyspace}.auth_chain_links WHERE origin_chain = ?`, [c], { prepare: true })).rowLength;
        n += (await client!.execute(`SELECT target_chain FROM ${keyspace}.auth_chain_links_in WHERE target_chain = ?`, [c], { prepare: true })).rowLength;
      }
      return n;
    };
    assert.ok((await keyedRows()) > 0);
    assert.equal(await store.admin.deleteRoom(doomed.roomId), true);
    assert.equal(await keyedRows(), 0, 'no state group entries or auth chain links of the deleted room');

    const tables = await client!.execute(
      `SELECT table_name FROM system_schema.columns WHERE keyspace_name = ? AND column_name = 'room_id' ALLOW FILTERING`,
      [keyspace],
      { prepare: true },
    );
    const names = tables.rows.map((r) => r['table_name'] as string);
    for (const t of ['push_actions', 'push_bulk', 'notif_memberships', 'notif_own_latest', 'relations', 'threads', 'search_docs', 'search_terms', 'events', 'receipts']) {
      assert.ok(names.includes(t), `${t} has a room_id column`);
    }
    let keptRows = 0;
    for (const t of names) {
      assert.equal(await rowsWith(t, 'room_id', doomed.roomId), 0, `no row of the deleted room in ${t}`);
      keptRows += await rowsWith(t, 'room_id', kept.roomId);
    }
    assert.ok(keptRows > 30, `the other room keeps its rows (${keptRows})`);
    assert.equal(await store.admin.isRoomBlocked(doomed.roomId), true);
    const left = await store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false });
    assert.deepEqual(new Set(left.map((n) => n.roomId)), new Set([kept.roomId]));
  });

  it('purging history drops the purged events\' notifications, relations and search documents', async function () {
    const store = await open();
    const room = new FakeRoom();
    await room.create(store, alice);
    const remote = '@zed:remote.example';
    const old = await room.send(store, 'm.room.message', remote, { body: 'ancient penguin' }, undefined, { pushActions: notifyAlice() });
    const react = await room.send(store, 'm.reaction', remote, { 'm.relates_to': { rel_type: 'm.annotation', event_id: old.eventId, key: 'x' } });
    const cut = await room.send(store, 'm.room.topic', alice, { topic: 'cut' }, '');
    const recent = await room.send(store, 'm.room.message', remote, { body: 'recent penguin' }, undefined, { pushActions: notifyAlice() });

    assert.equal(await store.admin.purgeHistory(room.roomId, cut.stream, { includeLocal: false, serverName: SERVER }), 2);
    assert.deepEqual((await store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false })).map((n) => n.eventId), [recent.eventId]);
    assert.deepEqual(await store.relations.getRelations({ roomId: room.roomId, eventId: old.eventId, dir: 'b', limit: 10 }), []);
    const q: SearchQuery = { words: ['penguin'], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 10 };
    assert.deepEqual((await store.search.searchEvents(q)).map((h) => h.event.eventId), [recent.eventId]);
    assert.equal(await store.search.countEvents(q), 1);
    for (const t of ['push_actions', 'relations', 'relation_of_event', 'search_of_event']) {
      assert.equal(await rowsWith(t, 'event_id', old.eventId) + (await rowsWith(t, 'event_id', react.eventId)), 0, `${t} keeps no purged event`);
    }
  });
});
