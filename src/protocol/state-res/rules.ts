// Per-room-version differences in state resolution, as one table (no `if (version …)` elsewhere).
//
//  - v1 (room 1): the original algorithm, ordered by depth and sha1(event_id).
//  - v2 (rooms 2–11): spec rooms/v2 "State resolution".
//  - v2.1 (room 12, MSC4297): v2, but the first iterative auth pass starts from the empty map and
//    the full conflicted set also holds the conflicted state subgraph. Room 12 also stops citing
//    m.room.create in auth_events (its ID is the room ID) and gives creators infinite power,
//    which the power ordering must see.

export interface StateResRules {
  algorithm: 'v1' | 'v2';
  /** MSC4297 modification 1: step 2 starts from the empty state map, not the unconflicted one. */
  emptyInitialState: boolean;
  /** MSC4297 modification 2: the full conflicted set includes the conflicted state subgraph. */
  conflictedSubgraph: boolean;
  /** The create event is found from the room ID (`!x` is the create event `$x`), not auth_events. */
  createFromRoomId: boolean;
  /** The create event's sender and `additional_creators` have infinite power. */
  privilegedCreators: boolean;
  /** Power levels may be integers written as strings (rooms 1–9). */
  stringyPowerLevels: boolean;
}

const V1: StateResRules = {
  algorithm: 'v1',
  emptyInitialState: false,
  conflictedSubgraph: false,
  createFromRoomId: false,
  privilegedCreators: false,
  stringyPowerLevels: true,
};
const V2: StateResRules = { ...V1, algorithm: 'v2' };
const V2_INT: StateResRules = { ...V2, stringyPowerLevels: false };
const V2_1: StateResRules = {
  ...V2_INT,
  emptyInitialState: true,
  conflictedSubgraph: true,
  createFromRoomId: true,
  privilegedCreators: true,
};

const RULES: ReadonlyMap<string, StateResRules> = new Map([
  ['1', V1],
  ['2', V2],
  ['3', V2],
  ['4', V2],
  ['5', V2],
  ['6', V2],
  ['7', V2],
  ['8', V2],
  ['9', V2],
  ['10', V2_INT],
  ['11', V2_INT],
  ['12', V2_1],
]);

export class UnsupportedRoomVersionError extends Error {
  override name = 'UnsupportedRoomVersionError';
}

export function stateResRules(roomVersion: string): StateResRules {
  const rules = RULES.get(roomVersion);
  if (!rules) throw new UnsupportedRoomVersionError(`no state resolution for room version ${roomVersion}`);
  return rules;
}
