// Per-room-version differences in state resolution, read from the room version table
// (room-versions.ts: `stateRes`, `roomIdFromCreateEvent`), so no code here compares versions.
//
//  - v1 (room 1): the original algorithm, ordered by depth and sha1(event_id).
//  - v2 (rooms 2–11): spec rooms/v2 "State resolution".
//  - v2.1 (room 12, MSC4297): v2, but the first iterative auth pass starts from the empty map and
//    the full conflicted set also holds the conflicted state subgraph. Room 12 also stops citing
//    m.room.create in auth_events (its ID is the room ID), which the walks must know.
//  Creators' infinite power (v12) and string power levels (v1–v9) come with powerLevelOf.
import { roomVersionRules, type StateResAlgorithm } from '../room-versions.js';

export { UnsupportedRoomVersionError } from '../room-versions.js';

export interface StateResRules {
  algorithm: 'v1' | 'v2';
  /** MSC4297 modification 1: step 2 starts from the empty state map, not the unconflicted one. */
  emptyInitialState: boolean;
  /** MSC4297 modification 2: the full conflicted set includes the conflicted state subgraph. */
  conflictedSubgraph: boolean;
  /** The create event is found from the room ID (`!x` is the create event `$x`), not auth_events. */
  createFromRoomId: boolean;
}

const ALGORITHMS: Readonly<Record<StateResAlgorithm, Omit<StateResRules, 'createFromRoomId'>>> = {
  v1: { algorithm: 'v1', emptyInitialState: false, conflictedSubgraph: false },
  v2: { algorithm: 'v2', emptyInitialState: false, conflictedSubgraph: false },
  'v2.1': { algorithm: 'v2', emptyInitialState: true, conflictedSubgraph: true },
};

/** Throws UnsupportedRoomVersionError for a version the table does not know. */
export function stateResRules(roomVersion: string): StateResRules {
  const rules = roomVersionRules(roomVersion);
  return { ...ALGORITHMS[rules.stateRes], createFromRoomId: rules.roomIdFromCreateEvent };
}
