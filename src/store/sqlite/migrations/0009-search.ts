// Full-text search over room events (POST /search): an FTS5 index kept by triggers on `events`,
// so every write path (client sends, upgrades, admin tools, later federation) indexes without
// having to remember to, and a redaction or purge drops the text in the same transaction.

import type { Migration } from './index.js';

/** Which content key of which event type is searchable; one key per type, so one row per event. */
const SEARCHABLE = `CASE new.type
      WHEN 'm.room.message' THEN json_extract(new.pdu_json, '$.content.body')
      WHEN 'm.room.name' THEN json_extract(new.pdu_json, '$.content.name')
      WHEN 'm.room.topic' THEN json_extract(new.pdu_json, '$.content.topic') END`;

export const search: Migration = {
  version: 9,
  name: 'search',
  up: `
    -- rowid = events.stream (one event per position). room_id and key are stored, not indexed:
    -- MATCH narrows first, then the room and key filters apply to the matches.
    CREATE VIRTUAL TABLE event_search USING fts5(
      body, room_id UNINDEXED, key UNINDEXED,
      tokenize = 'unicode61 remove_diacritics 2'
    );

    -- Encrypted events (m.room.encrypted) carry no body, so they are never indexed.
    CREATE TRIGGER event_search_insert AFTER INSERT ON events
    WHEN new.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND new.redacted_by IS NULL
      AND json_valid(new.pdu_json)
      AND json_type(new.pdu_json, CASE new.type WHEN 'm.room.message' THEN '$.content.body'
            WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END) = 'text'
    BEGIN
      INSERT INTO event_search (rowid, body, room_id, key) VALUES (new.stream, ${SEARCHABLE}, new.room_id,
        CASE new.type WHEN 'm.room.message' THEN 'content.body' WHEN 'm.room.name' THEN 'content.name' ELSE 'content.topic' END);
    END;

    CREATE TRIGGER event_search_redact AFTER UPDATE OF redacted_by ON events
    WHEN new.redacted_by IS NOT NULL
    BEGIN
      DELETE FROM event_search WHERE rowid = new.stream;
    END;

    CREATE TRIGGER event_search_delete AFTER DELETE ON events
    BEGIN
      DELETE FROM event_search WHERE rowid = old.stream;
    END;

    INSERT INTO event_search (rowid, body, room_id, key)
      SELECT stream,
        CASE type WHEN 'm.room.message' THEN json_extract(pdu_json, '$.content.body')
          WHEN 'm.room.name' THEN json_extract(pdu_json, '$.content.name')
          ELSE json_extract(pdu_json, '$.content.topic') END,
        room_id,
        CASE type WHEN 'm.room.message' THEN 'content.body' WHEN 'm.room.name' THEN 'content.name' ELSE 'content.topic' END
      FROM events
      WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic') AND redacted_by IS NULL
        AND json_valid(pdu_json)
        AND json_type(pdu_json, CASE type WHEN 'm.room.message' THEN '$.content.body'
              WHEN 'm.room.name' THEN '$.content.name' ELSE '$.content.topic' END) = 'text';
  `,
};
