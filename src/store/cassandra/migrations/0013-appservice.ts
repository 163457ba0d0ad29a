// Application services (as SQLite's migration 13): each AS's delivery position and last
// transaction ID, and the rooms each AS published in its per-network room directories.

import type { CqlMigration } from './index.js';

export const m0013: CqlMigration = {
  version: 13,
  name: 'appservice',
  statements: [
    `CREATE TABLE IF NOT EXISTS appservice_state (appservice_id text PRIMARY KEY, position bigint, last_txn_id bigint)`,
    `CREATE TABLE IF NOT EXISTS appservice_rooms (appservice_id text, network_id text, room_id text, PRIMARY KEY ((appservice_id), network_id, room_id))`,
  ],
};
