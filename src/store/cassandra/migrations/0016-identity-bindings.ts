// 3PID bindings made at identity servers (as SQLite's migration 15).

import type { CqlMigration } from './index.js';

export const m0016: CqlMigration = {
  version: 16,
  name: 'identity-bindings',
  statements: [`CREATE TABLE IF NOT EXISTS identity_bindings (user_id text, medium text, address text, id_server text, PRIMARY KEY ((user_id), medium, address, id_server))`],
};
