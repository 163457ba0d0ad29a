// The Cassandra RoomStore beyond the shared contract: reads across sparse stream and depth
// buckets, two instances on one keyspace (LWT-decided event and txn IDs, disjoint backfill
// positions), claims released by a write that fails its checks, the state group chain bound and
// auth chains kept inside one room.

import type cassandra from 'cassandra-driver';
import { randomBytes } from 'node:crypto';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { DEPTH_BUCKET, streamBucket } from '../../src/store/cassandra/rooms-util.js';
import { positionAt } from '../../src/store/cassandra/positions.js';
import type { Pdu } from '../../src/protocol/types.js';
import type { PersistEventInput } from '../../src/store/types.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import type { ChangeRecord } from '../../src/store/change-types.js';
import type { Store } from '../../src/store/types.js';
import { assertConflict, FakeRoom, newEventId, redact, stateMap, userId } from './fixtures.js';

const keyspace = freshKeyspace('rooms');
const alice = userId('alice');
let addr = '';
let admin: cassandra.Client | null = null;
let migrated = false;
const stores: CassandraStore[] = [];

async function open(workerId?: number): Promise<CassandraStore> {
  const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated, workerId });
  migrated = true;
  stores.push(s);
  return s;
}

const HOUR = 3_600_000;

/** Moves a worker's clock forward (as if the instance had run ahead): its next open starts there. */
async function advanceClock(workerId: number, ms: number): Promise<void> {
  await admin!.execute(`UPDATE ${keyspace}.worker_clock SET high = ? WHERE id = ?`, [positionAt(Date.now() + ms, workerId), workerId], { prepare: true });
}

/** Moves the backfill counter down by `n` positions (as if other rooms had backfilled them). */
async function skipBackfill(n: number): Promise<void> {
  const rs = await admin!.execute(`SELECT high FROM ${keyspace}.backfill_seq WHERE name = 'backfill'`);
  const high = Number(rs.first()!['high']);
  await admin!.execute(`UPDATE ${keyspace}.backfill_seq SET high = ? WHERE name = 'backfill' IF high = ?`, [high + n, high], { prepare: true });
}

function message(roomId: string, depth: number, prev: string[], body: string): { eventId: string; pdu: Pdu } {
  const pdu: Pdu = {
    room_id: roomId,
    sender: alice,
    type: 'm.room.message',
    content: { body },
    origin_server_ts: 1_700_000_000_000 + depth,
    depth,
    prev_events: prev,
    auth_events: [],
    hashes: { sha256: randomBytes(32).toString('base64') },
    signatures: {},
  };
  return { eventId: newEventId(), pdu };
}

const input = (ev: { eventId: string; pdu: Pdu }, extra: Partial<PersistEventInput> = {}): PersistEventInput => ({
  eventId: ev.eventId,
  pdu: ev.pdu,
  stateDelta: [],
  forwardExtremities: [ev.eventId],
  ...extra,
});

