// Self-destructing messages (MSC2228): when each event is due to be pruned
// (src/store/expiry-types.ts).

import type { Migration } from './index.js';

export const eventExpiry: Migration = {
  version: 18,
  name: 'event_expiry',
  up: `
    CREATE TABLE event_expiry (
      event_id TEXT PRIMARY KEY,
      room_id TEXT NOT NULL,
      expires_ts INTEGER NOT NULL
    );
    CREATE INDEX event_expiry_due ON event_expiry (expires_ts, event_id);
  `,
};
