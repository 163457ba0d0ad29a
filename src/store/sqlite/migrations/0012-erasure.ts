// Account erasure (POST /account/deactivate with erase: true): the stream position at which a
// user was erased. NULL for everyone else. Users who join a room after that position are served
// redacted copies of the user's events (src/room/erasure.ts).
// Device-list changes only their owner hears of (a new user-signing key, which only the owner can
// read): owner_only = 1.

import type { Migration } from './index.js';

export const erasure: Migration = {
  version: 12,
  name: 'erasure',
  up: `
    ALTER TABLE users ADD COLUMN erased_at_stream INTEGER;
    ALTER TABLE e2ee_device_list_changes ADD COLUMN owner_only INTEGER NOT NULL DEFAULT 0;
  `,
};
