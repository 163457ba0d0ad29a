// Turns stored PDUs into the Client-Server event format for a particular viewer.
//
// Invariants:
// - An event's shared part (every field but `unsigned`, plus the PDU's own unsigned fields) is
//   built once per (event ID, format) and reused for every viewer: a room's new event woken into
//   N members' syncs is shaped once. Cached parts are frozen; each output is a fresh shallow copy
//   with its own `unsigned`, so no caller can alter another viewer's event.
// - Per-viewer and per-call fields are added on top, never cached: age, transaction_id (only for
//   the sending device), redacted_because and redacted_by (the redaction's event ID, as Synapse
//   sets it and SyTest reads it), prev_content/prev_sender, m.relations.
// - A cached part is only served for an input whose redaction state it was built from (the
//   entry remembers `redactedBy`; a redacted copy never gets the unredacted part, nor the other
//   way round). Inputs whose PDU was substituted for this viewer bypass the cache (`personal`).
//   Nor is a part with content served for an input with empty content: a self-destructing
//   message (src/room/self-destruct.ts) is pruned without a redaction event, perhaps by another
//   worker of a cluster whose prune this process never hears of.
// - Bound: SHARED_CACHE_MAX entries in all (a tenth for the federation format), least recently
//   used evicted.

import { LRUCache } from 'lru-cache';
import type { JsonObject, Pdu } from '../protocol/types.js';
import { roomIdOf } from '../protocol/events.js';
import type { Aggregations, Store, StoredEvent } from '../store/types.js';
import { dict } from '../protocol/canonical-json.js';

export interface Viewer {
  userId: string;
  deviceId?: string;
}

export type ClientEvent = JsonObject;

export type EventFormat = 'client' | 'federation';

/** Bound of the shared-part cache (entries; one per event and format). */
export const SHARED_CACHE_MAX = 20_000;

interface SharedPart {
  redactedBy: string | null;
  /** Whether the PDU's content had any key (false after a prune). */
  hasContent: boolean;
  /** The event without `unsigned` (frozen). */
  fields: Readonly<ClientEvent>;
  /** The PDU's own unsigned fields (frozen; may be empty). */
  unsigned: Readonly<JsonObject>;
}

/** Per-viewer redacted copies of erased users' events (ErasureService in src/room/erasure.ts). */
export interface ErasureRedactions {
  redactionsFor(viewerId: string, events: StoredEvent[]): Promise<Map<string, Pdu>>;
}

