// Eviction of remote media (src/media/remote-eviction.ts): each fetch's bytes carry a generation
// (part of their keys; '' for media fetched before, whose keys have none), the last access is
// kept for eviction by age (it starts at the fetch), thumbnails belong to one generation, and an
// evicted generation is doomed until its bytes are deleted (due_ts: after a grace period, so
// reads that began before the eviction finish). The doomed row carries the generation's
// thumbnails (JSON), as deleting the record cascades to their rows.

import type { Migration } from './index.js';

export const remoteMediaEviction: Migration = {
  version: 21,
  name: 'remote-media-eviction',
  up: `
    ALTER TABLE remote_media ADD COLUMN generation TEXT NOT NULL DEFAULT '';
    ALTER TABLE remote_media ADD COLUMN last_access_ts INTEGER NOT NULL DEFAULT 0;
    UPDATE remote_media SET last_access_ts = fetched_ts;
    CREATE INDEX remote_media_last_access ON remote_media (last_access_ts);
    ALTER TABLE remote_media_thumbnails ADD COLUMN generation TEXT NOT NULL DEFAULT '';

    CREATE TABLE remote_media_doomed (
      origin TEXT NOT NULL,
      media_id TEXT NOT NULL,
      generation TEXT NOT NULL,
      due_ts INTEGER NOT NULL,
      thumbnails TEXT NOT NULL,
      PRIMARY KEY (origin, media_id, generation)
    ) WITHOUT ROWID;
    CREATE INDEX remote_media_doomed_due ON remote_media_doomed (due_ts);
  `,
};
