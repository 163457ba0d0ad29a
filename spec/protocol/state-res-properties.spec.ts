// Property tests: resolution does not depend on the order of the state sets nor on the iteration
// order of the maps, over the shared vector cases and over randomly generated forked rooms; the
// fast auth difference and conflicted subgraph agree with their literal definitions; duplicated
// state sets, self-resolution and unconflicted entries behave as the definitions say.
import { assert } from '../helpers/assert.js';
import { EventGraph } from '../../src/protocol/state-res/graph.js';
import { resolveState, stateResRules } from '../../src/protocol/state-res/index.js';
import { splitConflictedV2 } from '../../src/protocol/state-res/v2.js';
import { referenceResolve } from './state-res-reference.js';
import type { StateKeyTuple } from '../../src/protocol/types.js';
import {
  BATCH_CASES,
  STATE_MAP_CASES,
  expected,
  type Fork,
  MemorySource,
  RoomBuilder,
  type StateMap,
  type VectorPdu,
  keyOf,
  loadBatch,
  loadJson,
  render,
  rng,
  shuffle,
  shuffledMap,
  sortedEntries,
  stateMapFromIds,
} from './state-res-harness.js';

const PERMUTATIONS = 6;

function resolvePermuted(version: string, sets: readonly StateMap[], source: MemorySource, rand: () => number): StateMap {
  return resolveState(version, shuffle(sets, rand).map((s) => shuffledMap(s, rand)), source);
}

describe('protocol/state-res: order independence over the shared vectors', () => {
  for (const [name, files] of BATCH_CASES) {
    it(`${name}: all PDUs at once, in ${PERMUTATIONS} random orders`, () => {
      const pdus = files.flatMap(loadBatch);
      const version = String(pdus[0].content.room_version);
      const source = new MemorySource(pdus);
      const rand = rng(name.length * 7919);
      const want = expected(name);
      for (let i = 0; i < PERMUTATIONS; i++) {
        const sets = shuffle(pdus, rand).map((p) => new Map([[keyOf(p), p.event_id]]));
        assert.deepEqual(render(resolveState(version, sets, source), source), want, `permutation ${i}`);
      }
    });
  }

  it('the naive reference implementation also passes every vector (all at once, state maps)', () => {
    for (const [name, files] of BATCH_CASES) {
      const pdus = files.flatMap(loadBatch);
      const source = new MemorySource(pdus);
      const sets = pdus.map((p) => new Map([[keyOf(p), p.event_id]]));
      assert.deepEqual(render(referenceResolve(String(pdus[0].content.room_version), sets, source), source), expected(name), name);
    }
    for (const [name, mapFiles, pduFile] of STATE_MAP_CASES) {
      const pdus = loadJson<VectorPdu[]>(`fixtures/${pduFile}.json`);
      const source = new MemorySource(pdus);
      const maps = mapFiles.map((f) => stateMapFromIds(loadJson<string[]>(`fixtures/${f}.json`), source));
      assert.deepEqual(render(referenceResolve(String(pdus[0].content.room_version), maps, source), source), expected(name), name);
    }
  });

  for (const [name, mapFiles, pduFile] of STATE_MAP_CASES) {
    it(`${name}: both orders of the state maps, shuffled entries`, () => {
      const pdus = loadJson<VectorPdu[]>(`fixtures/${pduFile}.json`);
      const version = String(pdus[0].content.room_version);
      const source = new MemorySource(pdus);
      const maps = mapFiles.map((f) => stateMapFromIds(loadJson<string[]>(`fixtures/${f}.json`), source));
      const rand = rng(17);
      const want = expected(name);
      for (let i = 0; i < PERMUTATIONS; i++) {
        assert.deepEqual(render(resolvePermuted(version, maps, source, rand), source), want, `permutation ${i}`);
      }
    });
  }
});

const USERS = ['@alice:example.com', '@bob:example.com', '@carol:example.com', '@dave:example.com', '@erin:other.org', '@frank:other.org'];
const [ALICE, BOB] = USERS;

/**
 * A room with several forks: a public room with everyone joined (room 12: with two creators in
 * every other room), then random state changes
 * (topics, power levels, kicks, bans, leaves, re-joins, join rule changes, invites), each sent on
 * a random fork by a random member and kept only if it passes auth there; forks split off
 * existing forks as it goes.
 */
