// Cassandra migration 6: the per-room owner epoch that fences room writes (../room-fence.ts).
// Idempotent (IF NOT EXISTS); the table is written only with LWTs.

import type { CqlMigration } from './index.js';

export const m0006: CqlMigration = {
  version: 6,
  name: 'room-owner',
  statements: [
    // The highest room-writer epoch (src/cluster/room-owner.ts) that has written to each room.
    // Written only with LWTs (../room-fence.ts), never plainly.
    `CREATE TABLE IF NOT EXISTS room_owner_epochs (room_id text PRIMARY KEY, epoch bigint)`,
  ],
};
