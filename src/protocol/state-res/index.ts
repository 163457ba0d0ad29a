// State resolution: given the states at several forward extremities of a room (or any set of
// state maps), compute the one resolved state. v1 for room version 1, v2 for rooms 2–11, v2.1
// (MSC4297) for room 12; rules.ts holds the per-version table.
//
// API:
//   resolveState(roomVersion, stateSets, source) → Map<StateKeyTuple, eventId>
//     stateSets: each a map (type, state_key) → event ID.
//     source.getEvent(id): the event (with its PDU) or undefined if unknown. Unknown events are
//       left out of the resolution rather than failing it.
//     source.authChainDifference?(stateSets): optional indexed ∪Cᵢ − ∩Cᵢ (Cᵢ = the auth chains of
//       stateSets[i]'s events, without those events themselves). Without it the chains are walked
//       here through `auth_events`, once per event per call.
//     source.conflictedSubgraph?(conflictedIds): optional, room 12 only: the conflicted state
//       subgraph (MSC4297) from an index; without it the conflicted events' chains are walked.
//     source.isRejected?(id): rejected events are never used as auth events.
//
// Invariants:
//  - Synchronous and pure given the source: same input, same output, independent of the order of
//    `stateSets` and of the iteration order of every map (property-tested).
//  - Never throws on bad event data: malformed or unauthorised events are simply not applied.
//    It throws UnsupportedRoomVersionError for a room version it has no algorithm for.
//  - v2/v2.1 never read `depth` (it is attacker-controlled); v1 does, as its spec says.
//  - Auth checks are the room version's auth rules (checkEventAuth in auth-rules.ts); the event
//    IDs it compares (rule 4.3.1) are the IDs the source holds events under.
import type { StateKeyTuple } from '../types.js';
import { EventGraph } from './graph.js';
import type { StateMap, StateResSource } from './graph.js';
import { stateResRules } from './rules.js';
import { resolveV1 } from './v1.js';
import { resolveV2 } from './v2.js';

export type { StateMap, StateResSource } from './graph.js';
export { UnsupportedRoomVersionError, stateResRules, type StateResRules } from './rules.js';

export function resolveState(
  roomVersion: string,
  stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>,
  source: StateResSource,
): StateMap {
  const rules = stateResRules(roomVersion);
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const graph = new EventGraph(roomVersion, rules, source);
  return rules.algorithm === 'v1' ? resolveV1(graph, stateSets) : resolveV2(graph, stateSets, source);
}
