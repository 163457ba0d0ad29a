// Contract: the room DAG. prev_events edges, many forward extremities, the auth chain index
// (checked against auth chains computed from the PDUs), state groups (state before/after each
// event), outlier/soft-failed/rejected events, topological order and backfill.

import { assert } from '../helpers/assert.js';
import { randomBytes } from 'node:crypto';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import type { PersistEventInput, StateEntry } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, newEventId, SERVER, stateMap, userId, type BuiltEvent } from './fixtures.js';

const alice = userId('alice');

function raw(
  roomId: string,
  type: string,
  content: JsonObject,
  opts: { stateKey?: string; prev?: string[]; auth?: string[]; depth: number; sender?: string },
): BuiltEvent {
  const pdu: Pdu = {
    room_id: roomId,
    sender: opts.sender ?? alice,
    type,
    content,
    origin_server_ts: 1_700_000_000_000 + opts.depth,
    depth: opts.depth,
    prev_events: opts.prev ?? [],
    auth_events: opts.auth ?? [],
    hashes: { sha256: randomBytes(32).toString('base64') },
    signatures: {},
  };
  if (opts.stateKey !== undefined) pdu.state_key = opts.stateKey;
  return { eventId: newEventId(), pdu };
}

function persistInput(ev: BuiltEvent, extra: Partial<PersistEventInput> = {}): PersistEventInput {
  const own: StateEntry[] = ev.pdu.state_key !== undefined ? [{ type: ev.pdu.type, stateKey: ev.pdu.state_key, eventId: ev.eventId }] : [];
  return { eventId: ev.eventId, pdu: ev.pdu, stateDelta: own, forwardExtremities: [ev.eventId], ...extra };
}

