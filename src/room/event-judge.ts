// Checks 4-6 of room input (see room-input.ts), for local and received events alike: auth
// against the event's own auth_events, against the state before it (its prev_events' states,
// resolved: state resolution runs only when those are not exactly the forward extremities) and
// against the room's current state (soft fail). Reads the store, writes nothing.
//
// Invariants: a verdict is a value, never an exception, for anything the event itself gets
// wrong; an event whose prev events are unknown is an outlier (its state cannot be known) unless
// the caller brings the states after the missing prev events from the sender (federation's
// /state_ids fallback, resolved with the known prevs' states like any fork); an
// event citing a rejected auth event is rejected; a rejected event is stored with the state
// before it when that is known, so events after it are not cut off.

import type { AuthStateLookup } from '../protocol/auth-rules.js';
import { authEventIds, prevEventIds } from '../protocol/events.js';
import type { Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { RoomStore, StateEntry } from '../store/types.js';
import { changedEntries, toEntries, type DagState } from './dag-state.js';
import { authKeysOf, checkAgainstAuthEvents, checkAgainstState } from './pdu-checks.js';
import type { RoomState } from './room-state.js';
import type { StateMap } from './state-resolver.js';

/** The state before an event, as far as steps 5 and 6 need it. */
export interface Before {
  /** True when it is the room's current state (prev_events = the forward extremities). */
  isCurrent: boolean;
  /** How the store should record it (absent when it is the current state). */
  stored?: { group: number | null; delta: StateEntry[] };
  /** The whole state, when it had to be computed (not the current state). */
  map?: StateMap;
}

export type Verdict =
  | { kind: 'accepted'; before: Before }
  | { kind: 'soft_failed'; reason: string; before: Before }
  | { kind: 'rejected'; reason: string; before?: Before; store: boolean }
  | { kind: 'outlier'; reason: string };

export class EventJudge {
  constructor(
    private readonly rooms: RoomStore,
    private readonly dag: DagState,
  ) {}

  /**
   * Checks 4-6. Reads the store, writes nothing. `gapStates`: the states after the prev events
   * we do not have, as another server reported them (/state_ids at each), resolved together with
   * the states after the known prevs.
   * `local`: this server built the event from `state` (RoomInput.buildPdu), citing as auth
   * events the current state's entries for exactly the keys the auth rules consult; when its
   * prev_events are still the forward extremities, step 5 would run the same rules over the same
   * entries as step 4, so it is not run twice.
   */
  async judge(roomId: string, state: RoomState, pdu: Pdu, eventId: string, gapStates?: readonly StateMap[], opts: { local?: boolean } = {}): Promise<Verdict> {
    const rooms = this.rooms;
    const version = state.version;

    // 4. Auth against its own auth_events.
    // A rejected event is stored with the state before it when that is known (the state after
    // it is the same), so events citing it as a prev still have a state.
    const rejectedWithState = async (reason: string): Promise<Verdict> => {
      const b = await this.stateBefore(roomId, state, pdu, gapStates);
      return { kind: 'rejected', reason, before: b?.before, store: true };
    };
    const authEvents: Pdu[] = [];
    const unknownAuth: string[] = [];
    for (const id of authEventIds(pdu)) {
      const ev = state.eventById(id);
      if (ev) authEvents.push(ev);
      else unknownAuth.push(id);
    }
    if (unknownAuth.length > 0) {
      const found = await rooms.getEvents(unknownAuth);
      for (const id of unknownAuth) {
        const ev = found.get(id);
        // Without federation we cannot fetch it; the event may be fine once it arrives.
        if (!ev) return { kind: 'rejected', reason: `unknown auth event ${id}`, store: false };
        if (ev.rejected !== null) return rejectedWithState(`auth event ${id} was rejected`);
        authEvents.push(ev.pdu);
      }
    }
    const authFailure = checkAgainstAuthEvents(pdu, version, authEvents, state.get('m.room.create', '')?.pdu);
    if (authFailure !== undefined) return rejectedWithState(authFailure);

    // 5. Auth against the state before it.
    const computed = await this.stateBefore(roomId, state, pdu, gapStates);
    if (!computed) {
      const groups = await rooms.getEventStateGroups(prevEventIds(pdu));
      return { kind: 'outlier', reason: `prev events unknown: ${prevEventIds(pdu).filter((id) => !groups.has(id)).join(', ')}` };
    }
    const { before } = computed;
    const lookup = before.isCurrent ? lookupIn(state) : await this.lookupFor(pdu, version, before.map as StateMap);
    const stateFailure = opts.local && before.isCurrent ? undefined : checkAgainstState(pdu, version, lookup);
    if (stateFailure !== undefined) return { kind: 'rejected', reason: stateFailure, before, store: true };

    // 6. Soft fail against the current state (the same check again when that is the state before).
    if (!before.isCurrent) {
      const softFailure = checkAgainstState(pdu, version, lookupIn(state));
      if (softFailure !== undefined) return { kind: 'soft_failed', reason: softFailure, before };
    }
    return { kind: 'accepted', before };
  }

  /**
   * The state before `pdu`: the current state when its prev events are the forward extremities,
   * else the resolution of the states after its prevs (the reported `gapStates` standing in for
   * prevs stored without a state). Undefined when a prev's state is unknown and none was reported.
   */
  private async stateBefore(roomId: string, state: RoomState, pdu: Pdu, gapStates?: readonly StateMap[]): Promise<{ before: Before } | undefined> {
    const prevs = prevEventIds(pdu);
    if (sameSet(prevs, state.extremities)) return { before: { isCurrent: true } };
    const groups = await this.rooms.getEventStateGroups(prevs);
    const known = prevs.filter((id) => groups.has(id));
    if (known.length < prevs.length && !gapStates?.length) return undefined;
    const maps = await Promise.all(known.map((id) => this.dag.groupState((groups.get(id) as { after: number }).after)));
    // A gap the caller could not close: the states its sender reported stand in for the missing prevs.
    if (known.length < prevs.length && gapStates) maps.push(...gapStates);
    const map = maps.length === 0 ? new Map<string, string>() : await this.dag.resolve(roomId, state.version, maps);
    return { before: { isCurrent: false, map, stored: storedAs(known.length > 0 ? (groups.get(known[0]) as { after: number }).after : null, maps[0], map) } };
  }

  /** A lookup over `map` holding the PDUs of exactly the entries the auth rules consult for `pdu`. */
  private async lookupFor(pdu: Pdu, version: RoomVersion, map: StateMap): Promise<AuthStateLookup> {
    // The create event always: v12's selection leaves it out, yet the rules read it.
    const keys = [stateTuple('m.room.create', ''), ...authKeysOf(pdu, version).map(([t, k]) => stateTuple(t, k))];
    const ids = keys.map((k) => map.get(k)).filter((id): id is string => id !== undefined);
    const found = await this.rooms.getEvents(ids);
    return (type, stateKey) => {
      const id = map.get(stateTuple(type, stateKey));
      return id === undefined ? undefined : found.get(id)?.pdu;
    };
  }
}

export function lookupIn(state: RoomState): AuthStateLookup {
  return (type, stateKey) => state.get(type, stateKey)?.pdu;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(b);
  return a.every((x) => s.has(x)) && new Set(a).size === s.size;
}

/** How to store `state` given the group `base` (whose state is `baseMap`) it was resolved from. */
function storedAs(base: number | null, baseMap: StateMap | undefined, state: StateMap): { group: number | null; delta: StateEntry[] } {
  if (base === null || baseMap === undefined) return { group: null, delta: toEntries(state) };
  // A key the resolution dropped cannot be written as a change; store the whole state then.
  for (const k of baseMap.keys()) if (!state.has(k)) return { group: null, delta: toEntries(state) };
  return { group: base, delta: changedEntries(baseMap, state) };
}

