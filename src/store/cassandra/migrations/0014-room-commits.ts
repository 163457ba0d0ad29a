// Cassandra migration 14: the room's commit point on the owner-epoch row (../room-fence.ts), so
// the epoch check and the claim of the next commit are one LWT. Idempotent (ADD IF NOT EXISTS).

import type { CqlMigration } from './index.js';

export const m0014: CqlMigration = {
  version: 14,
  name: 'room-commits',
  statements: [
    // The commit point of fenced room writes (../room-fence.ts), on the same row as the owner
    // epoch so that the epoch check and the claim of the next commit are one LWT: seq counts the
    // room's commits, ts is the last one's write timestamp, event_id/pending its event and
    // encoded follow-up batch (for a successor to land). Written only with LWTs, like epoch.
    // One statement: each schema change costs a round of schema agreement.
    `ALTER TABLE room_owner_epochs ADD IF NOT EXISTS (seq bigint, ts bigint, event_id text, pending text)`,
  ],
};
