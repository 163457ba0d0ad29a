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
