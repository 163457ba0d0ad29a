// Runs state resolution the ways ../shared/vectors/state-res/README.md describes: PDU by PDU
// (state after each event = resolution of the states after its prev_events, plus the event if it
// passes auth), batch by batch and all at once (each PDU its own one-entry state map, resolved
// with the state so far), and plain state maps. Also loads the vectors and renders states.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { checkEventAuth } from '../../src/protocol/auth-rules.js';
import { resolveState, type StateResSource } from '../../src/protocol/state-res/index.js';
import type { JsonObject, Pdu, RoomVersion, StateKeyTuple } from '../../src/protocol/types.js';
import { splitStateTuple, stateTuple } from '../../src/protocol/types.js';

export type StateMap = Map<StateKeyTuple, string>;

/** A vector PDU: the event ID inline, no hashes, signatures or depth. */
export type VectorPdu = Pdu & { event_id: string };

export function stateResDir(): string {
  const candidates = [path.resolve(process.cwd(), '../shared/vectors/state-res'), '/work/shared/vectors/state-res'];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`state-res vectors not found in ${candidates.join(' or ')}`);
  return found;
}

export function loadJson<T>(rel: string): T {
  return JSON.parse(readFileSync(path.join(stateResDir(), rel), 'utf8')) as T;
}

export function loadBatch(name: string): VectorPdu[] {
  return loadJson<VectorPdu[]>(`fixtures/${name}.json`);
}

export interface ExpectedEntry {
  type: string;
  state_key: string;
  event_id: string;
  content: JsonObject;
}

export function roomVersionOf(pdus: readonly VectorPdu[]): string {
  const create = pdus.find((p) => p.type === 'm.room.create');
  const v = create?.content.room_version;
  return typeof v === 'string' ? v : '1';
}

/** A source over an in-memory set of PDUs keyed by their inline event_id. */
export class MemorySource implements StateResSource {
  readonly byId = new Map<string, VectorPdu>();
  readonly rejectedIds = new Set<string>();
  getEventCalls = 0;

  constructor(pdus: Iterable<VectorPdu> = []) {
    for (const p of pdus) this.add(p);
  }

  add(pdu: VectorPdu): void {
    this.byId.set(pdu.event_id, pdu);
  }

  getEvent(eventId: string): { eventId: string; pdu: Pdu } | undefined {
    this.getEventCalls++;
    const pdu = this.byId.get(eventId);
    return pdu ? { eventId, pdu } : undefined;
  }

  isRejected(eventId: string): boolean {
    return this.rejectedIds.has(eventId);
  }
}

export function keyOf(pdu: Pdu): StateKeyTuple {
  if (typeof pdu.state_key !== 'string') throw new Error(`${String(pdu.event_id)} is not a state event`);
  return stateTuple(pdu.type, pdu.state_key);
}

function prevIds(pdu: Pdu): string[] {
  return (pdu.prev_events as unknown[]).map((p) => (Array.isArray(p) ? (p[0] as string) : (p as string)));
}

/** Whether `pdu` passes the auth rules against `state`, event IDs as the source holds them. */
export function passesAuth(version: string, pdu: VectorPdu, state: StateMap, source: MemorySource): boolean {
  const lookup = (t: string, k: string): Pdu | undefined => {
    const id = state.get(stateTuple(t, k));
    return id === undefined ? undefined : source.byId.get(id);
  };
  try {
    checkEventAuth(pdu, version as RoomVersion, lookup, {
      eventIdOf: (p) => (typeof p.event_id === 'string' ? p.event_id : undefined),
    });
    return true;
  } catch {
    return false;
  }
}

export interface PduByPduResult {
  state: StateMap;
  /** Events that failed auth against the state before them. */
  failed: string[];
}

