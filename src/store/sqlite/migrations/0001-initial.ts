// Initial schema. No foreign keys across domains on purpose: the contract keeps domains
// independent (a Cassandra backend cannot enforce them either), so SQLite must not reject writes
// that another backend would accept.

import type { Migration } from './index.js';

export const initial: Migration = {
  version: 1,
  name: 'initial',
  up: `
    -- Highest stream position ever handed out, including abandoned ones. After a restart the
    -- generator must start above any position a client may already have seen as currentPosition.
    CREATE TABLE stream_meta (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      max_reserved INTEGER NOT NULL
    );
    INSERT INTO stream_meta (id, max_reserved) VALUES (1, 0);

    CREATE TABLE users (
      user_id TEXT PRIMARY KEY,
      password_hash TEXT,
      admin INTEGER NOT NULL,
      deactivated INTEGER NOT NULL DEFAULT 0,
      created_ts INTEGER NOT NULL,
      displayname TEXT,
      avatar_url TEXT
    );

    CREATE TABLE devices (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      display_name TEXT,
      last_seen_ts INTEGER,
      last_seen_ip TEXT,
      PRIMARY KEY (user_id, device_id)
    ) WITHOUT ROWID;

    CREATE TABLE access_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      created_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX access_tokens_owner ON access_tokens (user_id, device_id);

    CREATE TABLE rooms (
      room_id TEXT PRIMARY KEY,
      room_version TEXT NOT NULL,
      creator TEXT NOT NULL,
      created_ts INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- stream is the rowid: the timeline is stored in stream order for free.
    CREATE TABLE events (
      stream INTEGER PRIMARY KEY,
      event_id TEXT NOT NULL UNIQUE,
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT,
      sender TEXT NOT NULL,
      pdu_json TEXT NOT NULL,
      redacted_by TEXT,
      txn_device TEXT,
      txn_id TEXT
    );
    CREATE INDEX events_room_stream ON events (room_id, stream);

    CREATE TABLE event_txns (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      PRIMARY KEY (room_id, user_id, device_id, txn_id)
    ) WITHOUT ROWID;

    -- One row per state key change; the primary key answers "latest value of each key at or
    -- before S" with one index range per key (getStateAt), the stream index serves ranges.
    CREATE TABLE state_history (
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT NOT NULL,
      stream INTEGER NOT NULL,
      event_id TEXT NOT NULL,
      PRIMARY KEY (room_id, type, state_key, stream)
    ) WITHOUT ROWID;
    CREATE INDEX state_history_room_stream ON state_history (room_id, stream);

    CREATE TABLE current_state (
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT NOT NULL,
      event_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      PRIMARY KEY (room_id, type, state_key)
    ) WITHOUT ROWID;

    -- stream is the position at which the membership took effect (the persistEvent that carried
    -- it in its state delta), which is what sync ranges are expressed in.
    CREATE TABLE memberships (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      membership TEXT NOT NULL,
      event_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_user ON memberships (user_id, membership);
    CREATE INDEX memberships_room ON memberships (room_id, membership);

    CREATE TABLE membership_history (
      user_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      room_id TEXT NOT NULL,
      membership TEXT NOT NULL,
      event_id TEXT NOT NULL,
      PRIMARY KEY (user_id, stream, room_id)
    ) WITHOUT ROWID;

    CREATE TABLE forward_extremities (
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      PRIMARY KEY (room_id, event_id)
    ) WITHOUT ROWID;

    CREATE TABLE forgotten_rooms (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      PRIMARY KEY (user_id, room_id)
    ) WITHOUT ROWID;

    CREATE TABLE room_aliases (
      alias TEXT PRIMARY KEY,
      room_id TEXT NOT NULL,
      creator TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX room_aliases_room ON room_aliases (room_id);

    CREATE TABLE room_visibility (
      room_id TEXT PRIMARY KEY,
      visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private'))
    ) WITHOUT ROWID;
    CREATE INDEX room_visibility_public ON room_visibility (visibility);

    CREATE TABLE account_data (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      content_json TEXT NOT NULL,
      stream INTEGER NOT NULL,
      PRIMARY KEY (user_id, room_id, type)
    ) WITHOUT ROWID;
    CREATE INDEX account_data_stream ON account_data (user_id, stream);

    CREATE TABLE filters (
      user_id TEXT NOT NULL,
      filter_id TEXT NOT NULL,
      filter_json TEXT NOT NULL,
      PRIMARY KEY (user_id, filter_id)
    ) WITHOUT ROWID;

    CREATE TABLE txn_responses (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      scope TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      response_json TEXT NOT NULL,
      PRIMARY KEY (user_id, device_id, scope, txn_id)
    ) WITHOUT ROWID;
  `,
};
