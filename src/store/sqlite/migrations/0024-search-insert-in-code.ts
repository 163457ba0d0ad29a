// The search index's insert trigger (migration 9) is dropped: writeEvent (events.ts) adds the
// row itself, in the same statement sequence and transaction, from the PDU object it already
// holds. The trigger read the searchable text back out of pdu_json with json_valid, json_type and
// json_extract, three parses of the whole PDU per event (~18 µs of a ~35 µs events INSERT for a
// plain message: docs/benchmarks.md, "session 9: send path"). What gets indexed is unchanged: one
// row per inserted event of type m.room.message / m.room.name / m.room.topic whose content.body /
// name / topic is a string, rowid = stream. The redaction and delete triggers stay.

import type { Migration } from './index.js';

export const searchInsertInCode: Migration = {
  version: 24,
  name: 'search_insert_in_code',
  up: `
    DROP TRIGGER IF EXISTS event_search_insert;
  `,
};
