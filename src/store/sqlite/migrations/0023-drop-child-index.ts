// event_edges_prev (prev_id) served only RoomStore.getChildEvents ("which events cite X"), which
// nothing but specs called; the contract no longer has it. Its entries are keyed by a hash (an
// event ID), so every send dirtied one more leaf of it: ~0.66 WAL frames per plain message
// (docs/benchmarks.md, "session 7: send path"). event_edges keeps its (event_id, prev_id) key,
// which getPrevEvents reads.

import type { Migration } from './index.js';

export const dropChildIndex: Migration = {
  version: 23,
  name: 'drop_child_index',
  up: `
    DROP INDEX IF EXISTS event_edges_prev;
  `,
};
