// Email addresses on accounts and their validation sessions (as SQLite's migration 17).
// threepid_owners is the uniqueness of an address (claimed with LWT); account_threepids is each
// user's list; threepid_session_keys finds the live session of (medium, client_secret, address).

import type { CqlMigration } from './index.js';

export const m0019: CqlMigration = {
  version: 19,
  name: 'threepids',
  statements: [
    `CREATE TABLE IF NOT EXISTS threepid_owners (medium text, address text, user_id text, validated_at bigint, added_at bigint, PRIMARY KEY ((medium, address)))`,
    `CREATE TABLE IF NOT EXISTS account_threepids (user_id text, medium text, address text, validated_at bigint, added_at bigint, PRIMARY KEY ((user_id), medium, address))`,
    `CREATE TABLE IF NOT EXISTS threepid_sessions (sid text PRIMARY KEY, medium text, address text, client_secret text, last_send_attempt bigint, validation_token text, next_link text, validated_at bigint, created_at bigint, expires_at bigint)`,
    `CREATE TABLE IF NOT EXISTS threepid_session_keys (medium text, client_secret text, address text, sid text, PRIMARY KEY ((medium, client_secret, address)))`,
  ],
};