/** Deterministic PRNG so a failing DAG can be reproduced. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export function describeDagContract(ctx: ContractContext): void {
  describe('room DAG', function () {
    it('stores prev_events edges and keeps many forward extremities', async function () {
      const room = new FakeRoom();
      const [create] = await room.create(ctx.store, alice);
      const base = await room.message(ctx.store, alice, 'base');
      const a = raw(room.roomId, 'm.room.message', { body: 'a' }, { prev: [base.eventId], depth: 10 });
      const b = raw(room.roomId, 'm.room.message', { body: 'b' }, { prev: [base.eventId], depth: 10 });
      const c = raw(room.roomId, 'm.room.message', { body: 'c' }, { prev: [base.eventId], depth: 10 });
      await ctx.store.rooms.persistEvent(persistInput(a));
      await ctx.store.rooms.persistEvent(persistInput(b, { forwardExtremities: [a.eventId, b.eventId] }));
      await ctx.store.rooms.persistEvent(persistInput(c, { forwardExtremities: [a.eventId, b.eventId, c.eventId] }));
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [a.eventId, b.eventId, c.eventId].sort());
      const prevs = await ctx.store.rooms.getPrevEvents([a.eventId, b.eventId, c.eventId, create.eventId, '$unknown']);
      assert.deepEqual(prevs, new Map([[a.eventId, [base.eventId]], [b.eventId, [base.eventId]], [c.eventId, [base.eventId]], [create.eventId, []]]));
      // Cited out of order and one twice: the edges are the distinct IDs in code point order.
      const merge = raw(room.roomId, 'm.room.message', { body: 'm' }, { prev: [c.eventId, a.eventId, b.eventId, a.eventId], depth: 11 });
      await ctx.store.rooms.persistEvent(persistInput(merge));
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [merge.eventId]);
      assert.deepEqual(await ctx.store.rooms.getPrevEvents([merge.eventId]), new Map([[merge.eventId, [a.eventId, b.eventId, c.eventId].sort()]]));
    });

    it('answers auth chain differences and conflicted subgraphs from the index exactly as computed from the PDUs', async function () {
      this.timeout(60_000);
      const roomId = `!dag${randomBytes(6).toString('hex')}:${SERVER}`;
      await ctx.store.rooms.createRoom({ roomId, roomVersion: '11', creator: alice, createdTs: 1 });
      const rand = rng(11);
      const events: BuiltEvent[] = [];
      const auth = new Map<string, string[]>();
      // A random DAG of state events: each cites 1-4 earlier ones as auth events.
      for (let i = 0; i < 120; i++) {
        const cites = new Set<string>();
        const n = i === 0 ? 0 : 1 + Math.floor(rand() * Math.min(4, i));
        while (cites.size < n) {
          // Prefer recent events (like real rooms) but reach far back sometimes.
          const back = rand() < 0.7 ? Math.floor(rand() * Math.min(6, i)) : Math.floor(rand() * i);
          cites.add(events[i - 1 - back].eventId);
        }
        const ev = raw(roomId, 'x.state', { i }, { stateKey: `k${i % 17}`, auth: [...cites], depth: i + 1, prev: i ? [events[i - 1].eventId] : [] });
        events.push(ev);
        auth.set(ev.eventId, [...cites]);
        await ctx.store.rooms.persistEvent(persistInput(ev));
      }
      const chainOf = (id: string, memo = new Map<string, Set<string>>()): Set<string> => {
        const known = memo.get(id);
        if (known) return known;
        const out = new Set<string>();
        for (const a of auth.get(id) ?? []) {
          out.add(a);
          for (const x of chainOf(a, memo)) out.add(x);
        }
        memo.set(id, out);
        return out;
      };
      const memo = new Map<string, Set<string>>();
      for (let trial = 0; trial < 40; trial++) {
        const sets: string[][] = [];
        const nSets = 2 + Math.floor(rand() * 2);
        for (let s = 0; s < nSets; s++) {
          const size = 1 + Math.floor(rand() * 4);
          sets.push(Array.from({ length: size }, () => events[Math.floor(rand() * events.length)].eventId));
        }
        const chains = sets.map((set) => {
          const u = new Set<string>();
          for (const id of set) for (const x of chainOf(id, memo)) u.add(x);
          return u;
        });
        const union = new Set(chains.flatMap((c) => [...c]));
        const expected = [...union].filter((id) => !chains.every((c) => c.has(id))).sort();
        const got = [...(await ctx.store.rooms.getAuthChainDifference(roomId, sets))].sort();
        assert.deepEqual(got, expected, `trial ${trial}`);
      }
      // Room 12's conflicted subgraph: events on an auth path from one given event to another.
      const reaches = (from: string, to: string): boolean => from === to || chainOf(from, memo).has(to);
      let nonTrivial = 0;
      for (let trial = 0; trial < 30; trial++) {
        const size = 2 + Math.floor(rand() * 4);
        const conflicted = [...new Set(Array.from({ length: size }, () => events[Math.floor(rand() * events.length)].eventId))];
        const expected = events
          .map((e) => e.eventId)
          .filter((x) => conflicted.some((c1) => reaches(c1, x)) && conflicted.some((c2) => reaches(x, c2)))
          .sort();
        const got = [...(await ctx.store.rooms.getConflictedSubgraph(roomId, conflicted))].sort();
        assert.deepEqual(got, expected, `subgraph trial ${trial}`);
        if (expected.length > conflicted.length) nonTrivial++;
      }
      assert.ok(nonTrivial >= 10, `only ${nonTrivial} trials had events between the conflicted ones`);
      assert.deepEqual(await ctx.store.rooms.getAuthChainDifference(roomId, [[events[5].eventId]]), new Set());
      assert.deepEqual(await ctx.store.rooms.getAuthChainDifference(roomId, [[events[5].eventId], [events[5].eventId]]), new Set());
    });

    it('keeps the state before and after every event in state groups; messages share them', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const topics: string[] = [];
      for (let i = 0; i < 230; i++) {
        // Enough changes to cross snapshot boundaries of any reasonable interval.
        const t = await room.send(ctx.store, 'm.room.topic', alice, { topic: `t${i}` }, '');
        topics.push(t.eventId);
      }
      const msg = await room.message(ctx.store, alice, 'hi');
      const groups = await ctx.store.rooms.getEventStateGroups([msg.eventId, topics[0], '$unknown']);
      assert.equal(groups.size, 2);
      assert.equal(groups.get(msg.eventId)?.before, groups.get(msg.eventId)?.after);
      assert.equal(await ctx.store.rooms.getCurrentStateGroup(room.roomId), groups.get(msg.eventId)?.after);
      for (const i of [0, 1, 99, 100, 101, 150, 229]) {
        const before = stateMap((await ctx.store.rooms.getStateAtEvent(topics[i], 'before')) ?? []);
        const after = stateMap((await ctx.store.rooms.getStateAtEvent(topics[i], 'after')) ?? []);
        assert.equal(before.get('m.room.topic|'), i === 0 ? undefined : topics[i - 1], `before ${i}`);
        assert.equal(after.get('m.room.topic|'), topics[i], `after ${i}`);
        assert.equal(after.size, created.length + 1);
        assert.equal(after.get('m.room.create|'), created[0].eventId);
      }
      assert.deepEqual(stateMap((await ctx.store.rooms.getStateAtEvent(created[0].eventId, 'before')) ?? []), new Map());
      assert.equal(await ctx.store.rooms.getStateAtEvent('$unknown', 'after'), null);
      await assert.rejects(ctx.store.rooms.getStateGroup(987654321));

      // A state before given as a group plus changes (what a resolved fork looks like).
      const base = (await ctx.store.rooms.getEventStateGroups([topics[10]])).get(topics[10]) as { before: number; after: number };
      const side = raw(room.roomId, 'm.room.message', { body: 'side' }, { prev: [topics[10]], depth: 5 });
      const res = await ctx.store.rooms.persistEvent(
        persistInput(side, {
          stateBefore: { group: base.after, delta: [{ type: 'm.room.name', stateKey: '', eventId: topics[3] }] },
          forwardExtremities: [msg.eventId, side.eventId],
          stateDelta: [],
        }),
      );
      const sideBefore = stateMap((await ctx.store.rooms.getStateAtEvent(side.eventId, 'before')) ?? []);
      assert.equal(sideBefore.get('m.room.topic|'), topics[10]);
      assert.equal(sideBefore.get('m.room.name|'), topics[3]);
      assert.equal(res.stateGroupBefore, (await ctx.store.rooms.getEventStateGroups([side.eventId])).get(side.eventId)?.before);
      // The current state did not move (stateDelta was empty).
      assert.equal(stateMap(await ctx.store.rooms.getCurrentState(room.roomId)).get('m.room.topic|'), topics[229]);
      assert.equal(stateMap(await ctx.store.rooms.getStateAt(room.roomId, ctx.store.currentPosition())).get('m.room.topic|'), topics[229]);
    });

    it('applies keys a resolution drops: gone from the current state, its group and the memberships', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const bob = userId('bob');
      const topic = await room.send(ctx.store, 'm.room.topic', alice, { topic: 'doomed' }, '');
      const join = await room.member(ctx.store, bob, bob, 'join');
      assert.equal((await ctx.store.rooms.getMembership(room.roomId, bob))?.membership, 'join');
      const before = stateMap(await ctx.store.rooms.getCurrentState(room.roomId));
      assert.equal(before.get(`m.room.member|${bob}`), join.eventId);

      const res = await room.message(ctx.store, alice, 'resolves', {
        stateDelta: [],
        stateRemoved: [
          { type: 'm.room.topic', stateKey: '' },
          { type: 'm.room.member', stateKey: bob },
        ],
      });
      const expected = new Map(before);
      expected.delete('m.room.topic|');
      expected.delete(`m.room.member|${bob}`);
      assert.deepEqual(stateMap(await ctx.store.rooms.getCurrentState(room.roomId)), expected);
      const group = await ctx.store.rooms.getCurrentStateGroup(room.roomId);
      assert.ok(group !== null);
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateGroup(group)), expected);
      // The event's own state before/after is untouched: the removal is the room's, after a fork.
      assert.equal(stateMap((await ctx.store.rooms.getStateAtEvent(res.eventId, 'after')) ?? []).get('m.room.topic|'), topic.eventId);
      assert.equal(await ctx.store.rooms.getMembership(room.roomId, bob), null);
      assert.deepEqual(await ctx.store.rooms.getRoomsForUser(bob), []);
      assert.deepEqual((await ctx.store.rooms.getRoomMembers(room.roomId)).map((m) => m.userId), [alice]);
      assert.equal(created.length, 5);
      // The stream-keyed log records the drop: no value from the resolving event on.
      assert.deepEqual(await ctx.store.rooms.getStateHistory(room.roomId, 'm.room.topic', ''), [
        { stream: topic.stream, eventId: topic.eventId },
        { stream: res.stream, eventId: null },
      ]);
      assert.deepEqual(await ctx.store.rooms.getStateChanges(room.roomId, res.stream - 1, res.stream), []);
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateAt(room.roomId, res.stream)), expected);
      assert.equal(stateMap(await ctx.store.rooms.getStateAt(room.roomId, res.stream - 1)).get('m.room.topic|'), topic.eventId);

      // The next linear event builds on the reduced state (no key comes back).
      const next = await room.send(ctx.store, 'm.room.name', alice, { name: 'n' }, '');
      const after = stateMap(await ctx.store.rooms.getCurrentState(room.roomId));
      assert.equal(after.get('m.room.topic|'), undefined);
      assert.equal(after.get('m.room.name|'), next.eventId);
      assert.deepEqual(stateMap(await ctx.store.rooms.getStateGroup((await ctx.store.rooms.getCurrentStateGroup(room.roomId)) as number)), after);
    });

    it('stores outliers, soft-failed and rejected events outside the timeline, the state and the extremities', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const head = created[created.length - 1];
      const stateBefore = await ctx.store.rooms.getCurrentState(room.roomId);
      const maxBefore = (await ctx.store.rooms.getRoomsMaxStream([room.roomId])).get(room.roomId);
      const authIds = created.slice(0, 3).map((e) => e.eventId);

      const outlier = raw(room.roomId, 'm.room.topic', { topic: 'o' }, { stateKey: '', prev: ['$nowhere'], auth: authIds, depth: 50 });
      const o = await ctx.store.rooms.persistEvent(persistInput(outlier, { outlier: true }));
      assert.deepEqual([o.stateGroupBefore, o.stateGroupAfter], [null, null]);
      const soft = raw(room.roomId, 'm.room.name', { name: 's' }, { stateKey: '', prev: [head.eventId], auth: authIds, depth: 6 });
      const s = await ctx.store.rooms.persistEvent(persistInput(soft, { softFailed: true }));
      assert.ok(s.stateGroupBefore !== null && s.stateGroupAfter !== null && s.stateGroupAfter !== s.stateGroupBefore);
      const rejected = raw(room.roomId, 'm.room.topic', { topic: 'r' }, { stateKey: '', prev: [head.eventId], auth: authIds, depth: 6 });
      await ctx.store.rooms.persistEvent(persistInput(rejected, { rejected: 'not allowed' }));

      const o2 = await ctx.store.rooms.getEvent(outlier.eventId);
      const s2 = await ctx.store.rooms.getEvent(soft.eventId);
      const r2 = await ctx.store.rooms.getEvent(rejected.eventId);
      assert.deepEqual([o2?.outlier, o2?.softFailed, o2?.rejected], [true, false, null]);
      assert.deepEqual([s2?.outlier, s2?.softFailed, s2?.rejected], [false, true, null]);
      assert.deepEqual([r2?.outlier, r2?.softFailed, r2?.rejected], [false, false, 'not allowed']);
      assert.equal(await ctx.store.rooms.getStateAtEvent(outlier.eventId, 'before'), null);
      // A rejected event never enters a state, not even its own "after".
      assert.equal(stateMap((await ctx.store.rooms.getStateAtEvent(rejected.eventId, 'after')) ?? []).get('m.room.topic|'), undefined);

      assert.deepEqual(await ctx.store.rooms.getCurrentState(room.roomId), stateBefore);
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [head.eventId]);
      assert.equal((await ctx.store.rooms.getRoomsMaxStream([room.roomId])).get(room.roomId), maxBefore);
      const timeline = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, limit: 100 });
      assert.deepEqual(timeline.map((e) => e.eventId), created.map((e) => e.eventId));
      const topo = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 100, order: 'topological' });
      assert.equal(topo.length, created.length);

      // Nothing may put them into the state or the extremities, or cite the rejected one as an auth event.
      const next = room.build('m.room.message', alice, { body: 'x' });
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(next, { stateDelta: [{ type: 'm.room.topic', stateKey: '', eventId: rejected.eventId }] })));
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(next, { forwardExtremities: [next.eventId, soft.eventId] })));
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(next, { forwardExtremities: [next.eventId, outlier.eventId] })));
      const citing = raw(room.roomId, 'm.room.message', { body: 'c' }, { prev: [head.eventId], auth: [...authIds, rejected.eventId], depth: 6 });
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(citing)), (err: Error) => err.message.includes(`cites rejected auth event ${rejected.eventId}`));
      assert.equal(await ctx.store.rooms.getEvent(citing.eventId), null);
      // Wherever it stands among the auth events, and when it is the only one.
      const first = raw(room.roomId, 'm.room.message', { body: 'c1' }, { prev: [head.eventId], auth: [rejected.eventId, ...authIds], depth: 6 });
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(first)), /cites rejected auth event/);
      const only = raw(room.roomId, 'm.room.message', { body: 'c2' }, { prev: [head.eventId], auth: [rejected.eventId], depth: 6 });
      await assert.rejects(ctx.store.rooms.persistEvent(persistInput(only)), /cites rejected auth event/);
      // A soft-failed auth event is not a rejected one: the guard is about rejection only.
      const soft2 = raw(room.roomId, 'm.room.message', { body: 'c3' }, { prev: [head.eventId], auth: [...authIds, soft.eventId], depth: 6 });
      await ctx.store.rooms.persistEvent(persistInput(soft2));
      assert.equal((await ctx.store.rooms.getEvent(soft2.eventId))?.rejected, null);
      assert.equal(await ctx.store.rooms.getEvent(next.eventId), null);
    });

    it('orders /messages topologically by (depth, stream) with resumable bounds', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const head = created[created.length - 1];
      // Two branches arriving interleaved: stream order differs from depth order.
      const d = head.pdu.depth;
      const x1 = raw(room.roomId, 'm.room.message', { body: 'x1' }, { prev: [head.eventId], depth: d + 1 });
      const x2 = raw(room.roomId, 'm.room.message', { body: 'x2' }, { prev: [x1.eventId], depth: d + 2 });
      const x3 = raw(room.roomId, 'm.room.message', { body: 'x3' }, { prev: [x2.eventId], depth: d + 3 });
      const y1 = raw(room.roomId, 'm.room.message', { body: 'y1' }, { prev: [head.eventId], depth: d + 1 });
      await ctx.store.rooms.persistEvent(persistInput(x1));
      await ctx.store.rooms.persistEvent(persistInput(x2));
      await ctx.store.rooms.persistEvent(persistInput(x3));
      await ctx.store.rooms.persistEvent(persistInput(y1, { forwardExtremities: [x3.eventId, y1.eventId] }));
      const pos = await ctx.store.rooms.getTopologicalPositions([x1.eventId, y1.eventId]);
      assert.equal(pos.get(y1.eventId)?.depth, d + 1);

      const all = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: ctx.store.currentPosition(), limit: 100, order: 'topological' });
      assert.deepEqual(all.slice(0, 4).map((e) => e.pdu.content.body), ['x3', 'x2', 'y1', 'x1']);
      assert.equal(all[all.length - 1].eventId, created[0].eventId);

      // Paging with limit 2 from the last event's position yields the same sequence.
      const paged: string[] = [];
      let from: { depth: number; stream: number } | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await ctx.store.rooms.getRoomEvents({
          roomId: room.roomId,
          dir: 'b',
          from: ctx.store.currentPosition(),
          fromTopo: from,
          limit: 2,
          order: 'topological',
        });
        paged.push(...page.map((e) => e.eventId));
        if (page.length < 2) break;
        const last = page[page.length - 1];
        // "b from P" includes P, so the next page starts just below the last event.
        from = { depth: last.pdu.depth, stream: last.stream - 1 };
      }
      assert.deepEqual(paged, all.map((e) => e.eventId));

      const forward = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, fromTopo: { depth: d + 1, stream: 0 }, limit: 10, order: 'topological' });
      assert.deepEqual(forward.map((e) => e.pdu.content.body), ['x1', 'y1', 'x2', 'x3']);
    });

    it('gives backfilled history positions below every other event, outside the stream', async function () {
      const room = new FakeRoom();
      const created = await room.create(ctx.store, alice);
      const current = ctx.store.currentPosition();
      const old1 = raw(room.roomId, 'm.room.message', { body: 'old1' }, { prev: [], depth: 0 });
      const old2 = raw(room.roomId, 'm.room.message', { body: 'old2' }, { prev: [], depth: 0 });
      const r1 = await ctx.store.rooms.persistEvent(persistInput(old1, { backfill: true, stateBefore: { group: null, delta: [] } }));
      const r2 = await ctx.store.rooms.persistEvent(persistInput(old2, { backfill: true, stateBefore: { group: null, delta: [] } }));
      assert.ok(r1.stream < 0 && r2.stream < r1.stream, `${r1.stream} ${r2.stream}`);
      assert.equal(ctx.store.currentPosition(), current, 'backfill does not move the stream');
      // Backfill touches neither the current state nor the extremities.
      assert.deepEqual(await ctx.store.rooms.getForwardExtremities(room.roomId), [created[created.length - 1].eventId]);
      // Stream readers (sync) never see them; topological paging reaches them last.
      const f = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'f', from: 0, limit: 100 });
      assert.ok(!f.some((e) => e.stream < 0));
      const back = await ctx.store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: current, limit: 100, order: 'topological' });
      assert.deepEqual(back.slice(-2).map((e) => e.pdu.content.body), ['old1', 'old2']);
      const next = await room.message(ctx.store, alice, 'after backfill');
      assert.ok(next.stream > current);
    });
  });
}
