// Receiving a PDU whose prev events we lack (pipeline step 4 in the spec's "Retrieving missing
// events"): the gap is asked of the sender with get_missing_events, in rounds, from our forward
// extremities to the event; what arrives is received oldest first so each event gets a known
// state instead of becoming an outlier. When the rounds cannot connect the gap (it is wider than
// the budget, or the sender does not answer), a fetched event still cut off gets, for each prev
// event we lack, the state after that prev as its sender reports it (/state_ids at the prev,
// /state for the state events we do not have, /event for the prev itself); room input resolves
// those states with the known prevs' states, as for any fork (the state before an event is the
// resolution of the states after its prevs). The gap's messages stay missing, but the room's
// state and every later event are right.
//
// Invariants:
// - Work per incoming transaction is bounded (GapBudget): get_missing_events requests, events
//   taken from them, and state fallbacks (one per missing prev). A peer cannot make us fetch
//   without end; past the budget an event still cut off is refused unstored (a later gap fill
//   may fetch it).
// - The pushed event itself (the one /send or /invite carried) gets no state fallback: when
//   get_missing_events brings nothing that connects it, it is refused unstored. Only events we
//   pulled get their state from the sender; a sender that will not divulge the events it cites
//   cannot make us adopt a state on its word alone (Synapse behaves the same).
// - Everything fetched goes through RoomInput.receive (checks 1-6) or, for fallback state and
//   missing prevs, checks 1-4 (verifyChain, auth events of this room only) before it is stored;
//   such events are stored as outliers (no state, not in the timeline), or rejected when they
//   fail auth. A missing prev that is a valid non-state event is not stored at all (only its
//   type matters to the state after it).
// - Only events of the room the PDU is in are taken.

