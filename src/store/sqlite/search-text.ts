// What of an event the full-text index (event_search, migration 9) holds: one content key per
// event type, so one row per event, and only when that key is a string (an encrypted event or a
// message without a text body has none). writeEvent (events.ts) inserts the row from the PDU
// object it already holds; until migration 24 a trigger on `events` did the same from pdu_json,
// parsing the JSON three times per event.

import type { Pdu } from '../../protocol/types.js';

const SEARCHABLE: ReadonlyMap<string, string> = new Map([
  ['m.room.message', 'body'],
  ['m.room.name', 'name'],
  ['m.room.topic', 'topic'],
]);

/** The event's searchable text and the key it is stored under ("content.body"), or null. */
export function searchText(pdu: Pdu): { body: string; key: string } | null {
  const key = SEARCHABLE.get(pdu.type);
  if (key === undefined) return null;
  const content: unknown = pdu.content;
  // Own properties only, as JSON.stringify (and so the stored pdu_json) has them.
  if (typeof content !== 'object' || content === null || !Object.hasOwn(content, key)) return null;
  const body = (content as Record<string, unknown>)[key];
  return typeof body === 'string' ? { body, key: `content.${key}` } : null;
}
