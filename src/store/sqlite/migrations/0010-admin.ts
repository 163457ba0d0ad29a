// Rooms an admin blocked (DELETE /_synapse/admin/v1/rooms/{roomId} with block): local users can
// neither join nor be invited. Kept when the room's data is purged.

import type { Migration } from './index.js';

export const admin: Migration = {
  version: 10,
  name: 'admin',
  up: `
    CREATE TABLE blocked_rooms (
      blocked_room TEXT PRIMARY KEY,
      blocked_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
  `,
};
