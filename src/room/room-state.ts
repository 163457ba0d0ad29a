// In-memory current state of one room, owned by the room-input queue. It holds the PDUs of the
// current state events so auth checks and event building need no store round-trip.

import { actionPowerLevel, powerLevelOf } from '../protocol/auth-rules.js';
import type { JsonObject, Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import { serverNameOf } from '../protocol/ids.js';
import type { StateEntry, StateKeyRef, StoredEvent } from '../store/types.js';

export interface StateEvent {
  eventId: string;
  pdu: Pdu;
}

export class RoomState {
  private readonly entries = new Map<string, StateEvent>();
  /** The same events by ID, for auth_events lookups without a store read. */
  private readonly byId = new Map<string, Pdu>();
  /** Joined members per server, kept as members change (federation asks on every local send). */
  private readonly joinedPerServer = new Map<string, number>();
  extremities: string[] = [];
  /** PDUs of the extremities (v1/v2 cite prev_events with their reference hashes). */
  private extremityPdus = new Map<string, Pdu>();
  private maxDepth = 0;

  private constructor(readonly version: RoomVersion) {}

  static empty(version: RoomVersion): RoomState {
    return new RoomState(version);
  }

  static fromStore(
    version: RoomVersion,
    entries: StateEntry[],
    extremities: string[],
    events: Map<string, StoredEvent>,
  ): RoomState {
    const s = new RoomState(version);
    for (const e of entries) {
      const ev = events.get(e.eventId);
      if (ev) s.put(stateTuple(e.type, e.stateKey), { eventId: e.eventId, pdu: ev.pdu });
    }
    s.extremities = [...extremities];
    for (const id of extremities) {
      const pdu = events.get(id)?.pdu;
      if (pdu) s.extremityPdus.set(id, pdu);
      s.maxDepth = Math.max(s.maxDepth, pdu?.depth ?? 0);
    }
    return s;
  }

  private put(key: string, ev: StateEvent): void {
    const old = this.entries.get(key);
    if (old) this.byId.delete(old.eventId);
    if (old) this.countJoined(old.pdu, -1);
    this.countJoined(ev.pdu, 1);
    this.entries.set(key, ev);
    this.byId.set(ev.eventId, ev.pdu);
  }

  /** A current state event by its ID. */
  eventById(eventId: string): Pdu | undefined {
    return this.byId.get(eventId);
  }

  /** The current state as (type, state_key) -> event ID. */
  stateMap(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.entries) m.set(k, v.eventId);
    return m;
  }

  get(type: string, stateKey: string): StateEvent | undefined {
    return this.entries.get(stateTuple(type, stateKey));
  }

  content(type: string, stateKey = ''): JsonObject | undefined {
    return this.get(type, stateKey)?.pdu.content;
  }

  /** The extremities with their PDUs (those the store could not return are left out). */
  extremityEvents(): StateEvent[] {
    const out: StateEvent[] = [];
    for (const id of this.extremities) {
      const pdu = this.extremityPdus.get(id);
      if (pdu) out.push({ eventId: id, pdu });
    }
    return out;
  }

  nextDepth(): number {
    // Clamped: another server may send any depth up to 2^53-1, and a depth past it would make
    // every later event of ours unrepresentable (and refused by checkFormat).
    return Math.min(this.maxDepth + 1, Number.MAX_SAFE_INTEGER);
  }

  membership(userId: string): string | undefined {
    const m = this.content('m.room.member', userId)?.membership;
    return typeof m === 'string' ? m : undefined;
  }

  joinRule(): string {
    const r = this.content('m.room.join_rules')?.join_rule;
    return typeof r === 'string' ? r : 'invite';
  }

  powerLevel(userId: string): number {
    return powerLevelOf(userId, this.content('m.room.power_levels'), this.get('m.room.create', '')?.pdu, this.version);
  }

  /** The power level a named action (kick, ban, redact, invite) requires. */
  requiredLevel(action: 'kick' | 'ban' | 'redact' | 'invite'): number {
    return actionPowerLevel(action, this.content('m.room.power_levels'));
  }

  canRedactOthers(userId: string): boolean {
    return this.powerLevel(userId) >= this.requiredLevel('redact');
  }

  /** Applies an event accepted on top of the whole current state (no fork involved). */
  applyPersisted(eventId: string, pdu: Pdu, extremities: string[] = [eventId]): void {
    if (pdu.state_key !== undefined) this.put(stateTuple(pdu.type, pdu.state_key), { eventId, pdu });
    this.setExtremities(extremities, eventId, pdu);
    this.maxDepth = Math.max(this.maxDepth, pdu.depth);
  }

  /**
   * Applies the outcome of a fork resolution: the entries that changed (with their PDUs), the new
   * extremities and the accepted event's depth.
   */
  applyResolved(changed: StateEvent[], removed: StateKeyRef[], extremities: string[], accepted: StateEvent): void {
    for (const e of changed) {
      if (e.pdu.state_key !== undefined) this.put(stateTuple(e.pdu.type, e.pdu.state_key), e);
    }
    for (const r of removed) {
      const k = stateTuple(r.type, r.stateKey);
      const old = this.entries.get(k);
      if (old) this.byId.delete(old.eventId);
      if (old) this.countJoined(old.pdu, -1);
      this.entries.delete(k);
    }
    this.setExtremities(extremities, accepted.eventId, accepted.pdu);
    this.maxDepth = Math.max(this.maxDepth, accepted.pdu.depth);
  }

  private setExtremities(extremities: string[], newId: string, newPdu: Pdu): void {
    const pdus = new Map<string, Pdu>();
    for (const id of extremities) {
      const pdu = id === newId ? newPdu : this.extremityPdus.get(id);
      if (pdu) pdus.set(id, pdu);
    }
    this.extremities = [...extremities];
    this.extremityPdus = pdus;
  }

  applyRedaction(targetId: string, redacted: Pdu): void {
    for (const [k, v] of this.entries) if (v.eventId === targetId) this.put(k, { eventId: targetId, pdu: redacted });
  }

  /** Servers with a joined member. */
  joinedServers(): IterableIterator<string> {
    return this.joinedPerServer.keys();
  }

  private countJoined(pdu: Pdu, delta: 1 | -1): void {
    if (pdu.type !== 'm.room.member' || typeof pdu.state_key !== 'string' || pdu.content.membership !== 'join') return;
    const server = serverNameOf(pdu.state_key);
    if (server === undefined) return;
    const n = (this.joinedPerServer.get(server) ?? 0) + delta;
    if (n > 0) this.joinedPerServer.set(server, n);
    else this.joinedPerServer.delete(server);
  }

  /** Joined members with their display names. */
  joinedMembers(): Array<{ userId: string; displayname: string | null }> {
    const out: Array<{ userId: string; displayname: string | null }> = [];
    for (const { pdu } of this.entries.values()) {
      if (pdu.type !== 'm.room.member' || pdu.state_key === undefined || pdu.content.membership !== 'join') continue;
      const d = pdu.content.displayname;
      out.push({ userId: pdu.state_key, displayname: typeof d === 'string' ? d : null });
    }
    return out;
  }

  /** Snapshot of all current state events. */
  all(): StateEvent[] {
    return [...this.entries.values()];
  }
}
