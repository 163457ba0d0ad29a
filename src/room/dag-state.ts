// Reading and resolving states of the room DAG for room input: the state before an event (its
// prev_events' states, resolved), and the room's current state after a fork (its forward
// extremities' states, resolved).
//
// The resolver is synchronous (pure code in src/protocol), the store is not. So events are
// loaded up front: the conflicted entries, the auth chain difference (from the store's index,
// not by walking chains) and the create/power/join-rules events of every set. If resolution still
// asks for an event that was not loaded, the misses are fetched and resolution runs again; each
// round loads at least one new event, so this ends, and the usual fork needs one round.

import { authEventIds } from '../protocol/events.js';
import type { EventWithId, RoomVersion, StateKeyTuple } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { RoomStore, StateEntry, StateGroupId, StateKeyRef } from '../store/types.js';
import type { ResolveState, StateMap } from './state-resolver.js';

export function toStateMap(entries: readonly StateEntry[]): StateMap {
  const m: StateMap = new Map();
  for (const e of entries) m.set(stateTuple(e.type, e.stateKey), e.eventId);
  return m;
}

export function toEntries(map: ReadonlyMap<StateKeyTuple, string>): StateEntry[] {
  const out: StateEntry[] = [];
  for (const [k, eventId] of map) {
    const i = k.indexOf('\u0000');
    out.push({ type: k.slice(0, i), stateKey: k.slice(i + 1), eventId });
  }
  return out;
}

/** Entries of `to` that differ from `from` (keys only in `from`: removedKeys). */
export function changedEntries(from: ReadonlyMap<StateKeyTuple, string>, to: ReadonlyMap<StateKeyTuple, string>): StateEntry[] {
  const changed = new Map<StateKeyTuple, string>();
  for (const [k, v] of to) if (from.get(k) !== v) changed.set(k, v);
  return toEntries(changed);
}

/** Keys of `from` that `to` has no value for (state resolution dropped them). */
export function removedKeys(from: ReadonlyMap<StateKeyTuple, string>, to: ReadonlyMap<StateKeyTuple, string>): StateKeyRef[] {
  const out: StateKeyRef[] = [];
  for (const k of from.keys()) {
    if (to.has(k)) continue;
    const i = k.indexOf('\u0000');
    out.push({ type: k.slice(0, i), stateKey: k.slice(i + 1) });
  }
  return out;
}

const ALWAYS_LOAD = [stateTuple('m.room.create', ''), stateTuple('m.room.power_levels', ''), stateTuple('m.room.join_rules', '')];

export class DagState {
  constructor(
    private readonly rooms: RoomStore,
    private readonly resolveState: ResolveState,
  ) {}

  async groupState(group: StateGroupId): Promise<StateMap> {
    return toStateMap(await this.rooms.getStateGroup(group));
  }

  /** Resolves several states of one room into one. `pending` are events not stored yet (the one being accepted). */
  async resolve(roomId: string, version: RoomVersion, sets: StateMap[], pending: EventWithId[] = []): Promise<StateMap> {
    if (sets.length === 0) return new Map();
    const conflicted = new Set<string>();
    const keys = new Set<StateKeyTuple>();
    for (const s of sets) for (const k of s.keys()) keys.add(k);
    for (const k of keys) {
      const values = new Set(sets.map((s) => s.get(k)));
      if (values.size > 1) for (const v of values) if (v !== undefined) conflicted.add(v);
    }
    if (conflicted.size === 0) return new Map(sets[0]);

    const difference = await this.rooms.getAuthChainDifference(
      roomId,
      sets.map((s) => [...s.values()]),
    );
    const events = new Map<string, EventWithId>();
    const rejected = new Set<string>();
    const missing = new Set<string>();
    for (const e of pending) events.set(e.eventId, e);
    const load = async (ids: Iterable<string>): Promise<void> => {
      const want = [...new Set(ids)].filter((id) => !events.has(id) && !missing.has(id));
      const found = await this.rooms.getEvents(want);
      for (const id of want) {
        const ev = found.get(id);
        if (!ev) missing.add(id);
        else {
          events.set(id, { eventId: id, pdu: ev.pdu });
          if (ev.rejected !== null) rejected.add(id);
        }
      }
    };
    const first: string[] = [...conflicted, ...difference];
    for (const s of sets) for (const k of ALWAYS_LOAD) {
      const id = s.get(k);
      if (id) first.push(id);
    }
    await load(first);
    // The auth events of what was loaded (resolution reads senders' power from them), and the
    // whole power-levels chain (mainline ordering walks it): power events cite their predecessor.
    let frontier = [...events.values()];
    for (let depth = 0; frontier.length > 0; depth++) {
      const before = new Set(events.keys());
      const next = depth === 0 ? frontier : frontier.filter((e) => e.pdu.type === 'm.room.power_levels');
      await load(next.flatMap((e) => authEventIds(e.pdu)));
      frontier = [...events.values()].filter((e) => !before.has(e.eventId));
    }

    // Room 12 asks for the conflicted subgraph; the store answers it from its index, but only a
    // run of the resolver says whether this version wants it, so the first request reruns.
    let subgraph: Set<string> | undefined;
    for (;;) {
      const misses = new Set<string>();
      let wantsSubgraph = false;
      const result = this.resolveState(version, sets, {
        getEvent: (id) => {
          const ev = events.get(id);
          if (!ev && !missing.has(id)) misses.add(id);
          return ev;
        },
        authChainDifference: () => new Set(difference),
        conflictedSubgraph: (ids) => {
          if (subgraph) return new Set(subgraph);
          wantsSubgraph = true;
          return new Set(ids);
        },
        isRejected: (id) => rejected.has(id),
      });
      if (wantsSubgraph && !subgraph) {
        subgraph = await this.rooms.getConflictedSubgraph(roomId, [...conflicted]);
        await load(subgraph);
        continue;
      }
      if (misses.size === 0) return result;
      await load(misses);
      // One level of their auth events too, so chains of auth events need fewer rounds.
      await load([...misses].flatMap((id) => {
        const ev = events.get(id);
        return ev ? authEventIds(ev.pdu) : [];
      }));
    }
  }
}
