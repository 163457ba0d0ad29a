// Outbound federation (as SQLite's migration 14; contract and rationale:
// src/store/federation-types.ts). federation_outbox is append-only and expires by TTL (time
// window compaction drops whole expired sstables; nothing is deleted, so gc_grace only matters
// for TTL'd cells and is short); federation_destinations has one row per destination updated in
// place with position-derived write timestamps (see ../federation-queue.ts).

import type { CqlMigration } from './index.js';

export const m0015: CqlMigration = {
  version: 15,
  name: 'federation-queue',
  statements: [
    `CREATE TABLE IF NOT EXISTS federation_outbox (destination text, bucket bigint, pos bigint, kind text, room_id text, body text,
       PRIMARY KEY ((destination, bucket), pos))
     WITH default_time_to_live = 604800 AND gc_grace_seconds = 10800
     AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': '6'}`,
    `CREATE TABLE IF NOT EXISTS federation_destinations (destination text PRIMARY KEY, sent_upto bigint, queued_upto bigint, first_queued bigint,
       txn_id text, txn_upto bigint, txn_catch_up boolean)`,
  ],
};
