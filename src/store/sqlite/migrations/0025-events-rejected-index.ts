// A partial index of the rejected events' IDs (usually empty: a rejected event is rare and never
// cited again). writeEvent asks, for every event, whether one of its auth events was rejected
// (firstRejected in events.ts); through the event_id index that was a seek into the index and
// another into the events table per auth event (~6-10 µs per plain message), through this one
// a seek into an index of a page or so. Rows enter only when `rejected` is set, which happens
// only at insert, so a plain send writes nothing to it.

import type { Migration } from './index.js';

export const eventsRejectedIndex: Migration = {
  version: 25,
  name: 'events_rejected_index',
  up: `
    CREATE INDEX events_rejected ON events (event_id) WHERE rejected IS NOT NULL;
  `,
};
