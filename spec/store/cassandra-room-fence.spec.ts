// The commit point of fenced room writes on the real Cassandra node
// (src/store/cassandra/room-fence.ts), with two store instances on one keyspace standing for two
// workers: an owner overtaken while paused anywhere before its commit writes nothing; one paused
// after its commit has its event landed by the next owner, and its late batch overwrites nothing
// the next owner wrote; racing owners never put two events at one position; a fresh send takes
// no claims (its txn row rides in its batch) and a new owner replays a batch visible in part.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import type { CommitHooks } from '../../src/store/cassandra/room-fence.js';
import { StaleWriterError, StoreConflictError, type PersistEventInput, type Store } from '../../src/store/types.js';
import { FakeRoom, type BuiltEvent } from './fixtures.js';
import type { ChangeRecord } from '../../src/store/change-types.js';

const ALICE = '@alice:hearth.test';

/** A gate the tests close on one event at one step, and open again. */
class Pause implements CommitHooks {
  private armed: { step: 'before' | 'after'; eventId: string; reached: () => void; release: Promise<void> } | null = null;
  private open: (() => void) | null = null;

  /** Resolves once the writer of `eventId` has reached `step` and is held there. */
  arm(step: 'before' | 'after', eventId: string): Promise<void> {
    return new Promise<void>((reached) => {
      const release = new Promise<void>((r) => (this.open = r));
      this.armed = { step, eventId, reached, release };
    });
  }

  resume(): void {
    this.armed = null;
    this.open?.();
  }

  /** The next answer after `step` for `eventId` is "lost": the writer gets a driver timeout. */
  private lose: { step: 'after' | 'batch'; eventId: string } | null = null;
  loseAnswer(step: 'after' | 'batch', eventId: string): void {
    this.lose = { step, eventId };
  }

  beforeCommit = (_roomId: string, eventId: string): Promise<void> => this.hold('before', eventId);
  afterCommit = async (_roomId: string, eventId: string): Promise<void> => {
    await this.hold('after', eventId);
    this.maybeLose('after', eventId);
  };
  afterBatch = async (_roomId: string, eventId: string): Promise<void> => this.maybeLose('batch', eventId);

  private maybeLose(step: 'after' | 'batch', eventId: string): void {
    if (this.lose?.step !== step || this.lose.eventId !== eventId) return;
    this.lose = null;
    // What the driver answers for a write the coordinator timed out (it may still be applied).
    throw Object.assign(new Error('Operation timed out - received only 0 responses.'), { name: 'ResponseError', code: 0x1100 });
  }

  private async hold(step: 'before' | 'after', eventId: string): Promise<void> {
    const a = this.armed;
    if (!a || a.step !== step || a.eventId !== eventId) return;
    a.reached();
    await a.release;
  }
}

