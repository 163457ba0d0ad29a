// Named "queued up to" marks of the publishers that turn a change stream into federation queue
// entries (src/federation/device-list-outbox.ts: the device-list change stream). Written with
// the mark as the write timestamp (position timestamps, as federation_destinations' columns), so
// last-write-wins keeps the highest mark even when two writers race: it never moves back.

import type { CqlMigration } from './index.js';

export const m0024: CqlMigration = {
  version: 24,
  name: 'federation_cursors',
  statements: [`CREATE TABLE IF NOT EXISTS federation_cursors (name text PRIMARY KEY, upto bigint)`],
};
