// Guest accounts (spec "Guest Access"), OpenID tokens (spec "OpenID") and the user agent last
// seen per device (GET /admin/whois).

import type { Migration } from './index.js';

export const guestsOpenId: Migration = {
  version: 11,
  name: 'guests-openid',
  up: `
    -- 1 for accounts made by /register?kind=guest until they upgrade to full accounts.
    ALTER TABLE users ADD COLUMN is_guest INTEGER NOT NULL DEFAULT 0;

    -- Only SHA-256 hashes of OpenID tokens are kept, as for access tokens. Expired rows are
    -- pruned when new tokens are issued; lookups ignore them before that.
    CREATE TABLE openid_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      expires_ts INTEGER NOT NULL
    );
    CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);

    ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
  `,
};