/** Walks the prev_events DAG forward, computing the state after every PDU. */
export function resolvePduByPdu(version: string, pdus: readonly VectorPdu[]): PduByPduResult {
  const source = new MemorySource(pdus);
  const after = new Map<string, StateMap>();
  const referenced = new Set<string>();
  for (const p of pdus) for (const id of prevIds(p)) referenced.add(id);
  const failed: string[] = [];
  let pending = [...pdus];
  while (pending.length > 0) {
    const next: VectorPdu[] = [];
    for (const pdu of pending) {
      const prevs = prevIds(pdu);
      if (!prevs.every((id) => after.has(id))) {
        next.push(pdu);
        continue;
      }
      const before = resolveState(version, prevs.map((id) => after.get(id) as StateMap), source);
      const state = new Map(before);
      if (passesAuth(version, pdu, before, source)) state.set(keyOf(pdu), pdu.event_id);
      else failed.push(pdu.event_id);
      after.set(pdu.event_id, state);
    }
    if (next.length === pending.length) throw new Error('prev_events point at PDUs that are not in the case');
    pending = next;
  }
  const leaves = pdus.filter((p) => !referenced.has(p.event_id)).map((p) => after.get(p.event_id) as StateMap);
  return { state: resolveState(version, leaves, source), failed };
}

/** One resolution of the previous state plus a one-entry state map per PDU. */
export function resolveBatch(version: string, pdus: readonly VectorPdu[], source: MemorySource, previous?: StateMap): StateMap {
  for (const p of pdus) source.add(p);
  const sets: StateMap[] = previous ? [previous] : [];
  for (const p of pdus) sets.push(new Map([[keyOf(p), p.event_id]]));
  return resolveState(version, sets, source);
}

export function resolveBatchByBatch(version: string, batches: readonly VectorPdu[][]): StateMap {
  const source = new MemorySource();
  let state: StateMap | undefined;
  for (const batch of batches) state = resolveBatch(version, batch, source, state);
  return state ?? new Map();
}

export function resolveAllAtOnce(version: string, batches: readonly VectorPdu[][]): StateMap {
  return resolveBatch(version, batches.flat(), new MemorySource());
}

export function stateMapFromIds(ids: readonly string[], source: MemorySource): StateMap {
  const map: StateMap = new Map();
  for (const id of ids) {
    const pdu = source.byId.get(id);
    if (!pdu) throw new Error(`state map names unknown event ${id}`);
    map.set(keyOf(pdu), id);
  }
  return map;
}

/** The state in the vectors' expected format: sorted by type, then state key. */
export function render(state: StateMap, source: { byId: ReadonlyMap<string, Pdu> }): ExpectedEntry[] {
  const out: ExpectedEntry[] = [];
  for (const [key, id] of state) {
    const [type, stateKey] = splitStateTuple(key);
    const pdu = source.byId.get(id);
    out.push({ type, state_key: stateKey, event_id: id, content: (pdu?.content ?? {}) as JsonObject });
  }
  out.sort((a, b) => (a.type !== b.type ? (a.type < b.type ? -1 : 1) : a.state_key < b.state_key ? -1 : a.state_key > b.state_key ? 1 : 0));
  return out;
}

/** A deterministic PRNG (mulberry32), so a failing property run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: readonly T[], rand: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** The same map with its entries inserted in a random order. */
export function shuffledMap(map: ReadonlyMap<StateKeyTuple, string>, rand: () => number): StateMap {
  return new Map(shuffle([...map], rand));
}