export class EventFormatter {
  /** Per format, keyed by event ID; SHARED_CACHE_MAX entries in all. */
  private readonly shared: Record<EventFormat, LRUCache<string, SharedPart>> = {
    client: new LRUCache({ max: SHARED_CACHE_MAX - SHARED_CACHE_MAX / 10 }),
    federation: new LRUCache({ max: SHARED_CACHE_MAX / 10 }),
  };
  private sharedHits = 0;
  private sharedMisses = 0;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    private readonly erasure?: ErasureRedactions,
  ) {}

  /** Size, bound, hits and misses of the shared-part cache (for /metrics). */
  cacheStats(): { name: string; size: number; bound: number; hits: number; misses: number } {
    return { name: 'formatted_events', size: this.shared.client.size + this.shared.federation.size, bound: SHARED_CACHE_MAX, hits: this.sharedHits, misses: this.sharedMisses };
  }

  /** Drops an event's cached shared parts (its stored copy changed: redaction, purge). */
  invalidate(eventId: string): void {
    this.shared.client.delete(eventId);
    this.shared.federation.delete(eventId);
  }

  /**
   * Formats events in order. Fetches, in batches, the redaction events of redacted ones and the
   * bundled aggregations (threads, edits, references) of all of them.
   */
  async format(
    events: StoredEvent[],
    viewer: Viewer,
    format: EventFormat = 'client',
    /** noAggregations: the caller knows none of the events has relations (read model). */
    opts: { noAggregations?: boolean } = {},
  ): Promise<ClientEvent[]> {
    if (events.length === 0) return [];
    // Events whose PDU is this viewer's own copy rather than the stored one (a per-viewer
    // substitution) must be listed here: they are shaped apart, never from or into the cache.
    const personal = new Set<string>();
    // Events of erased users this viewer may only see redacted: formatted from a redacted copy.
    const erased = this.erasure ? await this.erasure.redactionsFor(viewer.userId, events) : undefined;
    if (erased && erased.size > 0) {
      for (const id of erased.keys()) personal.add(id);
      events = events.map((e) => (erased.has(e.eventId) ? { ...e, pdu: erased.get(e.eventId)! } : e));
    }
    const redactionIds = events.map((e) => e.redactedBy).filter((x): x is string => !!x);
    const replaced = events.map((e) => e.pdu.unsigned?.replaces_state).filter((x): x is string => typeof x === 'string');
    const [redactions, aggregations, previous] = await Promise.all([
      redactionIds.length ? this.store.rooms.getEvents(redactionIds) : new Map<string, StoredEvent>(),
      opts.noAggregations
        ? new Map<string, Aggregations>()
        : this.store.relations.getAggregations(events.filter((e) => !e.redactedBy && !erased?.has(e.eventId)).map((e) => e.eventId)),
      replaced.length ? this.store.rooms.getEvents(replaced) : new Map<string, StoredEvent>(),
    ]);
    const out = events.map((e) => this.formatOne(e, viewer, format, redactions, personal.has(e.eventId)));
    if (previous.size > 0) {
      events.forEach((e, i) => {
        const prev = previous.get(e.pdu.unsigned?.replaces_state as string);
        if (!prev) return;
        // prev_content comes from the stored copy, which is the redacted one if it was redacted.
        const u = (out[i].unsigned as JsonObject | undefined) ?? {};
        out[i].unsigned = { ...u, prev_content: prev.pdu.content, prev_sender: prev.pdu.sender, replaces_state: prev.eventId };
      });
    }
    if (aggregations.size > 0) await this.bundle(events, out, aggregations, viewer, format);
    return out;
  }

  /** unsigned["m.relations"] (spec "Aggregations of child events"). */
  private async bundle(
    events: StoredEvent[],
    out: ClientEvent[],
    aggregations: Map<string, Aggregations>,
    viewer: Viewer,
    format: EventFormat,
  ): Promise<void> {
    const needed = new Set<string>();
    for (const a of aggregations.values()) {
      if (a.thread) needed.add(a.thread.latestEventId);
      if (a.replaceEventId) needed.add(a.replaceEventId);
    }
    const related = await this.store.rooms.getEvents([...needed]);
    events.forEach((e, i) => {
      const a = aggregations.get(e.eventId);
      if (!a) return;
      const rel: JsonObject = dict();
      const latest = a.thread && related.get(a.thread.latestEventId);
      if (a.thread && latest) {
        rel['m.thread'] = {
          latest_event: this.formatOne(latest, viewer, format),
          count: a.thread.count,
          current_user_participated: a.thread.participants.includes(viewer.userId),
        };
      }
      const edit = a.replaceEventId && related.get(a.replaceEventId);
      if (edit) rel['m.replace'] = this.formatOne(edit, viewer, format);
      if (a.references.length > 0) rel['m.reference'] = { chunk: a.references.map((id) => ({ event_id: id })) };
      if (Object.keys(rel).length === 0) return;
      const target = out[i];
      target.unsigned = { ...((target.unsigned as JsonObject | undefined) ?? {}), 'm.relations': rel };
    });
  }

  /**
   * Synchronous formatting; pass `redactions` or `redacted_because` is only an event ID stub.
   * `personal`: the PDU is this viewer's own copy (not the stored one), so the cache is bypassed.
   */
  private formatOne(
    e: StoredEvent,
    viewer: Viewer,
    format: EventFormat = 'client',
    redactions?: Map<string, StoredEvent>,
    personal = false,
  ): ClientEvent {
    const part = personal ? sharedPart(e, format) : this.sharedPart(e, format);
    const unsigned: JsonObject = { ...part.unsigned };
    unsigned.age = Math.max(0, this.now() - e.pdu.origin_server_ts);
    if (e.txn && viewer.deviceId && e.txn.deviceId === viewer.deviceId && e.pdu.sender === viewer.userId) {
      unsigned.transaction_id = e.txn.txnId;
    }
    if (e.redactedBy) {
      const r = redactions?.get(e.redactedBy);
      unsigned.redacted_because = r ? this.formatOne(r, viewer, format) : { event_id: e.redactedBy };
      unsigned.redacted_by = e.redactedBy;
    }
    return { ...part.fields, unsigned };
  }

  private sharedPart(e: StoredEvent, format: EventFormat): SharedPart {
    const cache = this.shared[format];
    const redactedBy = e.redactedBy ?? null;
    const hit = cache.get(e.eventId);
    if (hit && hit.redactedBy === redactedBy && hit.hasContent === hasKeys(e.pdu.content)) {
      this.sharedHits++;
      return hit;
    }
    this.sharedMisses++;
    const part = sharedPart(e, format);
    // A stale unredacted (or unpruned) copy, read before the change landed, must not evict the
    // redacted part.
    if (!(hit?.redactedBy && !redactedBy) && !(hit && !hit.hasContent && part.hasContent)) cache.set(e.eventId, part);
    return part;
  }
}

function hasKeys(content: unknown): boolean {
  if (content === null || typeof content !== 'object') return false;
  for (const _ in content) return true;
  return false;
}

/** The viewer-independent part of an event in `format` (frozen, as it is shared). */
function sharedPart(e: StoredEvent, format: EventFormat): SharedPart {
  const unsigned = Object.freeze({ ...(e.pdu.unsigned ?? {}) });
  const fields: ClientEvent =
    format === 'federation' ? { ...(e.pdu as unknown as JsonObject), event_id: e.eventId } : clientShape(e.eventId, e.pdu);
  delete fields.unsigned;
  return { redactedBy: e.redactedBy ?? null, hasContent: hasKeys(e.pdu.content), fields: Object.freeze(fields), unsigned };
}

export function clientShape(eventId: string, pdu: Pdu, unsigned?: JsonObject): ClientEvent {
  const out: ClientEvent = {
    type: pdu.type,
    event_id: eventId,
    sender: pdu.sender,
    origin_server_ts: pdu.origin_server_ts,
    room_id: roomIdOf(pdu, eventId),
    content: pdu.content,
  };
  if (pdu.state_key !== undefined) out.state_key = pdu.state_key;
  // Clients of all room versions read `redacts` at top level (v11+ keeps it only in content), and
  // newer clients in content (where v1-v10 do not have it): rooms/v11 asks servers to serve both.
  const redacts = pdu.redacts ?? (typeof pdu.content.redacts === 'string' ? pdu.content.redacts : undefined);
  if (pdu.type === 'm.room.redaction' && redacts) {
    out.redacts = redacts;
    if (pdu.content.redacts === undefined) out.content = { ...pdu.content, redacts };
  }
  if (unsigned && Object.keys(unsigned).length) out.unsigned = unsigned;
  return out;
}

/** Stripped state, as used in invite_state. */
export function strippedState(pdu: Pdu): JsonObject {
  return { type: pdu.type, state_key: pdu.state_key ?? '', sender: pdu.sender, content: pdu.content };
}
