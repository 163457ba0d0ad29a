// Account erasure and owner-only device-list changes (as SQLite's migration 12): the stream
// position at which a user was erased (null for everyone else; src/room/erasure.ts), and
// device-list change rows only their owner hears of (a new user-signing key alone).

import type { CqlMigration } from './index.js';

export const m0012: CqlMigration = {
  version: 12,
  name: 'erasure',
  statements: [
    `ALTER TABLE users ADD IF NOT EXISTS erased_at_stream bigint`,
    `ALTER TABLE e2ee_device_list_changes ADD IF NOT EXISTS owner_only boolean`,
  ],
};