// Hooks inside a describe: root-level hooks would open Cassandra clients for the whole run.
describe('Cassandra backend: rooms', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
  });

  after(async function () {
    this.timeout(180_000);
    if (admin) {
      await dropKeyspace(admin, keyspace);
      await admin.shutdown();
    }
  });

  describe('Cassandra RoomStore', function () {
    this.timeout(120_000);

    afterEach(async function () {
      for (const s of stores.splice(0)) await s.close();
      await truncateKeyspace(admin!, keyspace);
    });

    it('pages, reports heads and answers state across sparse stream buckets', async function () {
      let store = await open(9);
      const room = new FakeRoom();
      const created = await room.create(store, alice);
      const early = await room.message(store, alice, 'early');
      const stateEarly = await store.rooms.getCurrentState(room.roomId);
      await store.close();
      // The next events land three hours (buckets) later; the buckets between hold nothing.
      await advanceClock(9, 3 * HOUR);
      store = await open(9);
      const late = [];
      for (let i = 0; i < 8; i++) late.push(await room.message(store, alice, `late ${i}`));
      const topic = await room.send(store, 'm.room.topic', alice, { topic: 'late' }, '');
      late.push(topic);
      assert.ok(streamBucket(late[0]!.stream) - streamBucket(early.stream) >= 2, 'a gap of empty buckets');
      const buckets = new Set([...created, early, ...late].map((e) => streamBucket(e.stream)));
      const stored = await admin!.execute(`SELECT bucket FROM ${keyspace}.room_buckets WHERE room_id = ? AND kind = 't'`, [room.roomId], {
        prepare: true,
      });
      assert.equal(stored.rowLength, buckets.size, 'only non-empty buckets are listed');

      const all = [...created, early, ...late];
      const q = { roomId: room.roomId, limit: 100 };
      const back = await store.rooms.getRoomEvents({ ...q, dir: 'b', from: store.currentPosition() });
      assert.deepEqual(back.map((e) => e.eventId), all.map((e) => e.eventId).reverse());
      const fwd = await store.rooms.getRoomEvents({ ...q, dir: 'f', from: 0 });
      assert.deepEqual(fwd.map((e) => e.eventId), all.map((e) => e.eventId));
      // Pages that straddle the gap, both ways, with bounds.
      const straddle = await store.rooms.getRoomEvents({ ...q, dir: 'b', from: late[1]!.stream, limit: 4 });
      assert.deepEqual(straddle.map((e) => e.eventId), [late[1], late[0], early, created[4]].map((e) => e!.eventId));
      const bounded = await store.rooms.getRoomEvents({ ...q, dir: 'f', from: created[4]!.stream, to: late[0]!.stream });
      assert.deepEqual(bounded.map((e) => e.eventId), [early.eventId, late[0]!.eventId]);
      assert.deepEqual(await store.rooms.getRoomEvents({ ...q, dir: 'f', from: early.stream, to: late[0]!.stream - 1 }), []);
      assert.equal((await store.rooms.getRoomsMaxStream([room.roomId])).get(room.roomId), topic.stream);

      // State at a position inside the gap is the state after the early events.
      const inGap = positionAt(Date.now() + HOUR, 9);
      assert.ok(streamBucket(inGap) > streamBucket(early.stream) && streamBucket(inGap) < streamBucket(late[0]!.stream));
      assert.deepEqual(stateMap(await store.rooms.getStateAt(room.roomId, inGap)), stateMap(stateEarly));
      assert.equal(stateMap(await store.rooms.getStateAt(room.roomId, topic.stream)).get('m.room.topic|'), topic.eventId);
      assert.deepEqual(stateMap(await store.rooms.getStateChanges(room.roomId, 0, topic.stream)).get('m.room.topic|'), topic.eventId);
      assert.deepEqual(await store.rooms.getStateChanges(room.roomId, early.stream, topic.stream - 1), []);
    });

    it('pages backfilled history across sparse backfill buckets, below the live events', async function () {
      const store = await open();
      const room = new FakeRoom();
      const created = await room.create(store, alice);
      const backfill = async (s: CassandraStore, body: string) => {
        const ev = message(room.roomId, 0, [], body);
        const { stream } = await s.rooms.persistEvent(input(ev, { backfill: true, stateBefore: { group: null, delta: [] } }));
        return { eventId: ev.eventId, stream };
      };
      const old = [await backfill(store, 'old 0'), await backfill(store, 'old 1')];
      // Another instance's block, claimed after the counter moved on: two buckets further down.
      await skipBackfill(2 * 4096);
      const other = await open();
      old.push(await backfill(other, 'old 2'), await backfill(other, 'old 3'));
      assert.ok(streamBucket(old[1]!.stream) - streamBucket(old[2]!.stream) >= 2, `${old[1]!.stream} ${old[2]!.stream}`);
      const back = await store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: store.currentPosition(), limit: 100 });
      // Newest first: the live events, then backfill from the most recent position down.
      assert.deepEqual(back.map((e) => e.eventId), [...[...created].reverse(), ...old].map((e) => e.eventId));
      const page = await store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: old[0]!.stream, to: old[3]!.stream, limit: 100 });
      assert.deepEqual(page.map((e) => e.eventId), old.slice(0, 3).map((e) => e.eventId));
      // Stream readers going forward from 0 never see backfill.
      assert.equal((await store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, limit: 100 })).length, created.length);
    });

    it('orders topologically across depth buckets, with resumable tokens', async function () {
      const store = await open();
      const roomId = `!topo${randomBytes(4).toString('hex')}:hearth.test`;
      // Depths around a bucket boundary, arriving out of depth order.
      const depths = [DEPTH_BUCKET - 2, DEPTH_BUCKET + 1, DEPTH_BUCKET - 1, DEPTH_BUCKET, 3 * DEPTH_BUCKET + 5, DEPTH_BUCKET - 1];
      const sent: Array<{ eventId: string; depth: number; stream: number }> = [];
      let prev: string[] = [];
      for (const d of depths) {
        const ev = message(roomId, d, prev, `d${d}`);
        const { stream } = await store.rooms.persistEvent(input(ev));
        sent.push({ eventId: ev.eventId, depth: d, stream });
        prev = [ev.eventId];
      }
      const expected = [...sent].sort((a, b) => b.depth - a.depth || b.stream - a.stream).map((e) => e.eventId);
      const paged: string[] = [];
      let from: { depth: number; stream: number } | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await store.rooms.getRoomEvents({ roomId, dir: 'b', from: store.currentPosition(), fromTopo: from, limit: 2, order: 'topological' });
        paged.push(...page.map((e) => e.eventId));
        if (page.length < 2) break;
        const last = page[page.length - 1]!;
        from = { depth: last.pdu.depth as number, stream: last.stream - 1 };
      }
      assert.deepEqual(paged, expected);
      const forward = await store.rooms.getRoomEvents({
        roomId,
        dir: 'f',
        from: 0,
        fromTopo: { depth: DEPTH_BUCKET - 1, stream: Number.MAX_SAFE_INTEGER },
        toTopo: { depth: 3 * DEPTH_BUCKET, stream: 0 },
        limit: 10,
        order: 'topological',
      });
      assert.deepEqual(forward.map((e) => e.pdu.content.body), [`d${DEPTH_BUCKET}`, `d${DEPTH_BUCKET + 1}`]);
    });

    it('two instances on one keyspace store an event ID and a transaction ID once', async function () {
      const a = await open();
      const b = await open();
      const room = new FakeRoom();
      await room.create(a, alice);
      const txn = { userId: alice, deviceId: 'D', txnId: 't1' };
      const sent = await room.message(a, alice, 'from a', { txn });
      // B sees A's writes.
      assert.equal((await b.rooms.getEvent(sent.eventId))?.pdu.content.body, 'from a');
      assert.equal(await b.rooms.getEventIdForTxn(room.roomId, alice, 'D', 't1'), sent.eventId);
      assert.deepEqual(await b.rooms.getForwardExtremities(room.roomId), [sent.eventId]);
      // The same event, or the same transaction, through B.
      await assertConflict(b.rooms.persistEvent({ eventId: sent.eventId, pdu: sent.pdu, stateDelta: [], forwardExtremities: [sent.eventId] }));
      const other = room.build('m.room.message', alice, { body: 'dup txn' });
      await assertConflict(b.rooms.persistEvent({ eventId: other.eventId, pdu: other.pdu, stateDelta: [], forwardExtremities: [other.eventId], txn }));
      assert.equal(await a.rooms.getEvent(other.eventId), null);

      // Both instances racing with one new event: exactly one stores it.
      const race = room.build('m.room.message', alice, { body: 'race' });
      const results = await Promise.allSettled(
        [a, b].map((s) => s.rooms.persistEvent({ eventId: race.eventId, pdu: race.pdu, stateDelta: [], forwardExtremities: [race.eventId] })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results.map((r) => r.status)));
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.equal((lost.reason as Error).name, 'StoreConflictError');
    });

    it('two instances hand out disjoint backfill positions, decreasing per instance', async function () {
      const a = await open();
      const b = await open();
      const roomId = `!bf${randomBytes(4).toString('hex')}:hearth.test`;
      const positions: number[] = [];
      for (let i = 0; i < 3; i++) {
        for (const s of [a, b]) {
          const ev = message(roomId, 0, [], `old ${i}`);
          positions.push((await s.rooms.persistEvent(input(ev, { backfill: true, stateBefore: { group: null, delta: [] } }))).stream);
        }
      }
      assert.equal(new Set(positions).size, positions.length, `positions ${positions.join(',')}`);
      assert.ok(positions.every((p) => p < 0));
      const ofA = positions.filter((_, i) => i % 2 === 0);
      assert.ok(ofA[0]! > ofA[1]! && ofA[1]! > ofA[2]!, `instance A: ${ofA.join(',')}`);
    });

    it('a write refused by a check leaves no claim: the same event and txn can be stored afterwards', async function () {
      const store = await open();
      const room = new FakeRoom();
      const created = await room.create(store, alice);
      const head = created[created.length - 1]!;
      const soft = message(room.roomId, 6, [head.eventId], 'soft');
      await store.rooms.persistEvent(input(soft, { softFailed: true }));
      const txn = { userId: alice, deviceId: 'D', txnId: 'retry' };
      const ev = room.build('m.room.message', alice, { body: 'retry' });
      await assert.rejects(store.rooms.persistEvent({ eventId: ev.eventId, pdu: ev.pdu, stateDelta: [], forwardExtremities: [ev.eventId, soft.eventId], txn }));
      assert.equal(await store.rooms.getEvent(ev.eventId), null);
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 'retry'), null);
      const ok = await store.rooms.persistEvent({ eventId: ev.eventId, pdu: ev.pdu, stateDelta: [], forwardExtremities: [ev.eventId], txn });
      assert.equal((await store.rooms.getEvent(ev.eventId))?.stream, ok.stream);
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 'retry'), ev.eventId);
    });

    it('a batch the node refuses as too large releases the claims, so the event can be stored later', async function () {
      const store = await open();
      const room = new FakeRoom();
      await room.create(store, alice);
      const ev = room.build('m.room.message', alice, { body: 'resolves a lot' });
      const txn = { userId: alice, deviceId: 'D', txnId: 'big' };
      // Thousands of keys changed by one resolution: far above batch_size_fail_threshold.
      const huge = Array.from({ length: 12_000 }, (_, i) => ({ type: 'x.big', stateKey: `k${i}`, eventId: newEventId() }));
      await assert.rejects(
        store.rooms.persistEvent({ eventId: ev.eventId, pdu: ev.pdu, stateDelta: huge, forwardExtremities: [ev.eventId], txn }),
        /too large/i,
      );
      assert.equal(await store.rooms.getEvent(ev.eventId), null);
      const ok = await store.rooms.persistEvent({ eventId: ev.eventId, pdu: ev.pdu, stateDelta: huge.slice(0, 10), forwardExtremities: [ev.eventId], txn });
      assert.equal((await store.rooms.getEvent(ev.eventId))?.stream, ok.stream);
      assert.equal(await store.rooms.getEventIdForTxn(room.roomId, alice, 'D', 'big'), ev.eventId);
    });

    it('reads a state group whose chain reaches its bound, and snapshots after it', async function () {
      const store = await open();
      const room = new FakeRoom();
      const created = await room.create(store, alice);
      const topics: string[] = [];
      // Each topic adds one delta row: the chain bound, not the delta size, forces the snapshots.
      for (let i = 0; i < 70; i++) topics.push((await room.send(store, 'm.room.topic', alice, { topic: `t${i}` }, '')).eventId);
      const groups = await store.rooms.getEventStateGroups(topics);
      const chains = await admin!.execute(`SELECT group_id, chain FROM ${keyspace}.state_groups WHERE room_id = ? ALLOW FILTERING`, [room.roomId], {
        prepare: true,
      });
      const lengths = chains.rows.map((r) => (r['chain'] as unknown[]).length);
      assert.ok(Math.max(...lengths) <= 32, `chain lengths ${Math.max(...lengths)}`);
      assert.ok(lengths.filter((n) => n === 1).length >= 3, 'snapshots were taken');
      for (const i of [0, 31, 32, 33, 64, 69]) {
        const after = stateMap((await store.rooms.getStateAtEvent(topics[i]!, 'after')) ?? []);
        assert.equal(after.get('m.room.topic|'), topics[i]);
        assert.equal(after.size, created.length + 1);
        assert.ok(groups.has(topics[i]!));
      }
    });

    it('keeps auth chains inside one room: a cross-room auth event starts a chain, and answers stay in the room', async function () {
      const store = await open();
      const state = (roomId: string, key: string, auth: string[], depth: number) => {
        const ev = message(roomId, depth, [], key);
        ev.pdu.type = 'x.state';
        ev.pdu.state_key = key;
        ev.pdu.auth_events = auth;
        return ev;
      };
      const roomA = `!ca${randomBytes(4).toString('hex')}:hearth.test`;
      const roomB = `!cb${randomBytes(4).toString('hex')}:hearth.test`;
      const a1 = state(roomA, 'a1', [], 1);
      await store.rooms.persistEvent(input(a1, { stateDelta: [{ type: 'x.state', stateKey: 'a1', eventId: a1.eventId }] }));
      // B's event cites A's chain head: it must not extend A's chain (A's writer owns it).
      const b1 = state(roomB, 'b1', [a1.eventId], 1);
      await store.rooms.persistEvent(input(b1, { stateDelta: [{ type: 'x.state', stateKey: 'b1', eventId: b1.eventId }] }));
      const a2 = state(roomA, 'a2', [a1.eventId], 2);
      await store.rooms.persistEvent(input(a2, { stateDelta: [{ type: 'x.state', stateKey: 'a2', eventId: a2.eventId }] }));
      const pos = async (id: string) => {
        const r = (await admin!.execute(`SELECT chain_id, chain_seq FROM ${keyspace}.events WHERE event_id = ?`, [id], { prepare: true })).first()!;
        return [Number(r['chain_id']), Number(r['chain_seq'])];
      };
      const [pa1, pb1, pa2] = [await pos(a1.eventId), await pos(b1.eventId), await pos(a2.eventId)];
      assert.notEqual(pb1[0], pa1[0], 'b1 starts its own chain');
      assert.deepEqual(pa2, [pa1[0], 2], 'a2 extends a1');
      // The link from b1 is followed, but answers only name events of the room asked about.
      assert.deepEqual(await store.rooms.getAuthChainDifference(roomA, [[b1.eventId], [a1.eventId]]), new Set([a1.eventId]));
      assert.deepEqual(await store.rooms.getAuthChainDifference(roomB, [[b1.eventId], [a1.eventId]]), new Set());
      assert.deepEqual(await store.rooms.getConflictedSubgraph(roomA, [a2.eventId, a1.eventId]), new Set([a1.eventId, a2.eventId]));
    });

    it('hands the read model the same change records as SQLite for the same writes', async function () {
      const cass = await open();
      const lite = await openSqliteStore({ path: ':memory:' });
      try {
        const records = new Map<Store, ChangeRecord[]>([
          [cass, []],
          [lite, []],
        ]);
        cass.onChanges((changes) => records.get(cass)!.push(...changes));
        lite.onChanges((changes) => records.get(lite)!.push(...changes));
        const bob = userId('bob');
        const room = new FakeRoom();
        await room.create(lite, alice);
        // The same inputs, in the same order, to both stores.
        const inputs: PersistEventInput[] = [];
        const capture = { rooms: { persistEvent: async (i: PersistEventInput) => (inputs.push(i), lite.rooms.persistEvent(i)) } } as unknown as Store;
        await room.member(capture, bob, bob, 'join');
        const target = await room.message(capture, bob, 'to redact', { txn: { userId: bob, deviceId: 'D', txnId: 't' } });
        await room.send(capture, 'm.room.redaction', alice, { redacts: target.eventId }, undefined, {
          redaction: { targetEventId: target.eventId, redactedPdu: redact(target.pdu) },
        });
        await room.send(capture, 'm.reaction', bob, { 'm.relates_to': { rel_type: 'm.annotation', event_id: target.eventId, key: 'x' } }, undefined, {
          pushActions: [{ userId: alice, notify: true, highlight: false, threadId: null, actions: ['notify'] }],
          pushBulk: { notify: true, highlight: true, threadId: null, actions: ['notify'], except: [alice] },
        });
        await room.message(capture, alice, 'resolves', { stateDelta: [], stateRemoved: [{ type: 'm.room.topic', stateKey: '' }] });
        // Not in any timeline: no record on either store.
        const soft = room.build('m.room.message', bob, { body: 'soft' });
        inputs.push({ eventId: soft.eventId, pdu: soft.pdu, stateDelta: [], forwardExtremities: [], softFailed: true });
        await lite.rooms.persistEvent(inputs[inputs.length - 1]!);

        await cass.rooms.createRoom({ roomId: room.roomId, roomVersion: '11', creator: alice, createdTs: 1 });
        const created = await lite.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, limit: 5 });
        for (const e of created) {
          await cass.rooms.persistEvent({ eventId: e.eventId, pdu: e.pdu, stateDelta: e.pdu.state_key !== undefined ? [{ type: e.pdu.type, stateKey: e.pdu.state_key, eventId: e.eventId }] : [], forwardExtremities: [e.eventId] });
        }
        for (const i of inputs) await cass.rooms.persistEvent(i);

        const strip = (rs: ChangeRecord[]) => rs.map((r) => ({ ...r, stream: 0 }));
        const fromLite = strip(records.get(lite)!);
        const fromCass = strip(records.get(cass)!);
        assert.equal(fromCass.length, 5 + inputs.length - 1);
        assert.deepEqual(fromCass, fromLite);
        const reaction = fromCass.find((r) => r.kind === 'event' && r.relatesTo !== null);
        assert.ok(reaction && reaction.kind === 'event' && reaction.push.bulk?.except[0] === alice);
      } finally {
        await lite.close();
      }
    });
  });
});
