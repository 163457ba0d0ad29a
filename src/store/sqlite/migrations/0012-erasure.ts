// Account erasure (POST /account/deactivate with erase: true): the stream position at which a
// user was erased. NULL for everyone else. Users who join a room after that position are served
// redacted copies of the user's events (src/room/erasure.ts).

import type { Migration } from './index.js';

export const erasure: Migration = {
  version: 12,
  name: 'erasure',
  up: `
    ALTER TABLE users ADD COLUMN erased_at_stream INTEGER;
  `,
};
