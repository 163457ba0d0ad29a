// The auth-event graph as state resolution sees it, for one resolution: events fetched once from
// the caller's source and memoised, with walks over `auth_events` (auth chains, auth difference,
// conflicted state subgraph) and the auth checks against a partial state.
//
// Invariants:
//  - Pure given the source: nothing here depends on the iteration order of the input maps; every
//    set it returns is order-free and every ordering is made by an explicit comparison.
//  - An event the source does not know is treated as absent (a leaf in walks, never applied).
//  - Walks are iterative (auth chains of real rooms are far deeper than the JS stack).
import { authEventTypesFor, checkEventAuth } from '../auth-rules.js';
import { isJsonObject } from '../canonical-json.js';
import { authEventIds } from '../events.js';
import { powerLevelOf } from '../power-levels.js';
import type { EventWithId, JsonValue, Pdu, StateKeyTuple } from '../types.js';
import { stateTuple } from '../types.js';
import type { StateResRules } from './rules.js';

/** Where state resolution reads events from. See index.ts for the contract. */
export interface StateResSource {
  getEvent(eventId: string): EventWithId | undefined;
  /**
   * ∪Cᵢ − ∩Cᵢ, where Cᵢ is the union of the auth chains of the events in stateSets[i] (an
   * auth chain excludes the event itself). Supplied by a store with an auth chain index.
   */
  authChainDifference?(stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>): Iterable<string>;
  /**
   * Room 12 only: the conflicted state subgraph of these conflicted events (every event on an
   * auth_events path from one of them to another, endpoints included). Without it the auth
   * chains of the conflicted events are walked here, which needs all of them from getEvent.
   */
  conflictedSubgraph?(conflictedEventIds: ReadonlySet<string>): Iterable<string>;
  /** Whether an event was rejected; rejected events are never used as auth events. */
  isRejected?(eventId: string): boolean;
}

export type StateMap = Map<StateKeyTuple, string>;

/** Read access to a (partial) state: a Map, or a layered view over one. */
export interface StateView {
  get(key: StateKeyTuple): string | undefined;
}

const CREATE_KEY = stateTuple('m.room.create', '');
export const POWER_LEVELS_KEY = stateTuple('m.room.power_levels', '');

export class EventGraph {
  private readonly pdus = new Map<string, Pdu | null>();
  private readonly authIdsMemo = new Map<string, readonly string[]>();
  private readonly plOfMemo = new Map<string, string | null>();
  private readonly powerMemo = new Map<string, number>();

  constructor(
    readonly roomVersion: string,
    readonly rules: StateResRules,
    private readonly source: StateResSource,
  ) {}

  get(eventId: string): Pdu | undefined {
    let pdu = this.pdus.get(eventId);
    if (pdu === undefined) {
      pdu = this.fetch(eventId) ?? null;
      this.pdus.set(eventId, pdu);
    }
    return pdu ?? undefined;
  }

  /** Reads through to the source without memoising: for walks that touch each event once. */
  private fetch(eventId: string): Pdu | undefined {
    const found = this.source.getEvent(eventId);
    return found && isJsonObject(found.pdu as unknown as JsonValue) ? found.pdu : undefined;
  }

  has(eventId: string): boolean {
    return this.get(eventId) !== undefined;
  }

  rejected(eventId: string): boolean {
    return this.source.isRejected?.(eventId) ?? false;
  }

  authIds(eventId: string): readonly string[] {
    let ids = this.authIdsMemo.get(eventId);
    if (!ids) {
      const pdu = this.get(eventId);
      ids = pdu ? [...new Set(authEventIds(pdu))] : [];
      this.authIdsMemo.set(eventId, ids);
    }
    return ids;
  }

  /** ts for tie-breaks: a missing or malformed origin_server_ts sorts as 0. */
  ts(eventId: string): number {
    const ts = this.get(eventId)?.origin_server_ts;
    return typeof ts === 'number' && Number.isFinite(ts) ? ts : 0;
  }

  depth(eventId: string): number {
    const depth = this.get(eventId)?.depth;
    return typeof depth === 'number' && Number.isFinite(depth) ? depth : 0;
  }

