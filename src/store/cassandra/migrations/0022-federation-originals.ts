// The original PDU of a redacted event, kept for the outbound federation queue (its entries name
// the event: federation-queue.ts). A redaction rewrites events.pdu_json; an entry queued before
// it must still send the event as it was (other servers redact it themselves when the
// redaction arrives). Kept as long as queue entries live (7-day TTL), as Synapse keeps a
// redacted event's original for 7 days by default.

import type { CqlMigration } from './index.js';

export const m0022: CqlMigration = {
  version: 22,
  name: 'federation_originals',
  statements: [`CREATE TABLE IF NOT EXISTS federation_originals (event_id text PRIMARY KEY, pdu_json text)`],
};
