// MSC2753 peeks, one row per (user, device, room) (src/store/peek-types.ts).

import type { Migration } from './index.js';

export const peeks: Migration = {
  version: 19,
  name: 'peeks',
  up: `
    CREATE TABLE peeks (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      ended_stream INTEGER,
      PRIMARY KEY (user_id, device_id, room_id)
    );
  `,
};
