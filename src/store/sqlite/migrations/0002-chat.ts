// Everyday-chat domains: receipts, push actions, relations/threads, content reports.

import type { Migration } from './index.js';

export const chat: Migration = {
  version: 2,
  name: 'chat',
  up: `
    -- thread_id '' is the unthreaded receipt: NULL cannot take part in a primary key (SQLite
    -- would treat every NULL as distinct), and '' can never be an event ID or 'main'. thread_id
    -- comes before type so "the user's receipts for one thread" is a single key prefix.
    CREATE TABLE receipts (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      thread_id TEXT NOT NULL,
      type TEXT NOT NULL,
      event_id TEXT NOT NULL,
      event_stream INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      stream INTEGER NOT NULL,
      PRIMARY KEY (room_id, user_id, thread_id, type)
    ) WITHOUT ROWID;
    CREATE INDEX receipts_room_stream ON receipts (room_id, stream);

    -- One row per (notified user, event). The key serves the per-room unread count ranges; the
    -- (user_id, stream) index serves /notifications, newest first, across rooms. thread_id is
    -- NULL for the main timeline.
    CREATE TABLE push_actions (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      event_id TEXT NOT NULL,
      notify INTEGER NOT NULL,
      highlight INTEGER NOT NULL,
      thread_id TEXT,
      actions_json TEXT NOT NULL,
      ts INTEGER NOT NULL,
      PRIMARY KEY (user_id, room_id, stream)
    ) WITHOUT ROWID;
    CREATE INDEX push_actions_user_stream ON push_actions (user_id, stream);
    CREATE INDEX push_actions_user_highlight ON push_actions (user_id, stream) WHERE highlight = 1;

    -- "Latest own event in the room" for unread counts: one seek instead of a room scan.
    CREATE INDEX events_room_sender ON events (room_id, sender, stream);

    -- One row per relating event (an event has at most one m.relates_to). Rows of redacted
    -- events are deleted by the redaction, so no query has to join events to filter them.
    CREATE TABLE event_relations (
      event_id TEXT PRIMARY KEY,
      relates_to TEXT NOT NULL,
      rel_type TEXT NOT NULL,
      event_type TEXT NOT NULL,
      sender TEXT NOT NULL,
      room_id TEXT NOT NULL,
      stream INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Every read is scoped to the room of the target as well: another room's events may claim
    -- to relate to any event ID, and must not show up in this room's relations.
    CREATE INDEX event_relations_target ON event_relations (relates_to, rel_type, room_id, stream);
    -- Thread participants (DISTINCT sender) and the participant filter of getThreads.
    CREATE INDEX event_relations_sender ON event_relations (relates_to, rel_type, room_id, sender);

    -- Derived from event_relations (m.thread) so listing a room's threads by recent activity
    -- reads a page of an index instead of grouping every thread reply of the room.
    CREATE TABLE threads (
      room_id TEXT NOT NULL,
      root_event_id TEXT NOT NULL,
      latest_stream INTEGER NOT NULL,
      latest_event_id TEXT NOT NULL,
      count INTEGER NOT NULL,
      PRIMARY KEY (room_id, root_event_id)
    ) WITHOUT ROWID;
    CREATE INDEX threads_room_latest ON threads (room_id, latest_stream);

    -- Events stored before this migration relate to things too. Same rule as persistEvent:
    -- string rel_type and event_id; redacted events have lost their relation.
    INSERT INTO event_relations (event_id, relates_to, rel_type, event_type, sender, room_id, stream)
    SELECT event_id,
           json_extract(pdu_json, '$.content."m.relates_to".event_id'),
           json_extract(pdu_json, '$.content."m.relates_to".rel_type'),
           type, sender, room_id, stream
    FROM events
    WHERE redacted_by IS NULL
      AND json_type(pdu_json, '$.content."m.relates_to".rel_type') = 'text'
      AND json_type(pdu_json, '$.content."m.relates_to".event_id') = 'text';
    -- The bare latest_event_id comes from the row holding MAX(stream).
    INSERT INTO threads (room_id, root_event_id, latest_stream, latest_event_id, count)
    SELECT room_id, relates_to, MAX(stream), event_id, COUNT(*)
    FROM event_relations WHERE rel_type = 'm.thread'
    GROUP BY room_id, relates_to;

    CREATE TABLE event_reports (
      id INTEGER PRIMARY KEY,
      room_id TEXT NOT NULL,
      event_id TEXT,
      reporter TEXT NOT NULL,
      reason TEXT,
      score INTEGER,
      ts INTEGER NOT NULL
    );
  `,
};
