// State resolution v1 (room version 1, spec rooms/v1 "State resolution").
//
// R starts as the union of the states without the conflicting keys; then power_levels, join_rules
// and membership conflicts are resolved in that order by replaying the candidates by ascending
// depth (ties: descending sha1(event_id)) until one fails auth against R; every other key takes
// the highest-depth (ties: lowest sha1) candidate that passes auth against R.
//
// Where the spec is silent we follow Synapse, so that rooms resolve as they do there:
//  - a key present in only some of the states is not a conflict (v2 differs);
//  - keys within one step are resolved against R as it was at the start of that step, which
//    also keeps the result independent of the order of keys;
//  - when no candidate for an "other" key passes auth, the one with the lowest depth is kept.
import { createHash } from 'node:crypto';
import type { StateKeyTuple } from '../types.js';
import { splitStateTuple } from '../types.js';
import type { EventGraph, StateMap, StateView } from './graph.js';
import { POWER_LEVELS_KEY } from './graph.js';

/** A key is conflicted when the states holding it disagree on its event. */
export function splitConflictedV1(stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>): {
  unconflicted: StateMap;
  conflicted: Map<StateKeyTuple, Set<string>>;
} {
  const values = new Map<StateKeyTuple, Set<string>>();
  for (const s of stateSets) {
    for (const [key, id] of s) {
      let set = values.get(key);
      if (!set) values.set(key, (set = new Set()));
      set.add(id);
    }
  }
  const unconflicted: StateMap = new Map();
  const conflicted = new Map<StateKeyTuple, Set<string>>();
  for (const [key, set] of values) {
    if (set.size === 1) unconflicted.set(key, set.values().next().value as string);
    else conflicted.set(key, set);
  }
  return { unconflicted, conflicted };
}

function sha1Hex(s: string): string {
  return createHash('sha1').update(s, 'utf8').digest('hex');
}

/** Ascending depth, then descending sha1(event_id): the order auth events are replayed in. */
function replayOrder(graph: EventGraph, ids: Iterable<string>): string[] {
  const keyed = [...ids].filter((id) => graph.has(id)).map((id) => ({ id, depth: graph.depth(id), sha: sha1Hex(id) }));
  keyed.sort((a, b) => {
    if (a.depth !== b.depth) return a.depth - b.depth;
    return a.sha < b.sha ? 1 : a.sha > b.sha ? -1 : 0;
  });
  return keyed.map((k) => k.id);
}

/** Replays candidates for one auth key onto R; the last one allowed wins. */
function resolveAuthKey(graph: EventGraph, key: StateKeyTuple, candidates: Iterable<string>, base: StateView): string | undefined {
  const ordered = replayOrder(graph, candidates);
  if (ordered.length === 0) return undefined;
  let winner = ordered[0];
  // R with this key replaced, without copying R (a 10,000-member room has thousands of keys).
  const r: StateView = { get: (k) => (k === key ? winner : base.get(k)) };
  for (const id of ordered.slice(1)) {
    if (!graph.allowed(id, r, false)) break;
    winner = id;
  }
  return winner;
}

export function resolveV1(graph: EventGraph, stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>): StateMap {
  const { unconflicted, conflicted } = splitConflictedV1(stateSets);
  // The map split made is ours: it becomes R, updated once per step.
  const r = unconflicted;
  if (conflicted.size === 0) return r;

  const typeOf = (key: StateKeyTuple): string => splitStateTuple(key)[0];
  const steps: Array<(key: StateKeyTuple) => boolean> = [
    (key) => key === POWER_LEVELS_KEY,
    (key) => typeOf(key) === 'm.room.join_rules',
    (key) => typeOf(key) === 'm.room.member',
  ];
  const done = new Set<StateKeyTuple>();
  for (const inStep of steps) {
    const results: StateMap = new Map();
    for (const [key, candidates] of conflicted) {
      if (done.has(key) || !inStep(key)) continue;
      done.add(key);
      const winner = resolveAuthKey(graph, key, candidates, r);
      if (winner !== undefined) results.set(key, winner);
    }
    for (const [key, id] of results) r.set(key, id);
  }

  const results: StateMap = new Map();
  for (const [key, candidates] of conflicted) {
    if (done.has(key)) continue;
    const ordered = replayOrder(graph, candidates).reverse();
    if (ordered.length === 0) continue;
    results.set(key, ordered.find((id) => graph.allowed(id, r, false)) ?? ordered[ordered.length - 1]);
  }
  for (const [key, id] of results) r.set(key, id);
  return r;
}
