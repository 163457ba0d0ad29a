// event_edges (event_id, prev_id) and its reverse index event_edges_prev are dropped. Nothing
// outside the store read them: the reverse index served only RoomStore.getChildEvents (gone from
// the contract), and getPrevEvents reads prev_events from the event's own PDU, which every event
// row holds (redaction keeps prev_events). Both were keyed by an event ID, a hash, so every send
// dirtied a leaf of each: ~0.87 + 0.66 WAL frames per plain message (docs/benchmarks.md,
// "session 7: send path" and "session 8: send path").

import type { Migration } from './index.js';

export const dropEventEdges: Migration = {
  version: 23,
  name: 'drop_event_edges',
  up: `
    DROP INDEX IF EXISTS event_edges_prev;
    DROP TABLE IF EXISTS event_edges;
  `,
};
