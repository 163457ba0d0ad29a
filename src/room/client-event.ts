// Turns stored PDUs into the Client-Server event format for a particular viewer.

import type { JsonObject, Pdu } from '../protocol/types.js';
import type { Store, StoredEvent } from '../store/types.js';

export interface Viewer {
  userId: string;
  deviceId?: string;
}

export type ClientEvent = JsonObject;

export type EventFormat = 'client' | 'federation';

export class EventFormatter {
  constructor(private readonly store: Store, private readonly now: () => number = Date.now) {}

  /** Formats events in order; fetches the redaction events of redacted ones in one batch. */
  async format(events: StoredEvent[], viewer: Viewer, format: EventFormat = 'client'): Promise<ClientEvent[]> {
    const redactionIds = events.map((e) => e.redactedBy).filter((x): x is string => !!x);
    const redactions = redactionIds.length ? await this.store.rooms.getEvents(redactionIds) : new Map<string, StoredEvent>();
    return events.map((e) => this.formatOne(e, viewer, format, redactions));
  }

  /** Synchronous formatting; pass `redactions` or `redacted_because` is only an event ID stub. */
  private formatOne(
    e: StoredEvent,
    viewer: Viewer,
    format: EventFormat = 'client',
    redactions?: Map<string, StoredEvent>,
  ): ClientEvent {
    const unsigned: JsonObject = { ...(e.pdu.unsigned ?? {}) };
    unsigned.age = Math.max(0, this.now() - e.pdu.origin_server_ts);
    if (e.txn && viewer.deviceId && e.txn.deviceId === viewer.deviceId && e.pdu.sender === viewer.userId) {
      unsigned.transaction_id = e.txn.txnId;
    }
    if (e.redactedBy) {
      const r = redactions?.get(e.redactedBy);
      unsigned.redacted_because = r ? this.formatOne(r, viewer, format) : { event_id: e.redactedBy };
    }
    if (format === 'federation') return { ...(e.pdu as unknown as JsonObject), event_id: e.eventId, unsigned };
    return clientShape(e.eventId, e.pdu, unsigned);
  }
}

export function clientShape(eventId: string, pdu: Pdu, unsigned?: JsonObject): ClientEvent {
  const out: ClientEvent = {
    type: pdu.type,
    event_id: eventId,
    sender: pdu.sender,
    origin_server_ts: pdu.origin_server_ts,
    room_id: pdu.room_id,
    content: pdu.content,
  };
  if (pdu.state_key !== undefined) out.state_key = pdu.state_key;
  // Clients of all room versions read `redacts` at top level; v11 keeps it only in content.
  const redacts = pdu.redacts ?? (typeof pdu.content.redacts === 'string' ? pdu.content.redacts : undefined);
  if (pdu.type === 'm.room.redaction' && redacts) out.redacts = redacts;
  if (unsigned && Object.keys(unsigned).length) out.unsigned = unsigned;
  return out;
}

/** Stripped state, as used in invite_state. */
export function strippedState(pdu: Pdu): JsonObject {
  return { type: pdu.type, state_key: pdu.state_key ?? '', sender: pdu.sender, content: pdu.content };
}
