import { assert } from '../helpers/assert.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migrate, WAL_BACKSTOP_PAGES } from '../../src/store/sqlite/db.js';
import { openSqliteStore, StoreClosedError, type SqliteStore, type SqliteStoreOptions } from '../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations/index.js';
import { describeStoreContract, type StoreHarness } from './contract.js';
import { assertConflict, FakeRoom, userId } from './fixtures.js';

interface SqliteHarness extends StoreHarness {
  store: SqliteStore;
  reopen: () => Promise<SqliteStore>;
  path: string;
  warnings: unknown[][];
}

/** A store on a real file in a fresh temp dir; the file sits in a not-yet-existing subdirectory. */
async function sqliteHarness(opts: Partial<SqliteStoreOptions> = {}): Promise<SqliteHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-store-'));
  const path = join(dir, 'nested', 'hearth.sqlite');
  const warnings: unknown[][] = [];
  const opened: SqliteStore[] = [];
  const open = async () => {
    const s = await openSqliteStore({ path, logger: { warn: (...a: unknown[]) => warnings.push(a) }, ...opts });
    opened.push(s);
    return s;
  };
  const store = await open();
  return {
    store,
    reopen: open,
    path,
    warnings,
    cleanup: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeStoreContract('sqlite (file, synchronous=full)', () => sqliteHarness());
describeStoreContract('sqlite (file, synchronous=full, fsync inside COMMIT)', () => sqliteHarness({ fsyncOffLoop: false }));

describe('SqliteStore', function () {
  let h: SqliteHarness | null = null;
  const open = async (opts: Partial<SqliteStoreOptions> = {}) => (h = await sqliteHarness(opts));
  afterEach(async function () {
    await h?.cleanup();
    h = null;
  });

  const alice = userId('alice');

  describe('connection and migrations', function () {
    it('creates parent directories and runs in WAL with synchronous=FULL by default (the fsync off the event loop)', async function () {
      const { store, path } = await open();
      assert.ok(existsSync(path));
      assert.equal(store.pragma('journal_mode'), 'wal');
      assert.equal(store.durability(), 'fsync-off-loop');
      assert.equal(store.pragma('busy_timeout'), 5000);
      // The checkpoint worker checkpoints at WAL_AUTOCHECKPOINT_PAGES; the writer's own is the backstop.
      assert.equal(store.pragma('wal_autocheckpoint'), WAL_BACKSTOP_PAGES);
    });

    it('honours synchronous=normal', async function () {
      const { store } = await open({ synchronous: 'normal' });
      assert.equal(store.pragma('synchronous'), 1);
      const room = new FakeRoom();
      await room.create(store, alice);
      assert.equal((await store.rooms.getRoomMembers(room.roomId)).length, 1);
    });

    it('works on :memory:', async function () {
      const store = await openSqliteStore({ path: ':memory:' });
      try {
        await store.accounts.createUser({ userId: alice, passwordHash: null, admin: false, createdTs: 1, displayname: null });
        assert.equal(await store.accounts.countUsers(), 1);
      } finally {
        await store.close();
      }
    });

    it('records migration versions; reopening applies nothing', async function () {
      const { store, reopen, path } = await open();
      const expected = MIGRATIONS.map((m) => ({ version: m.version, name: m.name }));
      assert.deepEqual(store.appliedMigrations, MIGRATIONS.map((m) => m.version));
      assert.deepEqual(store.schemaVersions(), expected);
      await store.close();
      const again = await reopen();
      assert.deepEqual(again.appliedMigrations, []);
      assert.deepEqual(again.schemaVersions(), expected);
      await again.close();
      const raw = new Database(path, { readonly: true });
      try {
        assert.equal((raw.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n, MIGRATIONS.length);
      } finally {
        raw.close();
      }
    });

    it('applies only newer migrations, in order, all or nothing', function () {
      const db = new Database(':memory:');
      try {
        const v1 = [
          { version: 1, name: 'a', up: 'CREATE TABLE a (x)' },
          { version: 2, name: 'b', up: 'CREATE TABLE b (x)' },
        ];
        assert.deepEqual(migrate(db, v1).applied, [1, 2]);
        assert.deepEqual(migrate(db, v1).applied, []);
        assert.deepEqual(migrate(db, [...v1, { version: 3, name: 'c', up: 'CREATE TABLE c (x)' }]).applied, [3]);
        const broken = [
          ...v1,
          { version: 3, name: 'c', up: 'CREATE TABLE c (x)' },
          { version: 4, name: 'd', up: 'CREATE TABLE d (x)' },
          { version: 5, name: 'bad', up: 'CREATE TABLE e (x); NOT SQL' },
        ];
        assert.throws(() => migrate(db, broken));
        const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
        assert.ok(!tables.includes('d') && !tables.includes('e'), 'a failed run leaves no partial schema');
        assert.deepEqual((db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version), [1, 2, 3]);
        assert.throws(() => migrate(db, [v1[1], v1[0]]), /out of order/);
      } finally {
        db.close();
      }
    });

    it('indexes relations of events stored before the chat migration', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'hearth-store-'));
      const path = join(dir, 'v1.sqlite');
      try {
        const room = new FakeRoom();
        const bob = userId('bob');
        const root = room.build('m.room.message', alice, { body: 'root' });
        const rel = (relType: string, body: string) => ({ body, 'm.relates_to': { rel_type: relType, event_id: root.eventId } });
        const t1 = room.build('m.room.message', bob, rel('m.thread', 't1'));
        const t2 = room.build('m.room.message', alice, rel('m.thread', 't2 (redacted)'));
        const edit = room.build('m.room.message', alice, rel('m.replace', 'edit'));
        const odd = room.build('m.room.message', bob, { body: 'x', 'm.relates_to': { rel_type: 7, event_id: root.eventId } });
        const raw = new Database(path);
        try {
          migrate(raw, [MIGRATIONS[0]]);
          const insert = raw.prepare(
            'INSERT INTO events (stream, event_id, room_id, type, sender, pdu_json, redacted_by) VALUES (?, ?, ?, ?, ?, ?, ?)',
          );
          // t2 keeps its relation in the stored JSON: redacted_by alone must exclude it.
          [root, t1, t2, edit, odd].forEach((ev, i) =>
            insert.run(i + 1, ev.eventId, room.roomId, ev.pdu.type, ev.pdu.sender, JSON.stringify(ev.pdu), ev === t2 ? '$r' : null),
          );
          raw.prepare('UPDATE stream_meta SET max_reserved = 5').run();
        } finally {
          raw.close();
        }

        const store = await openSqliteStore({ path });
        try {
          assert.deepEqual(store.appliedMigrations, MIGRATIONS.slice(1).map((m) => m.version));
          const [thread] = await store.relations.getThreads(room.roomId, { limit: 10 });
          assert.deepEqual(thread, { rootEventId: root.eventId, latestEventId: t1.eventId, count: 1, participants: [alice, bob].sort(), latestStream: 2 });
          assert.equal((await store.relations.getAggregations([root.eventId])).get(root.eventId)?.replaceEventId, edit.eventId);
          assert.deepEqual((await store.relations.getRelations({ roomId: room.roomId, eventId: root.eventId, dir: 'f', limit: 10 })).map((r) => r.eventId), [t1.eventId, edit.eventId]);
          // New events continue the backfilled thread.
          const t3 = await room.send(store, 'm.room.message', bob, rel('m.thread', 't3'));
          const [after] = await store.relations.getThreads(room.roomId, { limit: 10 });
          assert.equal(after.count, 2);
          assert.equal(after.latestEventId, t3.eventId);
        } finally {
          await store.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('remote media kept before the eviction migration: generation \'\', last access = its fetch, evicted with its thumbnails', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'hearth-store-'));
      const path = join(dir, 'v20.sqlite');
      try {
        const raw = new Database(path);
        try {
          migrate(raw, MIGRATIONS.filter((m) => m.version <= 20));
          raw.prepare('INSERT INTO remote_media (origin, media_id, content_type, upload_name, size, sha256, fetched_ts) VALUES (?, ?, ?, ?, ?, ?, ?)').run('o.example', 'old', 'image/png', null, 9, 'ab'.repeat(32), 1234);
          raw
            .prepare('INSERT INTO remote_media_thumbnails (origin, media_id, req_width, req_height, method, animated, width, height, content_type, size, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
            .run('o.example', 'old', 32, 32, 'crop', 0, 32, 32, 'image/png', 5, 1300);
        } finally {
          raw.close();
        }
        const store = await openSqliteStore({ path });
        try {
          assert.deepEqual(store.appliedMigrations, MIGRATIONS.filter((m) => m.version > 20).map((m) => m.version));
          const rec = await store.media.getRemoteMedia('o.example', 'old');
          assert.deepEqual([rec?.generation, rec?.lastAccessTs, rec?.fetchedTs], ['', 1234, 1234]);
          assert.equal((await store.media.getRemoteThumbnail('o.example', 'old', '', 32, 32, 'crop', false))?.size, 5);
          assert.deepEqual((await store.media.listRemoteMediaBefore(1235, 10)).map((r) => r.mediaId), ['old']);
          assert.equal(await store.media.evictRemoteMedia('o.example', 'old', '', 2000), true);
          const [d] = await store.media.listDoomedRemoteMedia(2000, 10);
          assert.deepEqual([d?.generation, d?.thumbnails.map((t) => t.reqWidth)], ['', [32]]);
        } finally {
          await store.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('refuses a database migrated by a newer build', async function () {
      const { store, path } = await open();
      await store.close();
      const raw = new Database(path);
      raw.prepare("INSERT INTO schema_migrations (version, name, applied_ts) VALUES (9999, 'future', 0)").run();
      raw.close();
      await assert.rejects(openSqliteStore({ path }), /newer than this build/);
    });

    it('rejects calls after close with StoreClosedError; close is idempotent', async function () {
      const { store } = await open();
      await Promise.all([store.close(), store.close()]);
      await store.close();
      await assert.rejects(store.accounts.countUsers(), StoreClosedError);
      await assert.rejects(store.rooms.createRoom({ roomId: '!x:y', roomVersion: '11', creator: alice, createdTs: 1 }), StoreClosedError);
    });
  });

  describe('grouped commits', function () {
    it('commits 200 concurrent writes in far fewer transactions', async function () {
      const { store } = await open();
      const rooms = Array.from({ length: 20 }, () => new FakeRoom());
      const before = store.writeStats();
      const sent = await Promise.all(rooms.flatMap((room, r) => Array.from({ length: 10 }, (_, i) => room.message(store, userId(`u${r}`), `m${i}`))));
      const after = store.writeStats();
      assert.equal(after.writes - before.writes, 200);
      assert.ok(after.transactions - before.transactions <= 2, `used ${after.transactions - before.transactions} transactions`);
      assert.ok(after.largestBatch >= 100);
      assert.equal(new Set(sent.map((s) => s.stream)).size, 200);
    });

    it('caps the batch size and keeps positions in call order', async function () {
      const { store } = await open({ maxBatchSize: 16 });
      const room = new FakeRoom();
      const before = store.writeStats();
      const sent = await Promise.all(Array.from({ length: 100 }, (_, i) => room.message(store, alice, `m${i}`)));
      const after = store.writeStats();
      assert.ok(after.transactions - before.transactions >= Math.ceil(100 / 16));
      assert.ok(after.largestBatch <= 16);
      for (let i = 1; i < sent.length; i++) assert.ok(sent[i].stream > sent[i - 1].stream);
    });

    it('commits one batch per event-loop turn, however many writes a turn queued', async function () {
      const { store } = await open({ maxBatchSize: 16 });
      const before = store.writeStats();
      // Batches committed between two turns of the event loop: one each, never all in one stall.
      let most = 0;
      let seen = before.transactions;
      let counting = true;
      const count = (): void => {
        const now = store.writeStats().transactions;
        most = Math.max(most, now - seen);
        seen = now;
        if (counting) setImmediate(count);
      };
      setImmediate(count);
      // 100 independent writes queued in one synchronous loop.
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.userData.setAccountData(alice, '', `t${i}`, { i })));
      counting = false;
      count();
      const batches = store.writeStats().transactions - before.transactions;
      assert.ok(batches >= Math.ceil(100 / 16), `${batches} batches`);
      assert.ok(most <= 2, `up to ${most} of ${batches} batches committed in one turn`);
    });

    it('rolls back a failing batch entirely, rejects every write in it and abandons its positions', async function () {
      const { store, reopen, warnings } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const stateBefore = await store.rooms.getCurrentState(room.roomId);
      const extremitiesBefore = await store.rooms.getForwardExtremities(room.roomId);
      const positionBefore = store.currentPosition();

      store.setBeforeCommitHook(() => {
        store.setBeforeCommitHook(null);
        throw new Error('injected commit failure');
      });
      const bob = userId('bob');
      const join = room.build('m.room.member', bob, { membership: 'join' }, bob);
      const results = await Promise.allSettled([
        store.rooms.persistEvent(room.input(join)),
        room.message(store, alice, 'lost', { txn: { userId: alice, deviceId: 'D', txnId: 't' } }),
        store.userData.setAccountData(alice, '', 'lost', { x: 1 }),
        store.accounts.createUser({ userId: bob, passwordHash: null, admin: false, createdTs: 1, displayname: null }),
        store.userData.createFilter(alice, '{}'),
      ]);
      for (const r of results) {
        assert.equal(r.status, 'rejected');
        assert.match(String((r as PromiseRejectedResult).reason), /injected commit failure/);
      }
      assert.equal(store.writeStats().failedTransactions, 1);
      assert.ok(warnings.length > 0, 'the failure is logged');

      assert.equal(await store.rooms.getEvent(join.eventId), null);
      assert.deepEqual(await store.rooms.getCurrentState(room.roomId), stateBefore);
      assert.deepEqual(await store.rooms.getForwardExtremities(room.roomId), extremitiesBefore);
      assert.equal(await store.rooms.getMembership(room.roomId, bob), null);
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 't'), null);
      assert.equal(await store.userData.getAccountData(alice, '', 'lost'), null);
      assert.equal(await store.accounts.getUser(bob), null);

      // The three abandoned positions do not block the stream and are never handed out again.
      assert.equal(store.currentPosition(), positionBefore + 3);
      const next = await room.message(store, alice, 'after');
      assert.equal(next.stream, positionBefore + 4);
      await store.close();
      const again = await reopen();
      assert.ok(again.currentPosition() >= next.stream);
      const later = await again.userData.setAccountData(alice, '', 'later', {});
      assert.ok(later > next.stream);
    });

    it('does not reuse abandoned positions at the tail after a restart', async function () {
      const { store, reopen } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      store.setBeforeCommitHook(() => {
        throw new Error('injected');
      });
      await assert.rejects(room.message(store, alice, 'lost'));
      store.setBeforeCommitHook(null);
      // A client may have seen this position as its since-token.
      const seen = store.currentPosition();
      await store.close();
      const again = await reopen();
      assert.equal(again.currentPosition(), seen);
      const next = await room.message(again, alice, 'after restart');
      assert.ok(next.stream > seen);
    });

    it('runs a batch of event writes without savepoints; one failing replays the batch and only it is undone', async function () {
      const { store } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const m1 = room.build('m.room.message', alice, { msgtype: 'm.text', body: 'first replayed' });
      const bad = room.build('m.room.member', alice, { membership: 'dancing' }, userId('bob'));
      const m2 = room.build('m.room.message', alice, { msgtype: 'm.text', body: 'second replayed' });
      const before = store.writeStats();
      const results = await Promise.allSettled([
        store.rooms.persistEvent(room.input(m1, { txn: { userId: alice, deviceId: 'D', txnId: 'r1' } })),
        store.rooms.persistEvent(room.input(bad)),
        store.rooms.persistEvent(room.input(m2, { forwardExtremities: [m1.eventId, m2.eventId] })),
      ]);
      const after = store.writeStats();
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.equal(after.transactions - before.transactions, 1, 'one committed transaction');
      assert.equal(after.replayedBatches - before.replayedBatches, 1);
      assert.equal(after.failedWrites - before.failedWrites, 1);
      assert.equal(await store.rooms.getEvent(bad.eventId), null);
      assert.equal(await store.rooms.getMembership(room.roomId, userId('bob')), null);
      assert.ok(await store.rooms.getEvent(m1.eventId));
      assert.ok(await store.rooms.getEvent(m2.eventId));
      // Each row written once: the rolled-back first attempt left nothing behind.
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 'r1'), m1.eventId);
      assert.deepEqual(await store.rooms.getForwardExtremities(room.roomId), [m1.eventId, m2.eventId].sort());
      const found = await store.search.searchEvents({ words: ['replayed'], roomIds: [room.roomId], keys: ['content.body'], order: 'recent', limit: 10 });
      assert.deepEqual(found.map((h) => h.event.eventId).sort(), [m1.eventId, m2.eventId].sort());

      // A batch that fails nothing is not replayed.
      const ok = await Promise.all([room.message(store, alice, 'a'), room.message(store, alice, 'b')]);
      assert.equal(ok.length, 2);
      assert.equal(store.writeStats().replayedBatches, after.replayedBatches);
    });

    it('stores a plain message with the room\'s current state group as its before, after and room state', async function () {
      const { store, path } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const m1 = await room.message(store, alice, 'one');
      const topic = await room.send(store, 'm.room.topic', alice, { topic: 't' }, '');
      const m2 = await room.message(store, alice, 'two');
      const m3 = await room.message(store, alice, 'three');
      const raw = new Database(path, { readonly: true });
      try {
        const groups = (id: string) =>
          raw.prepare('SELECT state_before AS b, state_after AS a, room_state AS r FROM events WHERE event_id = ?').get(id) as { b: number; a: number; r: number };
        const t = groups(topic.eventId);
        assert.deepEqual(groups(m1.eventId), { b: t.b, a: t.b, r: t.b });
        assert.notEqual(t.a, t.b);
        assert.deepEqual(groups(m2.eventId), { b: t.a, a: t.a, r: t.a });
        assert.deepEqual(groups(m3.eventId), { b: t.a, a: t.a, r: t.a });
        assert.equal((raw.prepare('SELECT group_id AS g FROM room_current_group WHERE room_id = ?').get(room.roomId) as { g: number }).g, t.a);
      } finally {
        raw.close();
      }
      assert.equal((await store.rooms.getStateAt(room.roomId, m1.stream)).some((e) => e.type === 'm.room.topic'), false);
      assert.deepEqual((await store.rooms.getStateAt(room.roomId, m2.stream)).find((e) => e.type === 'm.room.topic')?.eventId, topic.eventId);
    });

    it('isolates a failing write in its savepoint; the rest of the batch commits', async function () {
      const { store } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const bad = room.build('m.room.member', alice, { membership: 'dancing' }, userId('bob'));
      const good = room.build('m.room.message', alice, { body: 'ok' });
      const before = store.writeStats();
      const results = await Promise.allSettled([
        store.userData.setAccountData(alice, '', 'a', {}),
        store.rooms.persistEvent(room.input(bad)),
        store.rooms.persistEvent(room.input(good)),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      assert.equal(store.writeStats().transactions - before.transactions, 1);
      assert.equal(await store.rooms.getEvent(bad.eventId), null);
      assert.equal(await store.rooms.getMembership(room.roomId, userId('bob')), null);
      assert.ok(await store.rooms.getEvent(good.eventId));
      assert.equal(store.currentPosition(), (results[2] as PromiseFulfilledResult<{ stream: number }>).value.stream);
    });

    it('rejects a second persist of the same event ID with StoreConflictError', async function () {
      const { store } = await open();
      const room = new FakeRoom();
      const ev = room.build('m.room.message', alice, { body: 'once' });
      const first = await store.rooms.persistEvent(room.input(ev));
      await assertConflict(store.rooms.persistEvent(room.input(ev)));
      assert.equal((await store.rooms.getEvent(ev.eventId))?.stream, first.stream);
    });

    it('rejects a state delta naming an unknown member event', async function () {
      const { store } = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const msg = room.build('m.room.message', alice, { body: 'x' });
      await assert.rejects(
        store.rooms.persistEvent(room.input(msg, { stateDelta: [{ type: 'm.room.member', stateKey: alice, eventId: '$nope' }] })),
        /unknown member event/,
      );
      assert.equal(await store.rooms.getEvent(msg.eventId), null);
    });
  });
});
