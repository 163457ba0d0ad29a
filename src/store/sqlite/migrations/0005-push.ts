// Real-time delivery (src/store/push-types.ts): "delivered" markers, pushers and the durable
// queue of push notifications waiting for their gateway.

import type { Migration } from './index.js';

export const push: Migration = {
  version: 5,
  name: 'push',
  up: `
    -- One row per (room, user), moved forward in place (as receipts): readers only ever need the
    -- latest marker, and a range query by stream still sees every final value.
    CREATE TABLE delivered (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      event_stream INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      stream INTEGER NOT NULL,
      PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX delivered_room_stream ON delivered (room_id, stream);

    CREATE TABLE pushers (
      user_id TEXT NOT NULL,
      app_id TEXT NOT NULL,
      pushkey TEXT NOT NULL,
      device_id TEXT,
      kind TEXT NOT NULL,
      pushkey_ts INTEGER NOT NULL,
      app_display_name TEXT NOT NULL,
      device_display_name TEXT NOT NULL,
      profile_tag TEXT,
      lang TEXT NOT NULL,
      data_json TEXT NOT NULL,
      PRIMARY KEY (user_id, app_id, pushkey)
    ) WITHOUT ROWID;
    -- A gateway rejects pushkeys without naming the user; append: false clears other users'.
    CREATE INDEX pushers_key ON pushers (app_id, pushkey);
    CREATE INDEX pushers_device ON pushers (user_id, device_id);

    -- AUTOINCREMENT: ids never come back after the newest job is deleted, so "oldest first" by
    -- id stays enqueue order across restarts.
    CREATE TABLE push_queue (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user_id TEXT NOT NULL,
      app_id TEXT NOT NULL,
      pushkey TEXT NOT NULL,
      notification_json TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      not_before INTEGER NOT NULL
    );
    CREATE INDEX push_queue_due ON push_queue (not_before, id);
    CREATE INDEX push_queue_pusher ON push_queue (app_id, pushkey, user_id);
  `,
};
