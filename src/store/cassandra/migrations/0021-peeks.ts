// MSC2753 peeks (as SQLite's migration 19): one partition per device, a row per room.

import type { CqlMigration } from './index.js';

export const m0021: CqlMigration = {
  version: 21,
  name: 'peeks',
  statements: [
    `CREATE TABLE IF NOT EXISTS peeks (user_id text, device_id text, room_id text, stream bigint, ended_stream bigint, PRIMARY KEY ((user_id, device_id), room_id))`,
  ],
};