  /** The (type, state_key) of a state event, or undefined for a missing or non-state event. */
  keyOf(eventId: string): StateKeyTuple | undefined {
    const pdu = this.get(eventId);
    if (!pdu || typeof pdu.type !== 'string' || typeof pdu.state_key !== 'string') return undefined;
    return stateTuple(pdu.type, pdu.state_key);
  }

  /**
   * Power events: power levels, join rules and kicks/bans (spec), plus the create event, as
   * Synapse and ruma treat it, so a conflicted create event is ordered before everything.
   */
  isPowerEvent(eventId: string): boolean {
    const pdu = this.get(eventId);
    if (!pdu || typeof pdu.state_key !== 'string') return false;
    switch (pdu.type) {
      case 'm.room.power_levels':
      case 'm.room.join_rules':
      case 'm.room.create':
        return pdu.state_key === '';
      case 'm.room.member': {
        const m = isJsonObject(pdu.content) ? pdu.content.membership : undefined;
        return (m === 'leave' || m === 'ban') && pdu.sender !== pdu.state_key;
      }
      default:
        return false;
    }
  }

  /** The m.room.power_levels event among an event's auth_events, if any. */
  powerLevelsOf(eventId: string): string | undefined {
    let pl = this.plOfMemo.get(eventId);
    if (pl === undefined) {
      pl = null;
      for (const id of this.authIds(eventId)) {
        if (this.keyOf(id) === POWER_LEVELS_KEY) {
          pl = id;
          break;
        }
      }
      this.plOfMemo.set(eventId, pl);
    }
    return pl ?? undefined;
  }

  /** The ID of the room's create event as an event sees it: from the room ID (v12) or its auth_events. */
  private createIdFor(eventId: string): string | undefined {
    const pdu = this.get(eventId);
    if (!pdu) return undefined;
    if (pdu.type === 'm.room.create' && pdu.state_key === '') return eventId;
    if (this.rules.createFromRoomId) {
      const roomId = pdu.room_id;
      return typeof roomId === 'string' && roomId.startsWith('!') ? `$${roomId.slice(1)}` : undefined;
    }
    for (const id of this.authIds(eventId)) if (this.keyOf(id) === CREATE_KEY) return id;
    return undefined;
  }

  /**
   * The sender's power level "when looking at their auth_events" (reverse topological power
   * ordering), as the auth rules compute it: v12 creators are infinitely powerful, and with no
   * power_levels event the creator has 100 and everyone else 0.
   */
  senderPower(eventId: string): number {
    let level = this.powerMemo.get(eventId);
    if (level !== undefined) return level;
    const pdu = this.get(eventId);
    level = 0;
    if (pdu && typeof pdu.sender === 'string') {
      const createId = this.createIdFor(eventId);
      const create = createId === undefined ? undefined : this.get(createId);
      const plId = this.powerLevelsOf(eventId);
      const pl = plId === undefined ? undefined : this.get(plId)?.content;
      level = powerLevelOf(pdu.sender, isJsonObject(pl) ? pl : undefined, create, this.roomVersion);
    }
    this.powerMemo.set(eventId, level);
    return level;
  }