/** `store` whose room writes carry an owner epoch, as a cluster's room writer's do. */
function owner(store: Store, epoch: number): Store {
  const rooms = new Proxy(store.rooms, {
    get(target, prop) {
      if (prop === 'persistEvent') return (input: PersistEventInput) => target.persistEvent({ ...input, fence: { epoch } });
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return new Proxy(store, { get: (target, prop) => (prop === 'rooms' ? rooms : Reflect.get(target, prop, target)) });
}

/** The persist input of an event built on the room's head, without advancing the fake room. */
function sideInput(ev: BuiltEvent, extra: Partial<PersistEventInput> = {}): PersistEventInput {
  const stateDelta = ev.pdu.state_key !== undefined ? [{ type: ev.pdu.type, stateKey: ev.pdu.state_key, eventId: ev.eventId }] : [];
  return { eventId: ev.eventId, pdu: ev.pdu, stateDelta, forwardExtremities: [ev.eventId], ...extra };
}

describe('Cassandra room commit point (owner epochs)', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  this.timeout(120_000);
  const keyspace = freshKeyspace('fence');
  let addr = '';
  let admin: cassandra.Client;
  let ks: cassandra.Client;
  let a: CassandraStore;
  let b: CassandraStore;
  const pauseA = new Pause();

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
    const opts = { contactPoints: [addr], localDataCenter: 'datacenter1', keyspace };
    a = await openCassandraStore({ ...opts, commitHooks: pauseA });
    b = await openCassandraStore({ ...opts, skipMigrations: true });
    ks = await cassandraClient(addr, keyspace);
  });

  after(async () => {
    pauseA.resume();
    await a?.close();
    await b?.close();
    await ks?.shutdown();
    await dropKeyspace(admin, keyspace);
    await admin.shutdown();
  });

  const commitRow = async (room: string) => {
    const r = (await ks.execute('SELECT epoch, seq FROM room_owner_epochs WHERE room_id = ?', [room], { prepare: true })).first();
    return { epoch: Number(r?.['epoch']), seq: Number(r?.['seq']) };
  };
  const writetime = async (eventId: string) =>
    Number((await ks.execute('SELECT WRITETIME(pdu_json) AS w FROM events WHERE event_id = ?', [eventId], { prepare: true })).first()?.['w']);
  const timeline = async (store: Store, roomId: string) =>
    (await store.rooms.getRoomEvents({ roomId, dir: 'b', from: Number.MAX_SAFE_INTEGER, limit: 1000 })).map((e) => e.eventId);
  const stale = (err: unknown) => {
    assert.ok(err instanceof StaleWriterError, `expected StaleWriterError, got ${String(err)}`);
    assert.ok(err instanceof StoreConflictError, 'a conflict to every caller that knows only StoreConflictError');
    return true;
  };

  it('records the first epoch, follows higher ones, and refuses a lower one', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    assert.deepEqual(await commitRow(room.roomId), { epoch: 1, seq: 5 }, 'one commit per event');
    await room.message(owner(b, 2), ALICE, 'b takes over');
    assert.deepEqual(await commitRow(room.roomId), { epoch: 2, seq: 6 });
    const ev = room.build('m.room.message', ALICE, { body: 'late' });
    await assert.rejects(a.rooms.persistEvent(sideInput(ev, { fence: { epoch: 1 } })), stale);
    assert.equal(await a.rooms.getEvent(ev.eventId), null);
    assert.deepEqual(await commitRow(room.roomId), { epoch: 2, seq: 6 }, 'a refused write changes nothing');
    // fenceRoom with a lower epoch is refused too; an unfenced write (one node) is not checked.
    await assert.rejects(a.rooms.fenceRoom!(room.roomId, 1), stale);
    await room.message(b, ALICE, 'unfenced');
  });

  it('a new epoch is recorded only strictly above the last: another instance at the recorded number is refused', async () => {
    // A Redis that lost its data counts a room's epochs from 1 again and may hand out a number an
    // earlier owner recorded; two writers at one epoch would both pass `IF epoch = mine`.
    const room = new FakeRoom();
    await room.create(owner(a, 7), ALICE);
    const ev = room.build('m.room.message', ALICE, { body: 'same number' });
    await assert.rejects(b.rooms.persistEvent(sideInput(ev, { fence: { epoch: 7 } })), (err) => stale(err) && (err as StaleWriterError).recorded === 7);
    await assert.rejects(b.rooms.fenceRoom!(room.roomId, 7), stale);
    assert.equal(await b.rooms.getEvent(ev.eventId), null);
    assert.deepEqual(await commitRow(room.roomId), { epoch: 7, seq: 5 }, 'nothing written');
    // The instance that recorded it goes on at it; a higher one takes over.
    await room.message(owner(a, 7), ALICE, 'a again');
    await room.message(owner(b, 8), ALICE, 'b above');
    assert.deepEqual(await commitRow(room.roomId), { epoch: 8, seq: 7 });
    await assert.rejects(a.rooms.persistEvent(sideInput(room.build('m.room.message', ALICE, { body: 'late' }), { fence: { epoch: 7 } })), stale);
  });

  it('an owner overtaken after passing every check, paused just before its commit, writes nothing', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const head = await a.rooms.getForwardExtremities(room.roomId);
    const x = room.build('m.room.topic', ALICE, { topic: 'stale' }, '');
    const y = room.build('m.room.message', ALICE, { body: 'new owner' });
    const txn = { userId: ALICE, deviceId: 'DEV', txnId: 't1' };
    const reached = pauseA.arm('before', x.eventId);
    const write = a.rooms.persistEvent(sideInput(x, { fence: { epoch: 1 }, txn }));
    const outcome = write.then(() => 'stored', (err: unknown) => err);
    await reached; // A has read the room, checked everything, claimed the IDs and written its state group.
    await b.rooms.persistEvent(sideInput(y, { fence: { epoch: 2 } }));
    pauseA.resume();
    stale(await outcome);

    for (const s of [a, b]) {
      assert.equal(await s.rooms.getEvent(x.eventId), null, 'the stale event is not stored');
      assert.deepEqual(await s.rooms.getForwardExtremities(room.roomId), [y.eventId]);
      const topic = (await s.rooms.getCurrentState(room.roomId)).find((e) => e.type === 'm.room.topic');
      assert.equal(topic, undefined, 'the stale state never reached the current state');
      assert.deepEqual(await timeline(s, room.roomId), [y.eventId, ...(await timeline(s, room.roomId)).slice(1)]);
      assert.ok(!(await timeline(s, room.roomId)).includes(x.eventId));
    }
    assert.ok(head.length === 1 && (await timeline(b, room.roomId)).includes(head[0]!));
    // Its claims were released: the transaction and the event ID are free again.
    assert.equal(await b.rooms.getEventIdForTxn(room.roomId, ALICE, 'DEV', 't1'), null);
    assert.equal((await ks.execute('SELECT event_id FROM event_claims WHERE event_id = ?', [x.eventId], { prepare: true })).rowLength, 0);
    assert.equal((await ks.execute('SELECT event_id FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?', [room.roomId, ALICE, 'DEV', '', 't1'], { prepare: true })).rowLength, 0);
    assert.deepEqual(await commitRow(room.roomId), { epoch: 2, seq: 6 });
    // The old owner stays fenced for any later write.
    const z = room.build('m.room.message', ALICE, { body: 'still stale' });
    await assert.rejects(a.rooms.persistEvent(sideInput(z, { fence: { epoch: 1 } })), stale);
  });

  it('an owner paused after its commit: the next owner lands the event and builds on it; the late batch overwrites nothing', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const t1 = room.build('m.room.topic', ALICE, { topic: 'old' }, '');
    const reached = pauseA.arm('after', t1.eventId);
    const write = a.rooms.persistEvent(room.input(t1, { fence: { epoch: 1 } }));
    await reached; // committed; its batch not sent

    // The new owner settles the room before reading it: the committed event is landed.
    await b.rooms.fenceRoom!(room.roomId, 2);
    assert.equal((await b.rooms.getEvent(t1.eventId))?.eventId, t1.eventId);
    assert.deepEqual(await b.rooms.getForwardExtremities(room.roomId), [t1.eventId]);
    const topic = () => b.rooms.getCurrentState(room.roomId).then((s) => s.find((e) => e.type === 'm.room.topic')?.eventId);
    assert.equal(await topic(), t1.eventId);

    const t2 = await room.send(owner(b, 2), 'm.room.topic', ALICE, { topic: 'new' }, '');
    assert.deepEqual(t2.pdu.prev_events, [t1.eventId], 'built on the landed event');
    pauseA.resume();
    const late = await write; // its commit stood: the write succeeded
    assert.ok(late.stream > 0);

    assert.deepEqual(await b.rooms.getForwardExtremities(room.roomId), [t2.eventId], 'the late batch did not roll the head back');
    assert.equal(await topic(), t2.eventId, 'nor the current state');
    const state = await b.rooms.getStateAt(room.roomId, b.currentPosition());
    assert.equal(state.find((e) => e.type === 'm.room.topic')?.eventId, t2.eventId);
    const ids = await timeline(b, room.roomId);
    assert.equal(ids.filter((id) => id === t1.eventId).length, 1);
    assert.equal(ids.filter((id) => id === t2.eventId).length, 1);
    assert.ok((await writetime(t1.eventId)) < (await writetime(t2.eventId)), 'commit timestamps follow commit order');
    assert.deepEqual(await commitRow(room.roomId), { epoch: 2, seq: 7 });
  });

  it('a write whose commit or batch answer was lost (timed out) finds out before giving up its position: it succeeds and its change record is published', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const records: ChangeRecord[] = [];
    const off = a.onChanges((changes) => records.push(...changes));
    try {
      // The commit LWT applied but its answer was lost; then the batch applied but its answer was lost.
      for (const step of ['after', 'batch'] as const) {
        const ev = room.build('m.room.message', ALICE, { body: `lost at ${step}` });
        pauseA.loseAnswer(step, ev.eventId);
        const r = await a.rooms.persistEvent(room.input(ev, { fence: { epoch: 1 } }));
        assert.equal((await b.rooms.getEvent(ev.eventId))?.stream, r.stream, `${step}: stored at the position the write answered`);
        const rec = records.find((c) => c.kind === 'event' && c.eventId === ev.eventId);
        assert.equal(rec?.stream, r.stream, `${step}: its change record was published (an incremental sync finds it)`);
        assert.ok(a.currentPosition() >= r.stream);
      }
      const next = await room.send(owner(a, 1), 'm.room.message', ALICE, { body: 'after' });
      const ids = await timeline(b, room.roomId);
      assert.equal(ids[0], next.eventId);
      assert.equal(new Set(ids).size, ids.length, 'each event once');
    } finally {
      off();
    }
  });

  it("a new owner's first write settles the room itself (no fenceRoom)", async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const m1 = room.build('m.room.member', ALICE, { membership: 'join', displayname: 'old' }, ALICE);
    const reached = pauseA.arm('after', m1.eventId);
    const write = a.rooms.persistEvent(room.input(m1, { fence: { epoch: 1 } }));
    await reached;
    const m2 = await room.send(owner(b, 2), 'm.room.member', ALICE, { membership: 'join', displayname: 'new' }, ALICE);
    assert.equal((await b.rooms.getEvent(m1.eventId))?.eventId, m1.eventId, 'landed before the new write');
    pauseA.resume();
    await write;
    const member = (await b.rooms.getCurrentState(room.roomId)).find((e) => e.type === 'm.room.member' && e.stateKey === ALICE);
    assert.equal(member?.eventId, m2.eventId);
    assert.equal((await b.rooms.getMembership(room.roomId, ALICE))?.eventId, m2.eventId);
    assert.deepEqual(await b.rooms.getForwardExtremities(room.roomId), [m2.eventId]);
  });

  it('racing owners: never two events at one position, and nothing of the old epoch commits after the new one', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 3), ALICE);
    const before = (await commitRow(room.roomId)).seq;
    // The old owner writes until it has been refused a few times; the new one starts once the old
    // one has committed some. With a fixed count and head start (15 writes, 30 ms) the old owner
    // could finish before the new owner's first write landed (its store's first write prepares its
    // statements), so nothing was overtaken: the test failed on timing, not on fencing.
    let oldCommitted: () => void = () => {};
    const oldHasCommitted = new Promise<void>((r) => (oldCommitted = r));
    const run = async (store: Store, epoch: number, tag: string, untilRefused: boolean) => {
      const ok: string[] = [];
      const refused: string[] = [];
      for (let i = 0; untilRefused ? refused.length < 3 && i < 500 : i < 15; i++) {
        const ev = room.build('m.room.message', ALICE, { body: `${tag}${i}` });
        try {
          await store.rooms.persistEvent(sideInput(ev, { fence: { epoch } }));
          ok.push(ev.eventId);
          if (ok.length === 3) oldCommitted();
        } catch (err) {
          stale(err);
          refused.push(ev.eventId);
        }
      }
      return { ok, refused };
    };
    const [ra, rb] = await Promise.all([run(a, 3, 'a', true), oldHasCommitted.then(() => run(b, 4, 'b', false))]);
    assert.equal(rb.ok.length, 15, 'the newer owner is never refused');
    assert.ok(ra.refused.length > 0, 'the old owner was overtaken');

    const ids = await timeline(b, room.roomId);
    const stored = await b.rooms.getEvents(ids);
    const positions = [...stored.values()].map((e) => e.stream);
    assert.equal(new Set(positions).size, positions.length, 'no two events at one stream position');
    for (const id of [...ra.ok, ...rb.ok]) assert.equal(ids.filter((x) => x === id).length, 1, `${id} stored once`);
    for (const id of ra.refused) assert.equal(await b.rooms.getEvent(id), null, 'a refused write left nothing');
    assert.equal((await commitRow(room.roomId)).seq, before + ra.ok.length + rb.ok.length, 'one commit (one seq) per stored event');
    const lastOld = Math.max(0, ...(await Promise.all(ra.ok.map(writetime))));
    const firstNew = Math.min(...(await Promise.all(rb.ok.map(writetime))));
    assert.ok(lastOld < firstNew, 'every commit of the old epoch precedes every commit of the new one');
  });
  const claimRows = async (eventId: string) =>
    (await ks.execute('SELECT event_id FROM event_claims WHERE event_id = ?', [eventId], { prepare: true })).rowLength;

  it('a fenced send of a fresh event takes no claims: its txn row lands with its batch and a retry of the txn is refused; a received event still claims its ID', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const txn = { userId: ALICE, deviceId: 'DEV', txnId: 'fresh-1' };
    const x = room.build('m.room.message', ALICE, { body: 'fresh' });
    await a.rooms.persistEvent(sideInput(x, { fence: { epoch: 1 }, txn, fresh: true }));
    assert.equal(await claimRows(x.eventId), 0, 'no event ID claim for a fresh fenced event');
    assert.equal(await b.rooms.getEventIdForTxn(room.roomId, ALICE, 'DEV', 'fresh-1'), x.eventId, 'the txn row came with the batch');
    // The same txn again (another event built for it) is refused, on this owner and on the next.
    const again = room.build('m.room.message', ALICE, { body: 'fresh again' });
    await assert.rejects(a.rooms.persistEvent(sideInput(again, { fence: { epoch: 1 }, txn, fresh: true })), StoreConflictError);
    const other = room.build('m.room.message', ALICE, { body: 'on the next owner' });
    await assert.rejects(b.rooms.persistEvent(sideInput(other, { fence: { epoch: 2 }, txn, fresh: true })), StoreConflictError);
    assert.equal(await b.rooms.getEvent(again.eventId), null);
    assert.equal(await b.rooms.getEvent(other.eventId), null);
    // Not fresh (e.g. received over federation): its ID is claimed as before.
    const y = room.build('m.room.message', ALICE, { body: 'received' });
    await b.rooms.persistEvent(sideInput(y, { fence: { epoch: 2 } }));
    assert.equal(await claimRows(y.eventId), 1);
    assert.equal(await a.rooms.getEventIdForTxn(room.roomId, ALICE, 'DEV', 'fresh-1'), x.eventId);
  });

  it('a new owner replays the last commit even when its event row is there (a batch visible in part): its txn row lands', async () => {
    const room = new FakeRoom();
    await room.create(owner(a, 1), ALICE);
    const txn = { userId: ALICE, deviceId: 'DEV', txnId: 'partial-1' };
    const x = room.build('m.room.message', ALICE, { body: 'partly landed' });
    const reached = pauseA.arm('after', x.eventId);
    const write = a.rooms.persistEvent(sideInput(x, { fence: { epoch: 1 }, txn, fresh: true }));
    await reached; // committed; its batch not sent
    // Part of the batch is visible: the event row, without the txn row or the room head.
    await ks.execute('INSERT INTO events (event_id, room_id) VALUES (?, ?) USING TIMESTAMP ?', [x.eventId, room.roomId, 1], { prepare: true });
    assert.equal(await b.rooms.getEventIdForTxn(room.roomId, ALICE, 'DEV', 'partial-1'), null);
    await b.rooms.fenceRoom!(room.roomId, 2);
    assert.equal(await b.rooms.getEventIdForTxn(room.roomId, ALICE, 'DEV', 'partial-1'), x.eventId, 'the replay landed the txn row');
    assert.deepEqual(await b.rooms.getForwardExtremities(room.roomId), [x.eventId], 'and the room head');
    const retry = room.build('m.room.message', ALICE, { body: 'the client retried' });
    await assert.rejects(b.rooms.persistEvent(sideInput(retry, { fence: { epoch: 2 }, txn, fresh: true })), StoreConflictError);
    pauseA.resume();
    await write; // its commit stood
    const ids = await timeline(b, room.roomId);
    assert.equal(ids.filter((id) => id === x.eventId).length, 1);
    assert.ok(!ids.includes(retry.eventId));
  });
});
