// In-memory current state of one room, owned by the room-input queue. It holds the PDUs of the
// current state events so auth checks and event building need no store round-trip.

import { powerLevelOf } from '../protocol/auth-rules.js';
import type { JsonObject, Pdu, RoomVersion } from '../protocol/types.js';
import { stateTuple } from '../protocol/types.js';
import type { StateEntry, StoredEvent } from '../store/types.js';

export interface StateEvent {
  eventId: string;
  pdu: Pdu;
}

export class RoomState {
  private readonly entries = new Map<string, StateEvent>();
  /** The same events by ID, for auth_events lookups without a store read. */
  private readonly byId = new Map<string, Pdu>();
  extremities: string[] = [];
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
    for (const id of extremities) s.maxDepth = Math.max(s.maxDepth, events.get(id)?.pdu.depth ?? 0);
    return s;
  }

  private put(key: string, ev: StateEvent): void {
    const old = this.entries.get(key);
    if (old) this.byId.delete(old.eventId);
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

  nextDepth(): number {
    return this.maxDepth + 1;
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
    return powerLevelOf(userId, this.content('m.room.power_levels'), this.get('m.room.create', '')?.pdu);
  }

  /** The power level a named action (kick, ban, redact, invite) requires. */
  requiredLevel(action: 'kick' | 'ban' | 'redact' | 'invite'): number {
    const pl = this.content('m.room.power_levels');
    const v = pl?.[action];
    if (typeof v === 'number') return v;
    return action === 'invite' ? 0 : 50;
  }

  canRedactOthers(userId: string): boolean {
    return this.powerLevel(userId) >= this.requiredLevel('redact');
  }

  /** Applies an event accepted on top of the whole current state (no fork involved). */
  applyPersisted(eventId: string, pdu: Pdu, extremities: string[] = [eventId]): void {
    if (pdu.state_key !== undefined) this.put(stateTuple(pdu.type, pdu.state_key), { eventId, pdu });
    this.extremities = [...extremities];
    this.maxDepth = Math.max(this.maxDepth, pdu.depth);
  }

  /**
   * Applies the outcome of a fork resolution: the entries that changed (with their PDUs), the new
   * extremities and the accepted event's depth.
   */
  applyResolved(changed: StateEvent[], extremities: string[], depth: number): void {
    for (const e of changed) {
      if (e.pdu.state_key !== undefined) this.put(stateTuple(e.pdu.type, e.pdu.state_key), e);
    }
    this.extremities = [...extremities];
    this.maxDepth = Math.max(this.maxDepth, depth);
  }

  applyRedaction(targetId: string, redacted: Pdu): void {
    for (const [k, v] of this.entries) if (v.eventId === targetId) this.put(k, { eventId: targetId, pdu: redacted });
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
