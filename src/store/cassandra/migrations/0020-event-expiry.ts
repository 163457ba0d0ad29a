// Self-destructing messages (as SQLite's migration 18). The rows are few and short-lived, so
// they share one partition clustered by due time: the soonest is the partition's first row.
// event_expiry_keys finds an event's row (to keep the earlier time and to delete it).

import type { CqlMigration } from './index.js';

export const m0020: CqlMigration = {
  version: 20,
  name: 'event_expiry',
  statements: [
    `CREATE TABLE IF NOT EXISTS event_expiry (bucket int, expires_ts bigint, event_id text, room_id text, PRIMARY KEY ((bucket), expires_ts, event_id))`,
    `CREATE TABLE IF NOT EXISTS event_expiry_keys (event_id text PRIMARY KEY, expires_ts bigint)`,
  ],
};