/** Order-free form of a state map for equality checks. */
export function sortedEntries(map: ReadonlyMap<StateKeyTuple, string>): Array<[StateKeyTuple, string]> {
  return [...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** How a room version writes its events, for building test rooms by hand. */
export interface EventFormat {
  /** v1 and v2 cite events as [event_id, hashes] pairs. */
  pairReferences: boolean;
  /** v1–v10 name the creator in content.creator. */
  creatorInContent: boolean;
  /** v12: the room ID is the create event's ID, and auth_events never cite the create event. */
  createIsRoomId: boolean;
  /** Event IDs carry a server name in v1 and v2. */
  idsWithServer: boolean;
}

export function eventFormat(version: string): EventFormat {
  const n = Number(version);
  return {
    pairReferences: n <= 2,
    creatorInContent: n <= 10,
    createIsRoomId: n >= 12,
    idsWithServer: n <= 2,
  };
}

export interface Fork {
  state: StateMap;
  head: string | undefined;
  depth: number;
}

/**
 * Builds rooms with forks by hand: every event cites the fork's head as its prev event and its
 * auth events from the fork's state, and is applied only if it passes auth against that state.
 */
export class RoomBuilder {
  readonly source = new MemorySource();
  readonly format: EventFormat;
  roomId = '!room:example.com';
  private n = 0;
  private clock = 1_000;

  constructor(
    readonly version: string,
    private readonly prefix = 'e',
  ) {
    this.format = eventFormat(version);
  }

  fork(from?: Fork): Fork {
    return from ? { state: new Map(from.state), head: from.head, depth: from.depth } : { state: new Map(), head: undefined, depth: 0 };
  }

  private ref(id: string): unknown {
    return this.format.pairReferences ? [id, { sha256: 'unused' }] : id;
  }

  nextId(): string {
    const id = `$${this.prefix}${String(this.n++).padStart(4, '0')}`;
    return this.format.idsWithServer ? `${id}:example.com` : id;
  }

  /** Builds an event on `fork` without applying it. */
  build(
    fork: Fork,
    sender: string,
    type: string,
    stateKey: string,
    content: JsonObject,
    opts: { id?: string; ts?: number; depth?: number; prev?: string[] } = {},
  ): VectorPdu {
    const id = opts.id ?? this.nextId();
    if (type === 'm.room.create' && this.format.createIsRoomId) this.roomId = `!${id.slice(1)}`;
    const auth: string[] = [];
    if (type !== 'm.room.create') {
      const keys = new Set<string>([stateTuple('m.room.create', ''), stateTuple('m.room.power_levels', ''), stateTuple('m.room.member', sender)]);
      if (type === 'm.room.member') {
        keys.add(stateTuple('m.room.member', stateKey));
        const m = content.membership;
        if (m === 'join' || m === 'invite' || m === 'knock') keys.add(stateTuple('m.room.join_rules', ''));
      }
      for (const key of keys) {
        const v = fork.state.get(key);
        if (v === undefined) continue;
        if (this.format.createIsRoomId && key === stateTuple('m.room.create', '')) continue;
        auth.push(v);
      }
    }
    const prev = opts.prev ?? (fork.head === undefined ? [] : [fork.head]);
    const pdu = {
      event_id: id,
      room_id: this.roomId,
      sender,
      type,
      state_key: stateKey,
      content,
      origin_server_ts: opts.ts ?? (this.clock += 7),
      depth: opts.depth ?? fork.depth + 1,
      prev_events: prev.map((p) => this.ref(p)),
      auth_events: auth.map((a) => this.ref(a)),
      hashes: { sha256: 'unused' },
      signatures: {},
    } as unknown as VectorPdu;
    if (type === 'm.room.create' && this.format.createIsRoomId) delete (pdu as Partial<VectorPdu>).room_id;
    this.source.add(pdu);
    return pdu;
  }

  /** Applies a built event to the fork (no auth check). */
  apply(fork: Fork, pdu: VectorPdu): void {
    fork.state.set(keyOf(pdu), pdu.event_id);
    fork.head = pdu.event_id;
    fork.depth = Math.max(fork.depth, pdu.depth);
  }

  /** Builds, checks against the fork's state, and applies if allowed. Returns the event if applied. */
  send(fork: Fork, sender: string, type: string, stateKey: string, content: JsonObject, opts?: { id?: string; ts?: number; depth?: number }): VectorPdu | undefined {
    const pdu = this.build(fork, sender, type, stateKey, content, opts);
    if (!passesAuth(this.version, pdu, fork.state, this.source)) return undefined;
    this.apply(fork, pdu);
    return pdu;
  }

  /** Like send, but the event must pass auth. */
  must(fork: Fork, sender: string, type: string, stateKey: string, content: JsonObject, opts?: { id?: string; ts?: number; depth?: number }): VectorPdu {
    const pdu = this.send(fork, sender, type, stateKey, content, opts);
    if (!pdu) throw new Error(`v${this.version}: ${sender} may not send ${type}/${stateKey} ${JSON.stringify(content)}`);
    return pdu;
  }

  createContent(creator: string, additionalCreators: string[] = []): JsonObject {
    const content: JsonObject = this.format.creatorInContent ? { creator, room_version: this.version } : { room_version: this.version };
    if (additionalCreators.length > 0) content.additional_creators = additionalCreators;
    return content;
  }

  /** create, the creator's join, power levels, join rules: a public room run by `creator`. */
  bootstrap(creator: string, users: Record<string, number>, joinRule = 'public', additionalCreators: string[] = []): Fork {
    const f = this.fork();
    this.must(f, creator, 'm.room.create', '', this.createContent(creator, additionalCreators));
    this.must(f, creator, 'm.room.member', creator, { membership: 'join' });
    // Room 12 creators may not be listed in power_levels; they are infinitely powerful anyway.
    const listed = { ...users };
    if (this.format.createIsRoomId) for (const c of [creator, ...additionalCreators]) delete listed[c];
    this.must(f, creator, 'm.room.power_levels', '', { users: listed });
    this.must(f, creator, 'm.room.join_rules', '', { join_rule: joinRule });
    return f;
  }
}

/** The cases of ../shared/vectors/state-res/README.md, with their files in order. */
export const BATCH_CASES: ReadonlyArray<[name: string, batches: string[]]> = [
  ['minimal_private_chat', ['bootstrap-private-chat']],
  ['minimal_public_chat', ['bootstrap-public-chat']],
  ['origin_server_ts_tiebreak', ['bootstrap-private-chat', 'origin-server-ts-tiebreak']],
  ['ban_vs_power_levels', ['bootstrap-public-chat', 'ban-vs-power-levels-alice', 'ban-vs-power-levels-bob']],
  ['topic_vs_power_levels', ['bootstrap-public-chat', 'topic-vs-power-levels-alice', 'topic-vs-power-levels-bob']],
  ['power_levels_admin_vs_mod', ['bootstrap-public-chat', 'power-levels-admin-vs-mod-alice', 'power-levels-admin-vs-mod-bob']],
  ['topic_vs_ban', ['bootstrap-public-chat', 'topic-vs-ban-common', 'topic-vs-ban-alice', 'topic-vs-ban-bob']],
  ['join_rules_vs_join', ['bootstrap-public-chat', 'join-rules-vs-join-common', 'join-rules-vs-join-alice', 'join-rules-vs-join-ella']],
  ['concurrent_joins', ['bootstrap-public-chat', 'concurrent-joins-charlie', 'concurrent-joins-ella']],
];

export const STATE_MAP_CASES: ReadonlyArray<[name: string, maps: string[], pdus: string]> = [
  ['msc4297_problem_a_state_res_v2_0', ['MSC4297-problem-A/state-bob', 'MSC4297-problem-A/state-charlie'], 'MSC4297-problem-A/pdus-v11'],
  ['msc4297_problem_a_state_res_v2_1', ['MSC4297-problem-A/state-bob', 'MSC4297-problem-A/state-charlie'], 'MSC4297-problem-A/pdus-v12'],
  ['msc4297_problem_b_state_res_v2_0', ['MSC4297-problem-B/state-eve', 'MSC4297-problem-B/state-zara'], 'MSC4297-problem-B/pdus-v11'],
  ['msc4297_problem_b_state_res_v2_1', ['MSC4297-problem-B/state-eve', 'MSC4297-problem-B/state-zara'], 'MSC4297-problem-B/pdus-v12'],
];

export function expected(name: string): ExpectedEntry[] {
  return loadJson<ExpectedEntry[]>(`expected/${name}.json`);
}
