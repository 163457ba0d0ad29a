// A deliberately naive state resolution v2 / v2.1, written straight from the spec text (rooms/v2
// and rooms/v12 "State resolution") for tests to compare the real one against: full auth chains
// per state set, the conflicted state subgraph by pairwise reachability, Kahn's algorithm with a
// full sort at every step, the mainline walked from scratch for every event, and every state
// copied freely. Quadratic and slow; only for small generated rooms. It shares two readings with
// the real code, both those of Synapse and ruma: the create event counts as a power event, and
// step 1 follows auth_events only through events of the full conflicted set.
import { authEventTypesFor, checkEventAuth } from '../../src/protocol/auth-rules.js';
import { powerLevelOf } from '../../src/protocol/power-levels.js';
import { roomVersionRules } from '../../src/protocol/room-versions.js';
import type { Pdu, StateKeyTuple } from '../../src/protocol/types.js';
import { stateTuple } from '../../src/protocol/types.js';
import type { MemorySource, StateMap } from './state-res-harness.js';

function ids(list: unknown): string[] {
  return Array.isArray(list) ? list.map((x) => (Array.isArray(x) ? (x[0] as string) : (x as string))) : [];
}

export function referenceResolve(version: string, sets: readonly StateMap[], source: MemorySource): StateMap {
  const rules = roomVersionRules(version);
  const v21 = rules.stateRes === 'v2.1';
  const ev = (id: string): Pdu | undefined => source.byId.get(id);
  const authOf = (id: string): string[] => ids(ev(id)?.auth_events);
  const key = (id: string): StateKeyTuple => stateTuple(ev(id)!.type, ev(id)!.state_key as string);
  const chain = (id: string): Set<string> => {
    const out = new Set<string>();
    const todo = authOf(id);
    while (todo.length) {
      const x = todo.pop()!;
      if (!out.has(x)) {
        out.add(x);
        todo.push(...authOf(x));
      }
    }
    return out;
  };

  const allKeys = new Set(sets.flatMap((s) => [...s.keys()]));
  const unconflicted: StateMap = new Map();
  const conflicted = new Set<string>();
  for (const k of allKeys) {
    const values = sets.map((s) => s.get(k));
    if (values.every((v) => v !== undefined && v === values[0])) unconflicted.set(k, values[0]!);
    else for (const v of values) if (v !== undefined) conflicted.add(v);
  }
  if (conflicted.size === 0) return unconflicted;

  const fullChains = sets.map((s) => {
    const c = new Set<string>();
    for (const id of s.values()) for (const x of chain(id)) c.add(x);
    return c;
  });
  const full = new Set<string>(conflicted);
  for (const c of fullChains) for (const x of c) if (!fullChains.every((d) => d.has(x))) full.add(x);
  if (v21) {
    for (const a of conflicted) {
      for (const x of chain(a)) if ([...conflicted].some((b) => chain(x).has(b))) full.add(x);
    }
  }
  for (const id of [...full]) if (!ev(id)) full.delete(id);

  const isPower = (id: string): boolean => {
    const e = ev(id)!;
    if (['m.room.power_levels', 'm.room.join_rules', 'm.room.create'].includes(e.type)) return e.state_key === '';
    return e.type === 'm.room.member' && ['leave', 'ban'].includes(e.content.membership as string) && e.sender !== e.state_key;
  };
  const createId = (id: string): string | undefined =>
    rules.roomIdFromCreateEvent ? `$${String(ev(id)!.room_id ?? "").slice(1)}` : authOf(id).find((a) => ev(a)?.type === 'm.room.create');
  const plOf = (id: string): string | undefined => authOf(id).find((a) => ev(a)?.type === 'm.room.power_levels' && ev(a)?.state_key === '');
  const senderPower = (id: string): number => {
    const pl = plOf(id);
    const c = ev(id)!.type === 'm.room.create' ? ev(id) : ev(createId(id) ?? '');
    return powerLevelOf(ev(id)!.sender, pl ? ev(pl)!.content : undefined, c, version);
  };

  // Step 1.
  const x = new Set<string>();
  const todo = [...full].filter(isPower);
  while (todo.length) {
    const id = todo.pop()!;
    if (x.has(id)) continue;
    x.add(id);
    for (const a of authOf(id)) if (full.has(a)) todo.push(a);
  }
  const sortedPower: string[] = [];
  const done = new Set<string>();
  for (;;) {
    const ready = [...x].filter((id) => !done.has(id) && authOf(id).every((a) => !x.has(a) || done.has(a)));
    if (ready.length === 0) break;
    ready.sort((a, b) => {
      const pa = senderPower(a);
      const pb = senderPower(b);
      if (pa !== pb) return pa > pb ? -1 : 1;
      return ev(a)!.origin_server_ts - ev(b)!.origin_server_ts || (a < b ? -1 : 1);
    });
    sortedPower.push(ready[0]);
    done.add(ready[0]);
  }

  const iterate = (events: string[], state: StateMap): StateMap => {
    for (const id of events) {
      const e = ev(id)!;
      const lookup = new Map<StateKeyTuple, Pdu>();
      for (const a of authOf(id)) if (ev(a) && !source.isRejected(a)) lookup.set(key(a), ev(a)!);
      if (rules.roomIdFromCreateEvent && e.type !== 'm.room.create' && ev(createId(id)!)) lookup.set(stateTuple('m.room.create', ''), ev(createId(id)!)!);
      for (const [t, k] of [...authEventTypesFor(e, version), ['m.room.create', '']]) {
        const s = state.get(stateTuple(t, k));
        if (s !== undefined && ev(s) && !source.isRejected(s)) lookup.set(stateTuple(t, k), ev(s)!);
      }
      const known = new Map([...lookup.values(), e].map((p) => [p, p === e ? id : (p.event_id as string)]));
      try {
        checkEventAuth(e, version, (t, k) => lookup.get(stateTuple(t, k)), { eventIdOf: (p) => known.get(p) });
        state = new Map(state).set(key(id), id);
      } catch {
        // not applied
      }
    }
    return state;
  };

  // Step 2.
  const partial = iterate(sortedPower, v21 ? new Map() : new Map(unconflicted));

  // Step 3.
  const mainline: string[] = [];
  for (let p = partial.get(stateTuple('m.room.power_levels', '')); p !== undefined; p = plOf(p)) mainline.push(p);
  const position = (id: string): number => {
    for (let p = plOf(id); p !== undefined; p = plOf(p)) {
      const i = mainline.indexOf(p);
      if (i >= 0) return i;
    }
    return Number.POSITIVE_INFINITY;
  };
  const rest = [...full].filter((id) => !x.has(id));
  rest.sort((a, b) => {
    const pa = position(a);
    const pb = position(b);
    if (pa !== pb) return pa > pb ? -1 : 1;
    return ev(a)!.origin_server_ts - ev(b)!.origin_server_ts || (a < b ? -1 : 1);
  });

  // Steps 4 and 5.
  const resolved = iterate(rest, partial);
  for (const [k, v] of unconflicted) resolved.set(k, v);
  return resolved;
}
