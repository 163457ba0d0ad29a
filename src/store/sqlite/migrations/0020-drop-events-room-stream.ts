// Drops events_room_stream (room_id, stream): every query that reads a room's events by stream
// uses a narrower index (events_room_timeline, events_room_state, events_room_topo) or by sender
// (events_room_sender), and the statements that used it (the admin purges, which delete a
// room's events) reach the same rows through events_room_sender's room_id prefix (EXPLAIN QUERY
// PLAN over the contract suite's statements: only those purges changed plan). Each plain
// message dirtied one more index leaf per room and commit for it (~0.46 of ~5.7 WAL frames per
// send in send-cpu's load; docs/benchmarks.md, session 7 send path).

import type { Migration } from './index.js';

export const dropEventsRoomStream: Migration = {
  version: 20,
  name: 'drop_events_room_stream',
  up: `
    DROP INDEX IF EXISTS events_room_stream;
  `,
};
