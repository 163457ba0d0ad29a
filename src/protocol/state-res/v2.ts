// State resolution v2 (rooms 2–11, spec rooms/v2 "State resolution") and v2.1 (room 12, MSC4297),
// which differ only by the two flags in rules.ts.
//
// Invariants:
//  - The result does not depend on the order of the state sets or of any map's iteration: the
//    conflicted sets are sets, and the two orderings (reverse topological power, mainline) are
//    total orders ending in the event ID.
//  - Linear in the size of the state plus the auth chains walked; the only super-linear parts are
//    the heap (power events) and the sort (remaining conflicted events), both n log n.
//  - Step 1's DAG only follows auth_events edges between events of the full conflicted set, as
//    Synapse and ruma do ("the auth chain of P which also belong to the full conflicted set").
import { MinHeap } from './heap.js';
import type { EventGraph, StateMap, StateResSource, StateView } from './graph.js';
import { POWER_LEVELS_KEY } from './graph.js';
import type { StateKeyTuple } from '../types.js';

/** Unconflicted: the same event under a key in every set. Anything else is conflicted. */
export function splitConflictedV2(stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>): {
  unconflicted: StateMap;
  conflicted: Map<StateKeyTuple, Set<string>>;
} {
  const unconflicted: StateMap = new Map();
  const conflicted = new Map<StateKeyTuple, Set<string>>();
  const n = stateSets.length;
  if (n === 0) return { unconflicted, conflicted };
  // This touches every entry of every set (10,000 members in a big room): plain loops, and
  // forEach rather than for-of so that no entry array is allocated per member.
  const first = stateSets[0];
  first.forEach((id, key) => {
    let same = true;
    for (let i = 1; i < n && same; i++) same = stateSets[i].get(key) === id;
    if (same) {
      unconflicted.set(key, id);
      return;
    }
    const values = new Set<string>();
    for (let i = 0; i < n; i++) {
      const v = stateSets[i].get(key);
      if (v !== undefined) values.add(v);
    }
    conflicted.set(key, values);
  });
  for (let i = 1; i < n; i++) {
    stateSets[i].forEach((id, key) => {
      if (first.has(key)) return;
      let values = conflicted.get(key);
      if (!values) conflicted.set(key, (values = new Set()));
      values.add(id);
    });
  }
  return { unconflicted, conflicted };
}

/**
 * The partially resolved state: changes over a base that is never written (the unconflicted
 * state map in v2, nothing in v2.1), so a 10,000-entry state is never copied.
 */
class LayeredState implements StateView {
  readonly changes: StateMap = new Map();

  constructor(private readonly base: ReadonlyMap<StateKeyTuple, string>) {}

  get(key: StateKeyTuple): string | undefined {
    return this.changes.get(key) ?? this.base.get(key);
  }

  set(key: StateKeyTuple, id: string): void {
    this.changes.set(key, id);
  }
}

export function resolveV2(
  graph: EventGraph,
  stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>,
  source: StateResSource,
): StateMap {
  const { unconflicted, conflicted } = splitConflictedV2(stateSets);
  if (conflicted.size === 0) return unconflicted;

  const conflictedIds = new Set<string>();
  for (const values of conflicted.values()) for (const id of values) conflictedIds.add(id);
  const difference = source.authChainDifference
    ? source.authChainDifference(stateSets)
    : graph.authDifference(stateSets, unconflicted);

  // The full conflicted set, without events we cannot see (they cannot be checked or applied).
  const full = new Set<string>();
  const addAll = (ids: Iterable<string>): void => {
    for (const id of ids) if (graph.has(id)) full.add(id);
  };
  addAll(conflictedIds);
  addAll(difference);
  if (graph.rules.conflictedSubgraph) addAll(source.conflictedSubgraph?.(conflictedIds) ?? graph.conflictedSubgraph(conflictedIds));

  // Steps 1 and 2.
  const powerEvents = [...full].filter((id) => graph.isPowerEvent(id));
  const { order: sortedPower, picked } = reverseTopologicalPowerOrder(graph, powerEvents, full);
  const partial = new LayeredState(graph.rules.emptyInitialState ? new Map() : unconflicted);
  iterativeAuthChecks(graph, sortedPower, partial);

  // Steps 3 and 4: everything step 1 picked is excluded, even events it could not order.
  const remaining = [...full].filter((id) => !picked.has(id));
  iterativeAuthChecks(graph, mainlineOrder(graph, remaining, partial.get(POWER_LEVELS_KEY)), partial);

  // Step 5: the unconflicted entries override whatever the replays did to their keys; the map
  // split made is ours, so it becomes the result.
  const resolved = unconflicted;
  for (const [key, id] of partial.changes) if (!unconflicted.has(key)) resolved.set(key, id);
  return resolved;
}

