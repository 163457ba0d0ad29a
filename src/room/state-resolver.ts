// The seam between room input and state resolution. Room input only ever resolves through this
// interface, so the pure algorithms in src/protocol/state-res plug in from the composition root
// (src/app.ts) and tests can inject their own.
//
// Contract (the same as src/protocol/state-res's resolveState): synchronous and pure given the
// source; events the source does not know are left out rather than failing the resolution; the
// result does not depend on the order of `stateSets`.

import type { EventWithId, RoomVersion, StateKeyTuple } from '../protocol/types.js';

export type StateMap = Map<StateKeyTuple, string>;

export interface StateResolutionSource {
  getEvent(eventId: string): EventWithId | undefined;
  /** Indexed auth chain difference of the state sets (from the store's auth chain index). */
  authChainDifference?(stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>): Iterable<string>;
  /** Room 12: every event on an auth path from one conflicted event to another (store index). */
  conflictedSubgraph?(conflictedEventIds: ReadonlySet<string>): Iterable<string>;
  isRejected?(eventId: string): boolean;
}

export type ResolveState = (
  roomVersion: RoomVersion,
  stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>,
  source: StateResolutionSource,
) => StateMap;
