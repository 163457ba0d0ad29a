// Fewer index entries per plain message (docs/benchmarks.md, "session 7: send path"): each one is
// a B-tree leaf per room dirtied in every commit, i.e. a WAL frame and its share of a checkpoint.
//
// - events_room_stream (room_id, stream) is dropped: every query that reads a room's events by
//   stream uses a narrower index (events_room_timeline, events_room_state, events_room_topo) or
//   one by sender (events_room_sender), and the statements that used it (the admin purges, which
//   delete a room's events) reach the same rows through events_room_sender's room_id prefix
//   (EXPLAIN QUERY PLAN over the contract suite's statements: only those purges changed plan).
// - events_room_state, which getStateAt reads for "the room's state group at stream S", now
//   holds only the events that changed the room's state group (room_state differs from the
//   event's own state_before). An event whose room_state equals its state_before left the room's
//   group as it was (events.ts writeEvent: the plain case, and the linear case without own
//   state), so the latest changing event at or before S has the same group as the latest event
//   at all. The admin purge keeps changing events (state events already stayed).

import type { Migration } from './index.js';

export const eventIndexes: Migration = {
  version: 20,
  name: 'event_indexes',
  up: `
    DROP INDEX IF EXISTS events_room_stream;
    DROP INDEX IF EXISTS events_room_state;
    CREATE INDEX events_room_state ON events (room_id, stream) WHERE room_state IS NOT NULL AND room_state IS NOT state_before;
  `,
};
