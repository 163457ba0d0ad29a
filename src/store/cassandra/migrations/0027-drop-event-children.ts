// event_children (prev_id -> events citing it) served only RoomStore.getChildEvents, which nothing
// but specs called and the contract no longer has; writing it cost one more statement per prev
// event in every event's batch. The events row's prev_events list stays the forward edge.
// Idempotent (IF EXISTS), as every CQL migration must be.

import type { CqlMigration } from './index.js';

export const m0027: CqlMigration = {
  version: 27,
  name: 'drop_event_children',
  statements: [`DROP TABLE IF EXISTS event_children`],
};
