// Marks an event whose stored PDU an MSC2228 expiry pruned (src/store/cassandra/expiry.ts). The
// prune keeps the original in federation_originals (0022), as a redaction does, and the federation
// queue's reader (federation-queue.ts), which reads an entry's PDU back from events at send time,
// needs to know to look there: a pruned event has no redacted_by. Older code ignores the column
// (and sends the pruned copy, as it did).

import type { CqlMigration } from './index.js';

export const m0025: CqlMigration = {
  version: 25,
  name: 'events_pruned',
  statements: [`ALTER TABLE events ADD IF NOT EXISTS pruned boolean`],
};
