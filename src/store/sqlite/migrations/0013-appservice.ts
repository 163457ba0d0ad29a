// Application services (src/appservice): each AS's delivery position and last transaction ID,
// and the rooms each AS has published in its per-network room directory.

import type { Migration } from './index.js';

export const appservice: Migration = {
  version: 13,
  name: 'appservice',
  up: `
    CREATE TABLE appservice_state (
      appservice_id TEXT PRIMARY KEY,
      position INTEGER NOT NULL,
      last_txn_id INTEGER NOT NULL
    );
    CREATE TABLE appservice_rooms (
      appservice_id TEXT NOT NULL,
      network_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      PRIMARY KEY (appservice_id, network_id, room_id)
    );
  `,
};
