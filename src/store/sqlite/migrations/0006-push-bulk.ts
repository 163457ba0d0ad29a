// Push-rule results shared by many members of a room, stored once per event (PushBulkInput in
// src/store/chat-types.ts) instead of a push_actions row per member.

import type { Migration } from './index.js';

export const pushBulk: Migration = {
  version: 6,
  name: 'push-bulk',
  up: `
    -- One row per event whose result most members share. stream is the rowid (one event per
    -- position); the (room_id, stream) index serves the per-room ranges of unread counts and
    -- /notifications. Who a row applies to is derived at read time: users joined just before
    -- stream (membership_history), minus sender and the JSON array except_json.
    CREATE TABLE push_bulk (
      stream INTEGER PRIMARY KEY,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      sender TEXT NOT NULL,
      thread_id TEXT,
      notify INTEGER NOT NULL,
      highlight INTEGER NOT NULL,
      actions_json TEXT NOT NULL,
      except_json TEXT NOT NULL,
      ts INTEGER NOT NULL
    );
    CREATE INDEX push_bulk_room_stream ON push_bulk (room_id, stream);
    CREATE INDEX push_bulk_room_highlight ON push_bulk (room_id, stream) WHERE highlight = 1;

    -- A user's join intervals in one room, in order: a single key range.
    CREATE INDEX membership_history_user_room ON membership_history (user_id, room_id, stream, membership);
  `,
};
