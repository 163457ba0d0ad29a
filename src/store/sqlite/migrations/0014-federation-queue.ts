// Outbound federation (contract: src/store/federation-types.ts): per-destination append-only
// entries at stream positions and one delivery-state row per destination.

import type { Migration } from './index.js';

export const federationQueue: Migration = {
  version: 14,
  name: 'federation-queue',
  up: `
    CREATE TABLE federation_outbox (
      destination TEXT NOT NULL,
      pos INTEGER NOT NULL,
      kind TEXT NOT NULL,
      room_id TEXT NOT NULL,
      body TEXT NOT NULL,
      PRIMARY KEY (destination, pos)
    ) WITHOUT ROWID;
    CREATE TABLE federation_destinations (
      destination TEXT PRIMARY KEY,
      sent_upto INTEGER NOT NULL DEFAULT 0,
      queued_upto INTEGER NOT NULL DEFAULT 0,
      txn_id TEXT NOT NULL DEFAULT '',
      txn_upto INTEGER NOT NULL DEFAULT 0,
      txn_catch_up INTEGER NOT NULL DEFAULT 0
    );
  `,
};