function generateForks(version: string, seed: number): { room: RoomBuilder; forks: Fork[]; applied: number } {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const room = new RoomBuilder(version, `s${seed}-`);
  // In room 12, every other room makes bob a second (infinitely powerful) creator.
  const extraCreators = room.format.createIsRoomId && seed % 2 === 0 ? [BOB] : [];
  const trunk = room.bootstrap(ALICE, { [ALICE]: 100, [BOB]: 50 }, 'public', extraCreators);
  for (const u of USERS.slice(1)) room.must(trunk, u, 'm.room.member', u, { membership: 'join' });
  const forks: Fork[] = [room.fork(trunk), room.fork(trunk)];
  let applied = 0;
  for (let step = 0; step < 60; step++) {
    if (rand() < 0.08 && forks.length < 5) forks.push(room.fork(pick(forks)));
    const fork = pick(forks);
    const sender = pick(USERS);
    const target = pick(USERS);
    // Some events share a timestamp, so the event ID tie-break is exercised too.
    const ts = rand() < 0.2 ? 5_000 : undefined;
    const level = (): number => pick([0, 0, 10, 50, 75, 100]);
    let ok: VectorPdu | undefined;
    switch (Math.floor(rand() * 8)) {
      case 0:
        ok = room.send(fork, sender, 'm.room.topic', '', { topic: `topic ${step}` }, { ts });
        break;
      case 1: {
        const users: Record<string, number> = { [BOB]: level(), [target]: level() };
        if (!room.format.createIsRoomId) users[ALICE] = 100;
        for (const c of [ALICE, ...extraCreators]) if (room.format.createIsRoomId) delete users[c];
        ok = room.send(fork, sender, 'm.room.power_levels', '', { users, state_default: pick([50, 50, 0]) }, { ts });
        break;
      }
      case 2:
        ok = room.send(fork, sender, 'm.room.member', target, { membership: pick(['leave', 'ban']) }, { ts });
        break;
      case 3:
        ok = room.send(fork, sender, 'm.room.member', sender, { membership: pick(['leave', 'join', 'join']) }, { ts });
        break;
      case 4:
        ok = room.send(fork, sender, 'm.room.join_rules', '', { join_rule: pick(['public', 'invite']) }, { ts });
        break;
      case 5:
        ok = room.send(fork, sender, 'm.room.member', target, { membership: 'invite' }, { ts });
        break;
      case 6:
        ok = room.send(fork, sender, 'm.room.name', '', { name: `name ${step}` }, { ts });
        break;
      default:
        ok = room.send(fork, sender, 'm.room.member', sender, { membership: 'join', displayname: `n${step}` }, { ts });
    }
    if (ok) applied++;
  }
  return { room, forks, applied };
}

/** ∪Cᵢ − ∩Cᵢ straight from the definition: each state's full auth chain, walked separately. */
function literalAuthDifference(sets: readonly StateMap[], source: MemorySource): Set<string> {
  const chainOf = (ids: Iterable<string>): Set<string> => {
    const out = new Set<string>();
    const stack: string[] = [];
    const authOf = (id: string): string[] =>
      ((source.byId.get(id)?.auth_events ?? []) as unknown[]).map((a) => (Array.isArray(a) ? (a[0] as string) : (a as string)));
    for (const id of ids) stack.push(...authOf(id));
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (out.has(id)) continue;
      out.add(id);
      stack.push(...authOf(id));
    }
    return out;
  };
  const chains = sets.map((s) => chainOf(s.values()));
  const union = new Set(chains.flatMap((c) => [...c]));
  return new Set([...union].filter((id) => !chains.every((c) => c.has(id))));
}

/** The conflicted state subgraph from its definition, by full reachability per event. */
function literalSubgraph(conflicted: Set<string>, source: MemorySource): Set<string> {
  const authOf = (id: string): string[] =>
    ((source.byId.get(id)?.auth_events ?? []) as unknown[]).map((a) => (Array.isArray(a) ? (a[0] as string) : (a as string)));
  const reach = (id: string): Set<string> => {
    const out = new Set<string>();
    const stack = authOf(id);
    while (stack.length > 0) {
      const x = stack.pop() as string;
      if (out.has(x)) continue;
      out.add(x);
      stack.push(...authOf(x));
    }
    return out;
  };
  const out = new Set<string>(conflicted);
  for (const c of conflicted) {
    for (const v of reach(c)) {
      const below = reach(v);
      if ([...conflicted].some((d) => below.has(d))) out.add(v);
    }
  }
  return out;
}

const GENERATED_VERSIONS = ['1', '2', '6', '10', '11', '12'];
const SEEDS = 25;