/** Applies each event that passes auth against the state so far (spec "iterative auth checks"). */
function iterativeAuthChecks(graph: EventGraph, events: readonly string[], state: LayeredState): void {
  for (const id of events) {
    const key = graph.keyOf(id);
    if (key !== undefined && graph.allowed(id, state, true)) state.set(key, id);
  }
}

/**
 * Kahn's algorithm over the power events and their auth ancestors within `full`, taking at each
 * step the smallest ready event: greatest sender power, then smallest origin_server_ts, then
 * smallest event ID. Earliest first.
 */
export function reverseTopologicalPowerOrder(
  graph: EventGraph,
  roots: readonly string[],
  full: ReadonlySet<string>,
): { order: string[]; picked: ReadonlySet<string> } {
  const edges = new Map<string, string[]>();
  const stack = [...roots];
  while (stack.length > 0) {
    const id = stack.pop() as string;
    if (edges.has(id)) continue;
    const auth = graph.authIds(id).filter((a) => full.has(a));
    edges.set(id, auth);
    for (const a of auth) if (!edges.has(a)) stack.push(a);
  }

  const pending = new Map<string, number>();
  const dependants = new Map<string, string[]>();
  for (const [id, auth] of edges) {
    pending.set(id, auth.length);
    for (const a of auth) {
      const list = dependants.get(a);
      if (list) list.push(id);
      else dependants.set(a, [id]);
    }
  }

  const power = new Map<string, number>();
  const ts = new Map<string, number>();
  for (const id of edges.keys()) {
    power.set(id, graph.senderPower(id));
    ts.set(id, graph.ts(id));
  }
  const heap = new MinHeap<string>((a, b) => {
    const pa = power.get(a) as number;
    const pb = power.get(b) as number;
    if (pa !== pb) return pa > pb;
    const ta = ts.get(a) as number;
    const tb = ts.get(b) as number;
    if (ta !== tb) return ta < tb;
    return a < b;
  });
  for (const [id, n] of pending) if (n === 0) heap.push(id);

  const out: string[] = [];
  for (let id = heap.pop(); id !== undefined; id = heap.pop()) {
    out.push(id);
    for (const d of dependants.get(id) ?? []) {
      const left = (pending.get(d) as number) - 1;
      pending.set(d, left);
      if (left === 0) heap.push(d);
    }
  }
  // Events on an auth_events cycle (only forged data has one) never become ready: they are
  // picked (so step 3 does not apply them either) but not ordered.
  return { order: out, picked: new Set(edges.keys()) };
}

/**
 * Mainline ordering based on the power_levels event `pl`: events whose power_levels ancestry
 * meets the mainline further back come first (no meeting point at all: first of all), then
 * origin_server_ts, then event ID.
 */
export function mainlineOrder(graph: EventGraph, events: readonly string[], pl: string | undefined): string[] {
  const position = new Map<string, number>();
  for (let p = pl, i = 0; p !== undefined && !position.has(p); p = graph.powerLevelsOf(p), i++) position.set(p, i);

  // Positions of power_levels events met off the mainline, so each chain is walked once.
  const memo = new Map<string, number>();
  const positionOf = (eventId: string): number => {
    const path: string[] = [];
    const onPath = new Set<string>();
    let result = Number.POSITIVE_INFINITY;
    for (let p = graph.powerLevelsOf(eventId); p !== undefined && !onPath.has(p); p = graph.powerLevelsOf(p)) {
      const known = position.get(p) ?? memo.get(p);
      if (known !== undefined) {
        result = known;
        break;
      }
      path.push(p);
      onPath.add(p);
    }
    for (const p of path) memo.set(p, result);
    return result;
  };

  const keyed = events.map((id) => ({ id, pos: positionOf(id), ts: graph.ts(id) }));
  keyed.sort((a, b) => {
    if (a.pos !== b.pos) return a.pos > b.pos ? -1 : 1;
    if (a.ts !== b.ts) return a.ts < b.ts ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return keyed.map((k) => k.id);
}