import type { Logger } from 'pino';
import { isJsonObject } from '../protocol/canonical-json.js';
import { authEventIds, prevEventIds } from '../protocol/events.js';
import { checkAgainstAuthEvents, checkFormat, checkHashOrRedact, checkSignatures } from '../room/pdu-checks.js';
import type { JsonObject, JsonValue, Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { KeyRing } from '../room/key-ring.js';
import type { InputOutcome, RoomInput } from '../room/room-input.js';
import type { StateMap } from '../room/state-resolver.js';
import type { Store } from '../store/types.js';
import { fedPath } from './client.js';
import { verifyChain } from './verify-chain.js';

/** What one incoming transaction may spend on filling gaps (shared by its rooms). */
export interface GapBudget {
  requests: number;
  events: number;
  stateFallbacks: number;
}

export const DEFAULT_GAP_BUDGET: Readonly<GapBudget> = { requests: 10, events: 100, stateFallbacks: 4 };

/** get_missing_events answers at most this many events per request (the receiver caps it too). */
const PER_REQUEST = 20;
/** Events citing more prev events than this are not followed (the spec's and Synapse's limit). */
const MAX_PREVS = 20;
/** A /state_ids answer longer than this is not believed (a room's state and auth chain). */
const MAX_STATE_IDS = 50_000;

export interface GapFillDeps {
  store: Store;
  roomInput: RoomInput;
  keyRing: KeyRing;
  logger: Logger;
  /** A signed federation request to `origin` (FederationClient.request). */
  request: (origin: string, method: 'GET' | 'POST', path: string, body?: JsonObject) => Promise<JsonValue>;
}

export class GapFiller {
  constructor(private readonly d: GapFillDeps) {}

  /** Receives `raw` (event `eventId` of `roomId`), filling a gap before it first when there is one. */
  async receive(origin: string, roomId: string, version: RoomVersion, raw: JsonValue, eventId: string, budget: GapBudget): Promise<InputOutcome> {
    const f = checkFormat(raw, roomId, version);
    // Malformed: room input says why. Past MAX_PREVS the event is not worth a fill (Synapse refuses it).
    if (!f.ok || prevEventIds(f.value.pdu).length > MAX_PREVS) return this.d.roomInput.receive(roomId, raw, origin);
    const pdu = f.value.pdu;
    if ((await this.cutOff(new Map([[eventId, pdu]]))).length === 0 || (await this.d.store.rooms.getEvent(eventId))) {
      return this.d.roomInput.receive(roomId, raw, origin);
    }
    const fetched = await this.missingEvents(origin, roomId, version, eventId, pdu, budget);
    // Oldest first; an event still cut off from what we have gets its state from the sender.
    const ordered = [...fetched.values()].sort((a, b) => a.pdu.depth - b.pdu.depth);
    for (const e of ordered) await this.receiveOne(origin, roomId, version, e.raw, e.pdu, e.eventId, budget, true);
    return this.receiveOne(origin, roomId, version, raw, pdu, eventId, budget, false);
  }

  private async receiveOne(origin: string, roomId: string, version: RoomVersion, raw: JsonValue, pdu: Pdu, eventId: string, budget: GapBudget, pulled: boolean): Promise<InputOutcome> {
    if ((await this.cutOff(new Map([[eventId, pdu]]))).length > 0 && !(await this.d.store.rooms.getEvent(eventId))) {
      const states = pulled ? await this.statesAfterMissingPrevs(origin, roomId, version, eventId, pdu, budget) : undefined;
      if (states) return this.d.roomInput.receive(roomId, raw, origin, states);
      // Not stored at all rather than as an outlier: a later event's gap fill fetches it again
      // (an outlier would stay cut off, and cut off everything after it).
      const reason = pulled
        ? 'the state at its missing prev events could not be had (gap budget spent or sender unreachable)'
        : 'its prev events could not be fetched from the sender';
      return { outcome: 'rejected', eventId, reason, stored: false, gap: true };
    }
    return this.d.roomInput.receive(roomId, raw, origin);
  }

  /**
   * For each prev event of `pdu` stored without a state, the state after it as `origin` reports
   * it; undefined when any cannot be had (or the budget does not cover them all).
   */
  private async statesAfterMissingPrevs(origin: string, roomId: string, version: RoomVersion, eventId: string, pdu: Pdu, budget: GapBudget): Promise<StateMap[] | undefined> {
    const prevs = [...new Set(prevEventIds(pdu))];
    const groups = await this.d.store.rooms.getEventStateGroups(prevs);
    const missing = prevs.filter((id) => !groups.has(id));
    if (missing.length === 0 || missing.length > budget.stateFallbacks) return undefined;
    budget.stateFallbacks -= missing.length;
    const out: StateMap[] = [];
    for (const prev of missing) {
      const state = await this.stateAfter(origin, roomId, version, prev);
      if (!state) return undefined;
      out.push(state);
    }
    this.d.logger.info({ origin, roomId, eventId, missing }, 'gap not connected: using the state at its missing prev events as the sender reports it');
    return out;
  }

  /**
   * Rounds of get_missing_events: the first from the event itself, each later one from the
   * fetched events whose prev events are still unknown. Returns what was fetched, by event ID.
   */
  private async missingEvents(origin: string, roomId: string, version: RoomVersion, eventId: string, pdu: Pdu, budget: GapBudget) {
    const fetched = new Map<string, { eventId: string; pdu: Pdu; raw: JsonValue }>();
    let latest = [eventId];
    const earliest = await this.d.store.rooms.getForwardExtremities(roomId);
    // Nothing older than our first timeline event here (for a room joined over federation, the
    // join): what came before we were in the room is history, not a gap.
    const [first] = await this.d.store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, limit: 1 });
    const minDepth = first?.pdu.depth ?? 0;
    while (latest.length > 0 && budget.requests > 0 && budget.events > 0) {
      budget.requests--;
      let res: JsonValue;
      try {
        res = await this.d.request(origin, 'POST', fedPath`/_matrix/federation/v1/get_missing_events/${roomId}`, {
          earliest_events: earliest,
          latest_events: latest.slice(0, 20),
          limit: Math.min(PER_REQUEST, budget.events),
          min_depth: minDepth,
        });
      } catch (err) {
        this.d.logger.warn({ err, origin, roomId, eventId }, 'get_missing_events failed');
        break;
      }
      const events = isJsonObject(res) && Array.isArray(res.events) ? res.events.slice(0, Math.min(PER_REQUEST, budget.events)) : [];
      budget.events -= events.length;
      let added = 0;
      for (const e of events) {
        const f = checkFormat(e, roomId, version);
        if (!f.ok || fetched.has(f.value.eventId) || f.value.pdu.depth < minDepth || prevEventIds(f.value.pdu).length > MAX_PREVS) continue;
        fetched.set(f.value.eventId, { eventId: f.value.eventId, pdu: f.value.pdu, raw: e });
        added++;
      }
      if (added === 0) break;
      const known = new Map([...fetched].map(([id, f]) => [id, f.pdu]));
      known.set(eventId, pdu);
      latest = await this.cutOff(known);
    }
    return fetched;
  }

  /**
   * IDs of those `events` not stored with a state that cite a prev event neither among `events`
   * nor stored with a state (an outlier prev does not connect: its state is unknown).
   */
  private async cutOff(events: ReadonlyMap<string, Pdu>): Promise<string[]> {
    const prevs = [...events.values()].flatMap((p) => prevEventIds(p));
    const groups = await this.d.store.rooms.getEventStateGroups([...new Set([...events.keys(), ...prevs])]);
    return [...events]
      .filter(([id, p]) => !groups.has(id) && prevEventIds(p).some((x) => !events.has(x) && !groups.has(x)))
      .map(([id]) => id);
  }

  /**
   * The state after `prevId` as `origin` reports it: the state before it (/state_ids, then
   * /state for the events we lack, checked and stored as outliers) plus the prev itself when it
   * is a state event that passes checks 1-4 (fetched with /event when we lack it; stored as an
   * outlier). Undefined when it cannot be had.
   */
  private async stateAfter(origin: string, roomId: string, version: RoomVersion, prevId: string): Promise<StateMap | undefined> {
    const q = fedPath`${roomId}?event_id=${prevId}`;
    try {
      const ids = await this.d.request(origin, 'GET', `/_matrix/federation/v1/state_ids/${q}`);
      if (!isJsonObject(ids) || !Array.isArray(ids.pdu_ids) || !Array.isArray(ids.auth_chain_ids)) return undefined;
      const pduIds = ids.pdu_ids.filter((x): x is string => typeof x === 'string');
      if (pduIds.length + ids.auth_chain_ids.length > MAX_STATE_IDS) return undefined;
      let have = await this.d.store.rooms.getEvents(pduIds);
      if (pduIds.some((id) => !have.has(id))) {
        const full = await this.d.request(origin, 'GET', `/_matrix/federation/v1/state/${q}`);
        if (!isJsonObject(full) || !Array.isArray(full.pdus) || !Array.isArray(full.auth_chain)) return undefined;
        const stored = new Map([...have].filter(([, e]) => e.roomId === roomId && e.rejected === null).map(([id, e]) => [id, e.pdu]));
        const { events } = await verifyChain(roomId, version, this.d.keyRing, full.pdus, full.auth_chain, stored);
        await this.storeOutliers(roomId, events);
        have = await this.d.store.rooms.getEvents(pduIds);
      }
      const map: StateMap = new Map();
      for (const id of pduIds) {
        const ev = have.get(id);
        if (!ev || ev.roomId !== roomId || ev.rejected !== null || ev.pdu.state_key === undefined) continue;
        map.set(stateTuple(ev.pdu.type, ev.pdu.state_key), id);
      }
      if (!map.has(stateTuple('m.room.create', ''))) return undefined;
      const prev = await this.prevEvent(origin, roomId, version, prevId);
      if (prev === undefined) return undefined;
      if (prev !== null && prev.state_key !== undefined) map.set(stateTuple(prev.type, prev.state_key), prevId);
      return map;
    } catch (err) {
      this.d.logger.warn({ err, origin, roomId, prevId }, 'state fallback for a gap failed');
      return undefined;
    }
  }

  /**
   * The missing prev event `prevId`, from the store or fetched with /event and checked (1-4,
   * against auth events of this room we have). A state event that passes is stored as an
   * outlier; one that fails auth is stored rejected (events citing it are then rejected, not
   * left waiting for it). Null when it adds nothing to the state (rejected, or its signature
   * fails: then it is not stored), undefined when it cannot be had.
   */
  private async prevEvent(origin: string, roomId: string, version: RoomVersion, prevId: string): Promise<Pdu | null | undefined> {
    const stored = await this.d.store.rooms.getEvent(prevId);
    if (stored) return stored.roomId === roomId && stored.rejected === null ? stored.pdu : null;
    const res = await this.d.request(origin, 'GET', fedPath`/_matrix/federation/v1/event/${prevId}`);
    const raw = isJsonObject(res) && Array.isArray(res.pdus) ? res.pdus[0] : undefined;
    const f = raw === undefined ? undefined : checkFormat(raw, roomId, version);
    // Not the event asked for (or not of this room): nothing can be said about the state after it.
    if (!f?.ok || f.value.eventId !== prevId) return undefined;
    if ((await checkSignatures(f.value.pdu, version, this.d.keyRing)) !== undefined) return null;
    const { pdu } = checkHashOrRedact(f.value.pdu, version);
    const ids = authEventIds(pdu);
    const auth = await this.d.store.rooms.getEvents(ids);
    // Auth events of another room, rejected or unknown to us: the event cannot pass.
    const bad = ids.find((id) => { const a = auth.get(id); return !a || a.roomId !== roomId || a.rejected !== null; });
    const create = (await this.d.roomInput.currentState(roomId))?.get('m.room.create', '')?.pdu;
    const failure = bad !== undefined
      ? `auth event ${bad} is unknown, rejected or of another room`
      : checkAgainstAuthEvents(pdu, version, ids.map((id) => auth.get(id)!.pdu), create);
    if (failure === undefined && pdu.state_key === undefined) return pdu;
    await this.d.roomInput.exclusive(roomId, async () => {
      if (await this.d.store.rooms.getEvent(prevId)) return;
      await this.d.store.rooms.persistEvent({ eventId: prevId, pdu, stateDelta: [], forwardExtremities: [], outlier: true, rejected: failure });
    });
    return failure === undefined ? pdu : null;
  }

  private async storeOutliers(roomId: string, events: Map<string, Pdu>): Promise<void> {
    if (events.size === 0) return;
    await this.d.roomInput.exclusive(roomId, async () => {
      const have = await this.d.store.rooms.getEvents([...events.keys()]);
      for (const [eventId, pdu] of [...events].sort((a, b) => a[1].depth - b[1].depth)) {
        if (!have.has(eventId)) await this.d.store.rooms.persistEvent({ eventId, pdu, stateDelta: [], forwardExtremities: [], outlier: true });
      }
    });
  }
}