describe('protocol/state-res: generated forks', () => {
  for (const version of GENERATED_VERSIONS) {
    describe(`room version ${version}`, () => {
      it(`resolution is independent of the order of the forks and of map iteration (${SEEDS} rooms)`, () => {
        let conflictedRooms = 0;
        for (let seed = 1; seed <= SEEDS; seed++) {
          const { room, forks, applied } = generateForks(version, seed);
          assert.ok(applied >= 10, `seed ${seed}: only ${applied} random events passed auth; the generator is broken`);
          const sets = forks.map((f) => f.state);
          const baseline = resolveState(version, sets, room.source);
          if (splitConflictedV2(sets).conflicted.size > 0) conflictedRooms++;
          const rand = rng(seed * 31);
          for (let i = 0; i < PERMUTATIONS; i++) {
            const again = resolvePermuted(version, sets, room.source, rand);
            assert.deepEqual(sortedEntries(again), sortedEntries(baseline), `seed ${seed}, permutation ${i}`);
          }
        }
        assert.ok(conflictedRooms >= SEEDS / 2, `only ${conflictedRooms} of ${SEEDS} rooms had conflicts`);
      });

      it('unconflicted entries survive; self-resolution and duplicated sets change nothing', () => {
        for (let seed = 1; seed <= SEEDS; seed++) {
          const { room, forks } = generateForks(version, seed);
          const sets = forks.map((f) => f.state);
          const resolved = resolveState(version, sets, room.source);
          for (const [key, id] of sets[0]) {
            if (sets.every((s) => s.get(key) === id)) assert.equal(resolved.get(key), id, `seed ${seed}: unconflicted ${key}`);
          }
          assert.deepEqual(sortedEntries(resolveState(version, [...sets, sets[0]], room.source)), sortedEntries(resolved), `seed ${seed}: duplicate`);
          assert.deepEqual(sortedEntries(resolveState(version, [resolved, resolved], room.source)), sortedEntries(resolved), `seed ${seed}: self`);
          // Creation survives every fork: the create event is the same everywhere.
          assert.equal(resolved.get(keyOf(room.source.byId.values().next().value as VectorPdu)), [...room.source.byId.keys()][0]);
        }
      });

      if (stateResRules(version).algorithm === 'v2') {
        it('agrees with a naive implementation written straight from the spec text', () => {
          let differing = 0;
          for (let seed = 1; seed <= SEEDS; seed++) {
            const { room, forks } = generateForks(version, seed);
            const sets = forks.map((f) => f.state);
            const fast = resolveState(version, sets, room.source);
            assert.deepEqual(sortedEntries(referenceResolve(version, sets, room.source)), sortedEntries(fast), `seed ${seed}`);
            // The comparison means something only if resolution is not just "take any fork".
            if (!sets.some((s) => JSON.stringify(sortedEntries(s)) === JSON.stringify(sortedEntries(fast)))) differing++;
          }
          assert.ok(differing >= 3, `only ${differing} rooms resolved to something other than one of their forks`);
        });

        it('the auth difference and conflicted subgraph match their literal definitions, and supplied ones are used', () => {
          let nonEmpty = 0;
          for (let seed = 1; seed <= SEEDS; seed++) {
            const { room, forks } = generateForks(version, seed);
            const sets = forks.map((f) => f.state);
            const { unconflicted, conflicted } = splitConflictedV2(sets);
            const graph = new EventGraph(version, stateResRules(version), room.source);
            const literal = literalAuthDifference(sets, room.source);
            assert.deepEqual([...graph.authDifference(sets, unconflicted)].sort(), [...literal].sort(), `seed ${seed}`);
            if (literal.size > 0) nonEmpty++;
            const conflictedIds = new Set([...conflicted.values()].flatMap((v) => [...v]));
            assert.deepEqual([...graph.conflictedSubgraph(conflictedIds)].sort(), [...literalSubgraph(conflictedIds, room.source)].sort(), `seed ${seed}`);

            let calls = 0;
            let subgraphCalls = 0;
            const indexed = {
              getEvent: (id: string) => room.source.getEvent(id),
              authChainDifference: (given: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>) => {
                calls++;
                assert.equal(given.length, sets.length);
                return literalAuthDifference(given as StateMap[], room.source);
              },
              conflictedSubgraph: (given: ReadonlySet<string>) => {
                subgraphCalls++;
                assert.deepEqual([...given].sort(), [...conflictedIds].sort());
                return literalSubgraph(new Set(given), room.source);
              },
            };
            const withIndex = resolveState(version, sets, indexed);
            assert.deepEqual(sortedEntries(withIndex), sortedEntries(resolveState(version, sets, room.source)), `seed ${seed}`);
            if (conflicted.size > 0) assert.equal(calls, 1, `seed ${seed}: supplied auth difference not used`);
            const wantSubgraphCalls = conflicted.size > 0 && stateResRules(version).conflictedSubgraph ? 1 : 0;
            assert.equal(subgraphCalls, wantSubgraphCalls, `seed ${seed}: supplied subgraph used ${subgraphCalls} times`);
          }
          assert.ok(nonEmpty >= SEEDS / 2, `only ${nonEmpty} rooms had a non-empty auth difference`);
        });
      }
    });
  }
});
