// Email addresses on accounts and their validation sessions (src/store/threepid-types.ts).

import type { Migration } from './index.js';

export const threepids: Migration = {
  version: 17,
  name: 'threepids',
  up: `
    CREATE TABLE account_threepids (
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      user_id TEXT NOT NULL,
      validated_at INTEGER NOT NULL,
      added_at INTEGER NOT NULL,
      PRIMARY KEY (medium, address)
    );
    CREATE INDEX account_threepids_user ON account_threepids (user_id, medium, address);
    CREATE TABLE threepid_sessions (
      sid TEXT PRIMARY KEY,
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      client_secret TEXT NOT NULL,
      last_send_attempt INTEGER NOT NULL,
      token TEXT NOT NULL,
      next_link TEXT,
      validated_at INTEGER,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE INDEX threepid_sessions_secret ON threepid_sessions (medium, client_secret, address);
    CREATE INDEX threepid_sessions_expiry ON threepid_sessions (expires_at);
  `,
};