  /**
   * Adds to `into` the auth chain of `roots` (not the roots themselves, unless reachable),
   * without descending below events in `stop`, whose chains the caller already holds.
   */
  collectAuthChain(roots: Iterable<string>, into: Set<string>, stop?: ReadonlySet<string>): void {
    // The chains of a big room's unconflicted state touch every member event once; memoising
    // each of them would cost more than the walk, so this reads auth_events in place.
    const stack: string[] = [];
    const push = (id: string): void => {
      const memo = this.authIdsMemo.get(id);
      if (memo) {
        for (const a of memo) if (!into.has(a)) stack.push(a);
        return;
      }
      const pdu = this.pdus.get(id) ?? this.fetch(id);
      // Inlined authEventIds (v1/v2 pairs or bare IDs): no array per event on the hot path.
      const list: unknown = pdu?.auth_events;
      if (!Array.isArray(list)) return;
      for (const item of list) {
        const a = typeof item === 'string' ? item : Array.isArray(item) && typeof item[0] === 'string' ? (item[0] as string) : undefined;
        if (a !== undefined && !into.has(a)) stack.push(a);
      }
    };
    for (const r of roots) push(r);
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (into.has(id) || stop?.has(id)) continue;
      into.add(id);
      push(id);
    }
  }

  /**
   * ∪Cᵢ − ∩Cᵢ. The chains of the unconflicted events lie in every Cᵢ, so they are walked once
   * (as `common`) and each state set only walks the chains of its own conflicted events.
   */
  authDifference(stateSets: ReadonlyArray<ReadonlyMap<StateKeyTuple, string>>, unconflicted: ReadonlyMap<StateKeyTuple, string>): Set<string> {
    const common = new Set<string>();
    this.collectAuthChain(unconflicted.values(), common);
    const counts = new Map<string, number>();
    for (const set of stateSets) {
      const own: string[] = [];
      set.forEach((id, key) => {
        if (unconflicted.get(key) !== id) own.push(id);
      });
      const chain = new Set<string>();
      this.collectAuthChain(own, chain, common);
      for (const id of chain) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const diff = new Set<string>();
    for (const [id, n] of counts) if (n < stateSets.length) diff.add(id);
    return diff;
  }

  /**
   * MSC4297's conflicted state subgraph: every event on an auth_events path from one conflicted
   * event to another, endpoints included. One post-order walk from the conflicted events marks
   * each reached event that leads back into the conflicted set.
   */
  conflictedSubgraph(conflicted: ReadonlySet<string>): Set<string> {
    const leads = new Map<string, boolean>();
    const out = new Set<string>();
    for (const root of conflicted) {
      if (leads.has(root)) continue;
      // Frames: [eventId, index of the next auth event to visit].
      const stack: Array<[string, number]> = [[root, 0]];
      leads.set(root, false);
      while (stack.length > 0) {
        const frame = stack[stack.length - 1];
        const auth = this.authIds(frame[0]);
        if (frame[1] < auth.length) {
          const next = auth[frame[1]++];
          if (!leads.has(next)) {
            leads.set(next, false);
            stack.push([next, 0]);
          }
          continue;
        }
        stack.pop();
        let reaches = false;
        for (const a of auth) {
          if (conflicted.has(a) || leads.get(a) === true) {
            reaches = true;
            break;
          }
        }
        if (reaches) leads.set(frame[0], true);
      }
    }
    for (const [id, reaches] of leads) if (reaches) out.add(id);
    for (const id of conflicted) if (this.has(id)) out.add(id);
    return out;
  }

  /**
   * Whether the event passes the auth rules against `state`, where a key the rules need and
   * `state` lacks comes from the event's own (non-rejected) auth_events.
   */
  allowed(eventId: string, state: StateView, fallBackToAuthEvents: boolean): boolean {
    const pdu = this.get(eventId);
    if (!pdu || typeof pdu.state_key !== 'string') return false;
    const lookup = new Map<StateKeyTuple, Pdu>();
    // The IDs of the events the rules can see, for rule 4.3.1 (is the only prev event the create?).
    const ids = new Map<Pdu, string>([[pdu, eventId]]);
    const use = (key: StateKeyTuple, id: string): void => {
      const e = this.get(id);
      if (!e || this.rejected(id)) return;
      lookup.set(key, e);
      ids.set(e, id);
    };
    if (fallBackToAuthEvents) {
      for (const id of this.authIds(eventId)) {
        const key = this.keyOf(id);
        if (key !== undefined) use(key, id);
      }
      if (this.rules.createFromRoomId && pdu.type !== 'm.room.create') {
        const createId = this.createIdFor(eventId);
        if (createId !== undefined) use(CREATE_KEY, createId);
      }
    }
    let keys: Array<[string, string]>;
    try {
      keys = isJsonObject(pdu.content) ? authEventTypesFor(pdu, this.roomVersion) : [];
    } catch {
      return false;
    }
    keys.push(['m.room.create', '']);
    for (const [type, stateKey] of keys) {
      const key = stateTuple(type, stateKey);
      const id = state.get(key);
      if (id !== undefined) use(key, id);
    }
    try {
      checkEventAuth(pdu, this.roomVersion, (t, k) => lookup.get(stateTuple(t, k)), {
        eventIdOf: (p) => ids.get(p),
      });
      return true;
    } catch {
      // An AuthError, or a malformed event the rules choke on: either way it is not applied,
      // because resolution must not throw on bad input.
      return false;
    }
  }
}
