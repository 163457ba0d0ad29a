// Transaction IDs are scoped by endpoint as well as by device (spec "Transaction identifiers"):
// the same txnId on /send/{typeA} and /send/{typeB}, or on /redact, names different requests.

import type { Migration } from './index.js';

export const txnScope: Migration = {
  version: 3,
  name: 'txn-scope',
  up: `
    CREATE TABLE event_txns_v3 (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      scope TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      PRIMARY KEY (room_id, user_id, device_id, scope, txn_id)
    ) WITHOUT ROWID;
    INSERT INTO event_txns_v3 (room_id, user_id, device_id, scope, txn_id, event_id)
      SELECT room_id, user_id, device_id, '', txn_id, event_id FROM event_txns;
    DROP TABLE event_txns;
    ALTER TABLE event_txns_v3 RENAME TO event_txns;
  `,
};
