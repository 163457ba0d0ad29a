// 3PID bindings this server made at identity servers for its users (POST /account/3pid/bind),
// so that unbinding without naming the identity server, and deactivation, know where to go.

import type { Migration } from './index.js';

export const identityBindings: Migration = {
  version: 15,
  name: 'identity-bindings',
  up: `
    CREATE TABLE identity_bindings (
      user_id TEXT NOT NULL,
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      id_server TEXT NOT NULL,
      PRIMARY KEY (user_id, medium, address, id_server)
    );
  `,
};
