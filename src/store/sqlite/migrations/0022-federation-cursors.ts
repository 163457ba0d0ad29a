// Named "queued up to" marks of the publishers that turn a change stream into federation queue
// entries (src/federation/device-list-outbox.ts: the device-list change stream). A mark only
// grows; everything on the stream at or below it has been queued.

import type { Migration } from './index.js';

export const federationCursors: Migration = {
  version: 22,
  name: 'federation_cursors',
  up: `CREATE TABLE federation_cursors (name TEXT PRIMARY KEY, upto INTEGER NOT NULL);`,
};
